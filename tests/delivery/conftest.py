"""Fixtures for the delivery tests: the repository, kubectl (for kustomize), rendered manifests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from delivery_support import Render

from o4o_operator.testing import testbin


@pytest.fixture(scope="session")
def kubectl_binary() -> Path:
    """The pinned kubectl (1.34, with its built-in kustomize), the one the control plane uses."""
    return testbin.ensure_testbin() / "kubectl"


@pytest.fixture(scope="session")
def render(kubectl_binary: Path) -> Render:
    """``kubectl kustomize DIR`` as a list of objects; fails the test with kustomize's error."""

    def _render(directory: Path) -> list[dict[str, Any]]:
        result = subprocess.run([str(kubectl_binary), "kustomize", str(directory)],
                                capture_output=True, text=True, check=False, timeout=60)
        assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return _render

