"""Running the ``o4o`` fixture's toolchain on this machine: pnpm at the pinned version, and the build chain.

Owns: finding pnpm 10.25.0 (``$O4O_PNPM``, a ``pnpm`` on ``PATH`` at that version, else ``npx --yes
pnpm@10.25.0``), and running O4O's default build contract in a checkout the way the operator's defaults do
(frozen install, the site and API builds with their workspace dependencies, ``build:api`` with ``dist/database``
kept across the bundle's clean), returning the seconds each step took.

Must not: be imported by shipped code; write outside the checkout it is given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from o4o_operator.testing.fixture_repo import API_PACKAGE, PNPM_VERSION, SITE_PACKAGE

from . import API_DIR, KEEP_ACROSS_BUNDLE


def find_node() -> str | None:
    return shutil.which("node")


def find_pnpm() -> list[str] | None:
    """The command that runs pnpm at :data:`PNPM_VERSION`, or None when neither pnpm nor npx is here."""
    override = os.environ.get("O4O_PNPM")
    if override:
        return [override]
    found = shutil.which("pnpm")
    if found:
        version = subprocess.run([found, "--version"], capture_output=True, text=True, check=False).stdout.strip()
        if version == PNPM_VERSION:
            return [found]
    npx = shutil.which("npx")
    return [npx, "--yes", f"pnpm@{PNPM_VERSION}"] if npx else None


def run(command: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; never raises on a non-zero exit."""
    return subprocess.run(list(command), cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          check=False)


def _checked(command: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> None:
    result = run(command, cwd, env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")


class _Steps:
    def __init__(self, checkout: Path) -> None:
        self.checkout, self.times = checkout, dict[str, float]()

    def run(self, name: str, command: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        started = time.monotonic()
        _checked(command, self.checkout, env)
        self.times[name] = round(time.monotonic() - started, 1)


def build_api(checkout: Path, pnpm: Sequence[str], steps: _Steps | None = None) -> dict[str, float]:
    """The API's half: ``build`` with its workspace dependencies, then ``build:api`` keeping ``dist/database``."""
    steps = steps or _Steps(checkout)
    steps.run("api", [*pnpm, "--filter", f"{API_PACKAGE}...", "--fail-if-no-match", "run", "build"])
    kept = checkout / API_DIR / KEEP_ACROSS_BUNDLE
    aside = checkout / ".o4o-kept-database"
    shutil.move(kept, aside)
    steps.run("api-bundle", [*pnpm, "--filter", API_PACKAGE, "--fail-if-no-match", "run", "build:api"])
    shutil.move(aside, kept)
    return steps.times


def build_as_operator(checkout: Path, pnpm: Sequence[str], api_url: str) -> dict[str, float]:
    """O4O's default build contract in ``checkout``; returns seconds per step (for the record, never asserted)."""
    steps = _Steps(checkout)
    steps.run("install", [*pnpm, "install", "--frozen-lockfile"])
    steps.run("site", [*pnpm, "--filter", f"{SITE_PACKAGE}...", "--fail-if-no-match", "run", "build"],
              env={"VITE_API_URL": api_url})
    return build_api(checkout, pnpm, steps)
