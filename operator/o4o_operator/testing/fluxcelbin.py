"""Build and locate ``flux-cel``: Flux's own CEL health-check evaluation, as a small command for the tests.

Owns: building ``testing/fluxcel/`` (a main package that imports ``github.com/fluxcd/pkg/runtime/cel``,
see its ``main.go`` for what it reads and prints) and the cache directory the binary lives in
(``~/.cache/o4o/testbin/flux-cel-<runtime version>-<digest of the sources>/``). The module's ``go.mod`` and
``go.sum`` pin every module version and hash; the build runs with ``-mod=readonly`` (go.mod is never
rewritten, nothing is resolved anew) and ``GOTOOLCHAIN=local``, so a release upstream never changes it.

Must not: download prebuilt binaries, write inside the repository, or import anything beyond the standard
library (``make`` may run it before the venv exists).

Run as a script, it prints one line: the path of the ``flux-cel`` binary.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "fluxcel"
SOURCE_FILES = ("go.mod", "go.sum", "main.go")
RUNTIME_MODULE = "github.com/fluxcd/pkg/runtime"
RUNTIME_VERSION = "0.117.0"
BINARY = "flux-cel"
BUILD_ENV = {
    "CGO_ENABLED": "0",
    "GOFLAGS": "-mod=readonly -buildvcs=false",  # go.mod and go.sum as committed, or the build fails
    "GOTOOLCHAIN": "local",  # the machine's Go, never one a go.mod line would fetch
    "GOWORK": "off",
}


def pinned_runtime_version(go_mod: str) -> str:
    """The ``github.com/fluxcd/pkg/runtime`` version that ``go_mod`` requires (without the ``v``)."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(RUNTIME_MODULE)} v(\S+)$", go_mod, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{SOURCE / 'go.mod'} does not require {RUNTIME_MODULE}")
    return match.group(1)


def source_digest() -> str:
    """Twelve hex digits of the sources, so that an edit of main.go or a new pin builds anew."""
    digest = hashlib.sha256()
    for name in SOURCE_FILES:
        digest.update(name.encode() + b"\0" + (SOURCE / name).read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def cache_dir() -> Path:
    """Where the binary for these sources lives (honours XDG_CACHE_HOME)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "o4o" / "testbin" / f"{BINARY}-{RUNTIME_VERSION}-{source_digest()}"


def build(target: Path) -> None:
    """``go build`` the main package in place (it writes only ``target`` and Go's own caches)."""
    subprocess.run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(target), "."],
                   cwd=SOURCE, env={**os.environ, **BUILD_ENV}, check=True, stdout=sys.stderr)


def ensure_flux_cel() -> Path:
    """Return the binary's path, building it first if it is missing."""
    pinned = pinned_runtime_version((SOURCE / "go.mod").read_text())
    if pinned != RUNTIME_VERSION:
        raise RuntimeError(f"fluxcel/go.mod pins {RUNTIME_MODULE} v{pinned}, fluxcelbin.py says v{RUNTIME_VERSION}")
    directory = cache_dir()
    binary = directory / BINARY
    if os.access(binary, os.X_OK):
        return binary
    if shutil.which("go") is None:
        raise RuntimeError("building flux-cel needs Go on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f".{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; a concurrent caller then finds the binary
        if os.access(binary, os.X_OK):
            return binary
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="o4o-flux-cel-", dir=directory) as tmp:
            build(Path(tmp) / BINARY)
            os.replace(Path(tmp) / BINARY, binary)  # one filesystem: never half a binary under its name
        print(f"built {BINARY} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return binary


if __name__ == "__main__":
    try:
        print(ensure_flux_cel())
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"fluxcelbin: {error}", file=sys.stderr)
        sys.exit(1)
