"""What ``uv sync --no-editable`` (the Dockerfile's install step) puts in the image: the product, not its test peers.

Builds the wheel as the Dockerfile's builder stage would (from a copy of exactly what it copies:
``pyproject.toml``, ``README.md``, ``operator/``, ``dashboard/``, so no stale ``build/`` can leak in) and
reads its file list. The test peers in ``o4o_operator.testing`` (a fake Lightsail, shell shims, booted hosts,
Pebble) must be absent; the operator, the dashboard and the dashboard's templates must be present.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from delivery_support import REPO, uv_binary


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    context = tmp_path_factory.mktemp("context")
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(REPO / name, context / name)
    for name in ("operator", "dashboard"):
        shutil.copytree(REPO / name, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    # uv builds the wheel with the build backend that pyproject.toml pins (build-constraint-dependencies).
    subprocess.run([uv_binary(), "build", "--wheel", "--quiet", "--out-dir", str(out), str(context)],
                   check=True, timeout=600, env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
    (wheel,) = Path(out).glob("o4o_operator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_ships_no_test_peers(wheel_files: list[str]) -> None:
    peers = [name for name in wheel_files if name.startswith("o4o_operator/testing")]
    assert peers == []


def test_the_wheel_ships_the_operator_and_the_dashboard(wheel_files: list[str]) -> None:
    for expected in ("o4o_operator/cli.py", "o4o_operator/handlers.py", "o4o_operator/runner/worker.py",
                     "o4o_operator/py.typed", "o4o_dashboard/cli.py", "o4o_dashboard/py.typed"):
        assert expected in wheel_files
    assert any(name.startswith("o4o_dashboard/templates/") for name in wheel_files)
