"""Build and locate the Versity S3 Gateway (``versitygw``): the test world's S3-compatible object store.

Owns: the pinned versitygw version, building it from the Go module proxy with
``go install <module>/cmd/versitygw@<version>``, and the cache directory it lives in
(``~/.cache/o4o/testbin/versitygw-<version>/``). ``O4O_S3_BIN`` overrides it.
Why versitygw (Apache-2.0) and not SeaweedFS: both are real S3 servers that verify SigV4 and presigned URLs,
but SeaweedFS's ``weed`` took 612 s to build cold on 2 cores (164 MB), which alone broke ``make test``'s
30-minute cold budget; versitygw builds in about 70 s (45 MB) and serves a plain directory (``posix``).
Must not: download prebuilt binaries, write inside the repository, or import anything beyond the standard
library (``make`` may run it before the venv exists).

Run as a script, it prints one line: the directory holding ``versitygw``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VERSITYGW_VERSION = "v1.8.0"
"""Versity S3 Gateway v1.8.0 (2026-09-04), Apache-2.0."""
VERSITYGW_MODULE = "github.com/versity/versitygw"
BINARY = "versitygw"
OVERRIDE_VARIABLE = "O4O_S3_BIN"


def cache_dir() -> Path:
    """Where the binary for the pinned version lives (honours XDG_CACHE_HOME)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "o4o" / "testbin" / f"versitygw-{VERSITYGW_VERSION}"


def bin_dir() -> Path:
    override = os.environ.get(OVERRIDE_VARIABLE)
    return Path(override) if override else cache_dir()


def build(target: Path) -> None:
    """``go install`` the gateway at the pinned version into ``target`` (its go.sum pins every dependency)."""
    env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": str(target), "GOFLAGS": "-buildvcs=false"}
    subprocess.run(["go", "install", "-trimpath", "-ldflags", "-s -w",
                    f"{VERSITYGW_MODULE}/cmd/{BINARY}@{VERSITYGW_VERSION}"],
                   cwd=target, env=env, check=True, stdout=sys.stderr)


def ensure_s3_server() -> Path:
    """Return the binary's directory, building it first if it is missing."""
    directory = bin_dir()
    if os.access(directory / BINARY, os.X_OK):
        return directory
    if os.environ.get(OVERRIDE_VARIABLE):
        raise RuntimeError(f"{OVERRIDE_VARIABLE}={directory} lacks {BINARY}")
    if shutil.which("go") is None:
        raise RuntimeError("building the S3 server needs Go on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="o4o-versitygw-", dir=directory.parent) as tmp:
        build(Path(tmp))
        os.replace(Path(tmp) / BINARY, directory / BINARY)  # one filesystem: never half a binary under its name
    print(f"built {BINARY} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return directory


if __name__ == "__main__":
    try:
        print(ensure_s3_server())
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"s3bin: {error}", file=sys.stderr)
        sys.exit(1)
