"""Build and locate SeaweedFS's ``weed`` (the test world's S3-compatible object store).

Owns: the pinned SeaweedFS version (a pseudo-version: the project tags releases as ``3.xx``, which Go's module
proxy does not take as semver), building ``weed`` from the Go module proxy, and the cache directory it lives in
(``~/.cache/o4o/testbin/seaweedfs-<version>/``). ``O4O_S3_BIN`` overrides it. ``go install module@version``
refuses SeaweedFS (its go.mod has replace directives), so the module is downloaded through the proxy
(``go mod download``) and built as the main module in a scratch copy: the same sources, its replaces honoured.
Must not: download prebuilt binaries, write inside the repository, or import anything beyond the standard
library (``make`` may run it before the venv exists).

Run as a script, it prints one line: the directory holding ``weed``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEAWEEDFS_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
"""SeaweedFS at commit 7506e5f91cd6 (2026-11-09), Apache-2.0."""
SEAWEEDFS_MODULE = "github.com/seaweedfs/seaweedfs"
BINARY = "weed"
OVERRIDE_VARIABLE = "O4O_S3_BIN"


def cache_dir() -> Path:
    """Where the binary for the pinned version lives (honours XDG_CACHE_HOME)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "o4o" / "testbin" / f"seaweedfs-{SEAWEEDFS_VERSION}"


def bin_dir() -> Path:
    override = os.environ.get(OVERRIDE_VARIABLE)
    return Path(override) if override else cache_dir()


def build(target: Path) -> None:
    """Download the pinned module through the proxy and build ``weed`` from a writable copy of it."""
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    listing = subprocess.run(["go", "mod", "download", "-json", f"{SEAWEEDFS_MODULE}@{SEAWEEDFS_VERSION}"],
                             cwd=target, env=env, check=True, capture_output=True, text=True)
    source = Path(json.loads(listing.stdout)["Dir"])
    copy = target / "src"
    shutil.copytree(source, copy)
    for path in copy.rglob("*"):  # the module cache is read-only
        path.chmod(path.stat().st_mode | 0o200)
    copy.chmod(copy.stat().st_mode | 0o200)
    subprocess.run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(target / BINARY), "./weed"],
                   cwd=copy, env=env, check=True, stdout=sys.stderr)


def ensure_weed() -> Path:
    """Return the binary's directory, building it first if it is missing."""
    directory = bin_dir()
    if os.access(directory / BINARY, os.X_OK):
        return directory
    if os.environ.get(OVERRIDE_VARIABLE):
        raise RuntimeError(f"{OVERRIDE_VARIABLE}={directory} lacks {BINARY}")
    if shutil.which("go") is None:
        raise RuntimeError("building SeaweedFS needs Go on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="o4o-seaweedfs-", dir=directory.parent) as tmp:
        build(Path(tmp))
        os.replace(Path(tmp) / BINARY, directory / BINARY)  # one filesystem: never half a binary under its name
    print(f"built {BINARY} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return directory


if __name__ == "__main__":
    try:
        print(ensure_weed())
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"s3bin: {error}", file=sys.stderr)
        sys.exit(1)
