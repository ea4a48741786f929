"""Which Debian mirror this machine's apt uses: the registry the host images are built from and reach.

Owns: reading ``/etc/apt/sources.list`` and ``/etc/apt/sources.list.d/*`` (one-line and deb822 formats) and
picking the Debian archive and security URIs among them. Purely reads files; must not name a mirror itself
beyond Debian's documented default, which it uses only when the machine lists none.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

DEFAULT_ARCHIVE = "http://deb.debian.org/debian"
APT_DIR = Path("/etc/apt")


@dataclasses.dataclass(frozen=True)
class DebianMirror:
    """The archive URI (``.../debian``) and, when the machine has one, the security URI (``.../debian-security``)."""

    archive: str
    security: str | None = None

    @property
    def hosts(self) -> tuple[str, ...]:
        """The registry host names a proxy must let through for apt to work."""
        names = [urllib.parse.urlsplit(uri).hostname for uri in (self.archive, self.security) if uri]
        return tuple(dict.fromkeys(name for name in names if name))


def _one_line_uris(text: str) -> Iterable[str]:
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = [word for word in words[1:] if not word.startswith("[")]  # drop "[signed-by=...]"
        if words:
            yield words[0]


def _deb822_uris(text: str) -> Iterable[str]:
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split():
            yield from fields.get("uris", "").split()


def machine_uris(apt_dir: Path = APT_DIR) -> list[str]:
    """Every binary-package URI that apt on this machine is configured with, in file order."""
    uris: list[str] = []
    main = apt_dir / "sources.list"
    if main.is_file():
        uris += _one_line_uris(main.read_text(errors="replace"))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                uris += _one_line_uris(path.read_text(errors="replace"))
            elif path.suffix == ".sources":
                uris += _deb822_uris(path.read_text(errors="replace"))
    return uris


def machine_debian_mirror(apt_dir: Path = APT_DIR) -> DebianMirror:
    """The Debian archive and security URIs from this machine's apt sources (Debian's default when none)."""
    archive = security = None
    for uri in machine_uris(apt_dir):
        path = urllib.parse.urlsplit(uri).path.rstrip("/")
        if path.endswith("/debian-security") and security is None:
            security = uri.rstrip("/")
        elif path.endswith("/debian") and archive is None:
            archive = uri.rstrip("/")
    return DebianMirror(archive=archive or DEFAULT_ARCHIVE, security=security)
