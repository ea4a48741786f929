"""The lock: every Python package pinned with its hashes, and a check that fails when pyproject.toml moves.

``make test`` installs with ``uv sync --locked`` and runs ``uv lock --check`` (make lock-check) before the
tests; these tests prove that check can fail, that the lock carries hashes for everything it installs, and
that the Dockerfile pins the same uv as the Makefile. No network: ``--offline`` against uv's own cache.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from delivery_support import REPO, uv_binary

MAKEFILE = (REPO / "Makefile").read_text()


def makefile_value(name: str) -> str:
    """A ``NAME := value`` of the Makefile, backslash continuations joined."""
    joined = MAKEFILE.replace("\\\n", " ")
    match = re.search(rf"^{name} := (.+)$", joined, re.MULTILINE)
    assert match, f"the Makefile sets no {name}"
    return " ".join(match.group(1).split())


@pytest.fixture(scope="module")
def uv() -> str:
    return uv_binary()


def lock_check(uv: str, project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    return subprocess.run([uv, "lock", "--check", "--offline", "--project", str(project)], capture_output=True,
                          text=True, check=False, timeout=120, env=env)


def test_the_lock_matches_pyproject(uv: str, tmp_path: Path) -> None:
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(REPO / name, tmp_path / name)
    result = lock_check(uv, tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_check_fails_when_pyproject_drops_a_dependency(uv: str, tmp_path: Path) -> None:
    shutil.copy(REPO / "uv.lock", tmp_path / "uv.lock")
    text = (REPO / "pyproject.toml").read_text()
    assert '    "pyyaml>=6",\n' in text
    (tmp_path / "pyproject.toml").write_text(text.replace('    "pyyaml>=6",\n', ""))
    result = lock_check(uv, tmp_path)
    assert result.returncode != 0
    assert "needs to be updated" in result.stderr


def test_the_check_fails_when_a_constraint_changes(uv: str, tmp_path: Path) -> None:
    shutil.copy(REPO / "uv.lock", tmp_path / "uv.lock")
    text = (REPO / "pyproject.toml").read_text()
    assert 'constraint-dependencies = ["cryptography<51"]' in text
    (tmp_path / "pyproject.toml").write_text(
        text.replace('constraint-dependencies = ["cryptography<51"]', 'constraint-dependencies = ["cryptography<50"]'))
    assert lock_check(uv, tmp_path).returncode != 0


def test_every_locked_package_has_a_hash() -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    unhashed = []
    for package in lock["package"]:
        if "registry" not in package.get("source", {}):
            assert package["name"] == "o4o-operator", f"{package['name']} comes from outside the registry"
            continue
        artifacts = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        if not artifacts or any(not a.get("hash", "").startswith("sha256:") for a in artifacts):
            unhashed.append(package["name"])
    assert not unhashed
    assert len(lock["package"]) > 50, "operator, dashboard, test, dev and bench packages are all locked"


def test_every_extra_is_locked() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    ours = next(p for p in lock["package"] if p["name"] == "o4o-operator")
    assert set(ours["optional-dependencies"]) == set(project["optional-dependencies"]) == {"test", "dev", "bench"}


def test_installs_are_frozen_everywhere() -> None:
    assert "sync --locked" in MAKEFILE, "make venv installs exactly the lock and fails on a stale one"
    assert "pip install" not in MAKEFILE.replace("pip install --quiet --disable-pip-version-check --require-hashes", "")
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "uv sync --frozen" in dockerfile
    assert "COPY pyproject.toml uv.lock" in dockerfile


def test_the_dockerfile_pins_the_makefiles_uv() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"ARG UV_VERSION={makefile_value('UV_VERSION')}\n" in dockerfile
    assert f'ARG UV_SHA256="{makefile_value("UV_SHA256")}"\n' in dockerfile
