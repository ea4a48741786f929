"""Which TLS roots the image must trust beyond Debian's: the ones this machine added to its own store.

Owns: comparing the machine's CA bundle with Debian's ``ca-certificates`` set and returning the extra roots
(PEM), such as a corporate TLS-inspection CA that every HTTPS request to a registry passes through here. A
corporate golden image ships the same roots in ``/usr/local/share/ca-certificates``. Purely reads files;
certificates are public, and nothing here reads a key.
"""

from __future__ import annotations

import re
from pathlib import Path

MACHINE_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_CERTIFICATES = Path("/usr/share/ca-certificates")
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)


def _bodies(text: str) -> list[str]:
    return ["".join(body.split()) for body in _PEM.findall(text)]


def _as_pem(body: str) -> str:
    lines = [body[start:start + 64] for start in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def machine_extra_roots(bundle: Path = MACHINE_BUNDLE, debian: Path = DEBIAN_CERTIFICATES) -> tuple[str, ...]:
    """Roots in ``bundle`` that no file under ``debian`` holds, as PEM, in bundle order (empty when none)."""
    if not bundle.is_file():
        return ()
    known = {body for path in debian.rglob("*.crt") if path.is_file() for body in _bodies(path.read_text())}
    extra = [body for body in _bodies(bundle.read_text()) if body not in known]
    return tuple(_as_pem(body) for body in dict.fromkeys(extra))
