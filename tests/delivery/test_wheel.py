"""What ``pip install .`` (the Dockerfile's install step) puts in the image: the product, not its test peers.

Builds the wheel exactly as the Dockerfile's builder stage would (``pip wheel .`` with build isolation) and
reads its file list. The test peers in ``o4o_operator.testing`` (a fake Lightsail, shell shims, booted hosts,
Pebble) must be absent; the operator, the dashboard and the dashboard's templates must be present.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from delivery_support import REPO


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out),
                    str(REPO)], check=True, timeout=600)
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
