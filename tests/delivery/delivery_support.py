"""Paths and small helpers shared by the delivery tests (imported by name: tests/delivery is on sys.path)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
HERE = Path(__file__).resolve().parent



def uv_binary() -> str:
    """The uv that make installed and exported as ``O4O_UV`` (else its cache path for the Makefile's version)."""
    exported = os.environ.get("O4O_UV")
    if exported:
        return exported
    version = re.search(r"^UV_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert version, "the Makefile sets no UV_VERSION"
    binary = Path.home() / ".cache" / "o4o" / f"uv-{version.group(1)}" / "bin" / "uv"
    assert binary.exists(), f"{binary} is missing: make venv installs it"
    return str(binary)


Render = Callable[[Path], list[dict[str, Any]]]
