"""Redaction of secret values from text before it is logged or stored anywhere.

Owns: the ``Redactor`` that replaces known secret values (and their common
encodings) and well-known credential shapes with ``[REDACTED]``, and the
bounding of log lines. Purely computational: no I/O.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable

MASK = "[REDACTED]"
_MIN_SECRET_LENGTH = 4
_PATTERNS = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL),
    re.compile(r"(?i)(://[^/\s:@]+:)[^@\s]+@"),  # credentials inside URLs
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
)


class Redactor:
    """Replaces every registered secret value, and credential-shaped text, with a mask."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for value in secrets:
            for line in value.splitlines() or [value]:
                self._add_one(line.strip())
            self._add_one(value.strip())

    def _add_one(self, value: str) -> None:
        if len(value) < _MIN_SECRET_LENGTH:
            return
        self._values.add(value)
        self._values.add(urllib.parse.quote(value, safe=""))
        self._values.add(base64.b64encode(value.encode()).decode())

    def __call__(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) + MASK + "@") if m.re is _PATTERNS[1] else MASK, text)
        return text


def bound_line(line: str, max_bytes: int) -> str:
    """Cut a line to at most ``max_bytes`` UTF-8 bytes, marking the cut."""
    encoded = line.encode()
    if len(encoded) <= max_bytes:
        return line
    return encoded[: max_bytes - 3].decode(errors="ignore") + "..."
