"""The sandbox's Node.js mirror, shaped like https://nodejs.org/dist, served by the curl shim.

Owns: ``v<version>/node-v<version>-linux-<x64|arm64>.tar.xz`` in miniature (the official layout:
``bin/node``, ``bin/npm -> ../lib/node_modules/npm/bin/npm-cli.js``, ``bin/npx``; ``bin/node`` answers
``--version`` and the rest leads back to the node and npm shims) and ``v<version>/SHASUMS256.txt`` with
the real digests of those tarballs, so the runtime script's download, checksum and unpacking run for real.
Deterministic: the same shim directory always gives the same bytes.

Must not: import anything beyond the standard library (``sandbox_shim.py`` imports it as a sibling script).
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from pathlib import Path

NODE_RELEASE = re.compile(r"/v(\d+\.\d+\.\d+)/(SHASUMS256\.txt|node-v\1-linux-(x64|arm64)\.tar\.xz)$")


def _tar_add(archive: tarfile.TarFile, name: str, text: str = "", *, link: str | None = None,
             mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.mode = 1_700_000_000, mode
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
        archive.addfile(info)
        return
    data = text.encode()
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def node_tarball(version: str, arch: str, shim_dir: Path) -> bytes:
    """The official layout in miniature: ``bin/node`` answers --version; npm leads back to the npm shim."""
    top = f"node-v{version}-linux-{arch}"
    node_script = (f"#!/bin/sh\n# Node.js v{version} for the sandbox\n"
                   f'case "$1" in --version|-v) echo v{version} ;; *) exec {shim_dir / "node"} "$@" ;; esac\n')
    npm_script = f"#!/bin/sh\nexec {shim_dir / 'npm'} \"$@\"\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
        _tar_add(archive, f"{top}/bin/node", node_script, mode=0o755)
        _tar_add(archive, f"{top}/bin/npm", link="../lib/node_modules/npm/bin/npm-cli.js")
        _tar_add(archive, f"{top}/bin/npx", link="../lib/node_modules/npm/bin/npx-cli.js")
        _tar_add(archive, f"{top}/lib/node_modules/npm/package.json", '{"name": "npm", "version": "10.9.3"}\n')
        for tool in ("npm-cli.js", "npx-cli.js"):
            _tar_add(archive, f"{top}/lib/node_modules/npm/bin/{tool}", npm_script, mode=0o755)
    return buffer.getvalue()


def serve(url: str, shim_dir: Path) -> bytes | None:
    """What a nodejs.org/dist-shaped mirror serves at ``url``; None for any other URL."""
    match = NODE_RELEASE.search(url)
    if match is None:
        return None
    version, _, arch = match.groups()
    if arch is not None:
        return node_tarball(version, arch, shim_dir)
    lines = [f"{hashlib.sha256(node_tarball(version, a, shim_dir)).hexdigest()}  node-v{version}-linux-{a}.tar.xz\n"
             for a in ("arm64", "x64")]
    return "".join(lines).encode()
