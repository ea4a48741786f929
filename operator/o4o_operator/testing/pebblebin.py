"""Build and locate Pebble and pebble-challtestsrv (Let's Encrypt's test CA and its DNS/challenge peer).

Owns: the pinned Pebble version, building both commands from the Go module proxy
with ``go install <module>/cmd/<name>@<version>``, and the cache directory they live in
(``~/.cache/o4o/testbin/pebble-<version>/``). ``O4O_PEBBLE_BIN`` overrides it.

Must not: download prebuilt binaries, write inside the repository, or import
anything beyond the standard library (``make`` may run it before the venv exists).

Run as a script, it prints one line: the directory holding ``pebble`` and ``pebble-challtestsrv``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEBBLE_VERSION = "2.10.3"
PEBBLE_MODULE = "github.com/letsencrypt/pebble/v2"
BINARIES = ("pebble", "pebble-challtestsrv")
OVERRIDE_VARIABLE = "O4O_PEBBLE_BIN"


def cache_dir() -> Path:
    """Where binaries for the pinned version live (honours XDG_CACHE_HOME)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "o4o" / "testbin" / f"pebble-{PEBBLE_VERSION}"


def bin_dir() -> Path:
    """The directory to use: ``O4O_PEBBLE_BIN`` if set, else the cache."""
    override = os.environ.get(OVERRIDE_VARIABLE)
    return Path(override) if override else cache_dir()


def missing_binaries(directory: Path) -> list[str]:
    return [name for name in BINARIES if not os.access(directory / name, os.X_OK)]


def build(target: Path, names: list[str]) -> None:
    """``go install`` each command at the pinned version into ``target``."""
    env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": str(target), "GOFLAGS": "-buildvcs=false"}
    for name in names:
        subprocess.run(["go", "install", "-trimpath", "-ldflags", "-s -w",
                        f"{PEBBLE_MODULE}/cmd/{name}@v{PEBBLE_VERSION}"],
                       cwd=target, env=env, check=True, stdout=sys.stderr)


def ensure_pebble() -> Path:
    """Return the binaries' directory, building them first if any is missing."""
    directory = bin_dir()
    missing = missing_binaries(directory)
    if not missing:
        return directory
    if os.environ.get(OVERRIDE_VARIABLE):
        raise RuntimeError(f"{OVERRIDE_VARIABLE}={directory} lacks {', '.join(missing)}")
    if shutil.which("go") is None:
        raise RuntimeError("building Pebble needs Go on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="o4o-pebble-", dir=directory.parent) as tmp:
        build(Path(tmp), missing)
        for name in missing:  # one filesystem: a half-built binary never shows under its final name
            os.replace(Path(tmp) / name, directory / name)
    print(f"built {', '.join(missing)} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return directory


if __name__ == "__main__":
    try:
        print(ensure_pebble())
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"pebblebin: {error}", file=sys.stderr)
        sys.exit(1)
