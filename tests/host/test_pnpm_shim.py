"""The sandbox's pnpm acts out pnpm 10.25.0's exit statuses, so that tests prove ``--fail-if-no-match`` matters.

Measured with real pnpm 10.25.0 on the fixture: a ``--filter`` that matches nothing prints "No projects matched
the filters" and exits 0, or 1 with ``--fail-if-no-match``; a script no selected package has prints "None of
the selected packages has a ... script" and exits 0 either way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from o4o_operator.testing import make_fixture_repo, sandbox_shim, sandbox_toolchain

SHIM = Path(sandbox_shim.__file__)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / ".shim-state.json").write_text(json.dumps({"npm_global": ["pnpm"]}))
    repo, _ = make_fixture_repo(tmp_path / "platform")
    return repo


def pnpm(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "O4O_ROOT": str(workspace.parent / "root")}
    return subprocess.run([sys.executable, str(SHIM), "pnpm", *args], cwd=workspace, env=environment,
                          capture_output=True, text=True, check=False)


def test_a_filter_that_matches_nothing_exits_0_unless_fail_if_no_match(workspace: Path) -> None:
    quiet = pnpm(workspace, "--filter", "@o4o/main-site", "run", "build")
    assert quiet.returncode == 0
    assert "No projects matched the filters" in quiet.stdout
    loud = pnpm(workspace, "--filter", "@o4o/main-site", "--fail-if-no-match", "run", "build")
    assert loud.returncode == 1
    assert "No projects matched the filters" in loud.stdout + loud.stderr


def test_a_script_no_selected_package_has_exits_0_even_with_fail_if_no_match(workspace: Path) -> None:
    result = pnpm(workspace, "--filter", "@o4o/api-server", "--fail-if-no-match", "run", "apps:install:all")
    assert result.returncode == 0
    assert 'None of the selected packages has a "apps:install:all" script' in result.stdout


def test_the_dependency_filter_builds_workspace_dependencies_first(workspace: Path) -> None:
    alone = pnpm(workspace, "--filter", "@o4o/api-server", "run", "build")
    assert alone.returncode == 1
    assert "Cannot find module @o4o/types" in alone.stderr
    with_dependencies = pnpm(workspace, "--filter", "@o4o/api-server...", "--fail-if-no-match", "run", "build")
    assert with_dependencies.returncode == 0, with_dependencies.stderr
    assert (workspace / "packages/types/dist/index.js").exists()


def test_exec_runs_in_each_selected_package(workspace: Path) -> None:
    result = pnpm(workspace, "--filter", "@o4o/api-server", "--fail-if-no-match", "exec", "pwd")
    assert result.returncode == 0
    assert result.stdout.strip() == str(workspace / "apps/api-server")
    assert pnpm(workspace, "--filter", "@o4o/nope", "--fail-if-no-match", "exec", "pwd").returncode == 1


def test_version_is_what_npm_installed(workspace: Path) -> None:
    assert pnpm(workspace, "--version").stdout.strip() == sandbox_toolchain.PNPM_DEFAULT_VERSION
    state = workspace.parent / "root/.shim-state.json"
    state.write_text(json.dumps({"npm_global": ["pnpm"], "npm_versions": {"pnpm": "10.25.0"}}))
    assert pnpm(workspace, "--version").stdout.strip() == "10.25.0"


def test_a_pnpm_run_from_an_installed_package_is_that_packages_version(workspace: Path, tmp_path: Path) -> None:
    """npm's executables name their package (O4O_SHIM_PACKAGE): an instance's own pnpm, first on its PATH, says
    its own version whatever the global one is, and is not there before npm installed it."""
    package = tmp_path / "home/o4o-team-shop/.o4o/pnpm/9.15.9/lib/node_modules/pnpm"
    environment = {**os.environ, "O4O_ROOT": str(workspace.parent / "root"), "O4O_SHIM_PACKAGE": str(package)}

    def version() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(SHIM), "pnpm", "--version"], cwd=workspace, env=environment,
                              capture_output=True, text=True, check=False)

    assert version().returncode == 127  # not installed there yet
    package.mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": "pnpm", "version": "9.15.9"}))
    assert version().stdout.strip() == "9.15.9"
    assert pnpm(workspace, "--version").stdout.strip() == sandbox_toolchain.PNPM_DEFAULT_VERSION  # the global one
