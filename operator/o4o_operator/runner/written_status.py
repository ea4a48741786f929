"""The status a worker last wrote, kept small: canonical JSON, compressed.

Owns: :class:`WrittenStatus`, what the API holds of one instance's status as far as its worker knows,
so that a pass that changes nothing writes nothing and a write sends nulls for fields it drops. Every
idle instance keeps one: as canonical JSON text a Ready status with a full ``logTail`` is about 13 KB
(a thirteenth of 1000 idle instances' RSS); zlib at level 1 keeps a fifth of that. Equal statuses
give equal bytes (canonical text, one compression level), so comparing needs no decompression.
Must not know what a status means.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

_LEVEL = 1
"""zlib's fastest level: most of the saving (the status's keys and log lines repeat) for little CPU."""


def pack(body: Mapping[str, Any]) -> bytes:
    """``body`` as compressed canonical JSON: equal bodies give equal bytes."""
    return zlib.compress(json.dumps(body, sort_keys=True, separators=(",", ":")).encode(), _LEVEL)


class WrittenStatus:
    """One status body as written, held packed (see :func:`pack`)."""

    __slots__ = ("packed",)

    def __init__(self, packed: bytes) -> None:
        self.packed = packed

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> WrittenStatus:
        return cls(pack(body))

    def is_packed(self, packed: bytes) -> bool:
        """Whether ``packed`` (:func:`pack` of a body) is this status."""
        return packed == self.packed

    def body(self) -> dict[str, Any]:
        """The written body, as a new dict."""
        return dict(json.loads(zlib.decompress(self.packed)))
