"""The Debian packages booted hosts downloaded, kept on this machine and laid into each new host's apt archive.

Owns: :func:`seed` (before a host boots: link every cached ``.deb`` into its ``/var/cache/apt/archives``) and
:func:`harvest` (when it is removed: keep the ``.deb`` files it downloaded that the cache lacks), in one flat
directory, ``~/.cache/o4o/hosts/apt-archives/`` by default.

Why: through the hosts' proxy, downloading the runtime stage's packages took 12 s of its 26 s of apt on an
idle machine, for every server set up from scratch. A package file's name holds its version and architecture,
and apt checks the size and hash of a file it finds in the archive against the index it just fetched before
using it, so a seeded file is used only when it is exactly the one the host would have downloaded; anything
else is downloaded as before. Nothing is installed by seeding: the host stays as fresh as the image, and the
pipeline's apt-get runs in full (as on a server whose archive was warmed, as corporate images often are).

Must not: put anything but ``*.deb`` files whose names are plain package file names into the cache or a
host, or fail a host's boot or removal because the cache could not be read or written (it only saves time).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from pathlib import Path

ARCHIVE = "var/cache/apt/archives"
"""apt's archive, relative to a host's root."""
_PACKAGE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~%_-]*_[A-Za-z0-9.+~%-]+_[a-z0-9-]+\.deb$")


def is_package_file(name: str) -> bool:
    """Whether ``name`` is a Debian package file name as apt stores it (``name_version_arch.deb``)."""
    return bool(_PACKAGE_FILE.match(name))


def _place(source: Path, target: Path) -> bool:
    """Put ``source`` at ``target`` (a hard link, else a copy) atomically; False if it could not."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        try:
            os.link(source, temporary)
        except OSError:  # another file system, or links refused: copy
            shutil.copyfile(source, temporary)
            temporary.chmod(0o644)
        os.replace(temporary, target)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
        return False


def _package_files(directory: Path) -> list[Path]:
    try:
        return sorted(path for path in directory.iterdir() if path.is_file() and is_package_file(path.name))
    except OSError:
        return []


def seed(cache: Path, archive: Path) -> int:
    """Lay every cached package file not already in ``archive`` into it; return how many."""
    placed = 0
    for source in _package_files(cache):
        target = archive / source.name
        if not target.exists() and _place(source, target):
            placed += 1
    return placed


def harvest(archive: Path, cache: Path) -> int:
    """Keep the package files in ``archive`` that ``cache`` lacks (made if missing); return how many."""
    files = _package_files(archive)
    if not files:
        return 0
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return 0
    kept = 0
    for source in files:
        target = cache / source.name
        if not target.exists() and _place(source, target):
            kept += 1
    return kept
