"""Regenerate the ``o4o`` fixture's ``pnpm-lock.yaml`` with real pnpm 10.25.0.

Run it after changing a dependency in the tree's ``package.json`` files (scripts may change freely):

    python -m o4o_operator.testing.fixture_o4o.lockfile

It copies the tree to a temporary directory, runs ``pnpm install --lockfile-only`` there (pnpm found as
:func:`~o4o_operator.testing.fixture_o4o.toolchain.find_pnpm` finds it; it needs the npm registry), and writes the
lockfile back into the tree. Must not: be imported by shipped code, or change anything in the tree but the lockfile.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from . import TREE
from .toolchain import find_pnpm, run


def regenerate() -> Path:
    pnpm = find_pnpm()
    if pnpm is None:
        raise RuntimeError("neither pnpm 10.25.0 nor npx is on PATH")
    with tempfile.TemporaryDirectory(prefix="o4o-lockfile-") as scratch:
        work = Path(scratch) / "tree"
        shutil.copytree(TREE, work)
        (work / "pnpm-lock.yaml").unlink(missing_ok=True)
        result = run([*pnpm, "install", "--lockfile-only"], work)
        if result.returncode != 0:
            raise RuntimeError(f"pnpm install --lockfile-only exited {result.returncode}:\n{result.stderr}")
        shutil.copyfile(work / "pnpm-lock.yaml", TREE / "pnpm-lock.yaml")
    return TREE / "pnpm-lock.yaml"


if __name__ == "__main__":
    print(regenerate(), file=sys.stderr)
