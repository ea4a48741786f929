"""Defensive readers for raw Kubernetes JSON bodies.

Owns: walking nested ``dict``/``list`` bodies that came off the wire and
returning typed values (or a default) whatever their shape, and parsing
Kubernetes timestamps. Purely computational: no I/O. Must not raise on a
malformed body: the dashboard shows what it can of any object.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

Body = Mapping[str, Any]
"""A decoded JSON object as received from the API server."""


def lookup(body: Any, *path: str) -> Any:
    """The value at ``path`` inside nested mappings, or ``None`` if any step is missing."""
    current = body
    for step in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(step)
    return current


def text(body: Any, *path: str, default: str = "") -> str:
    """A string at ``path``; numbers are shown as text, anything else gives ``default``."""
    value = lookup(body, *path)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return default


def integer(body: Any, *path: str, default: int = 0) -> int:
    value = lookup(body, *path)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return default


def flag(body: Any, *path: str) -> bool:
    return lookup(body, *path) is True


def mapping(body: Any, *path: str) -> Body:
    value = lookup(body, *path)
    return value if isinstance(value, Mapping) else {}


def mappings(body: Any, *path: str) -> list[Body]:
    """The mappings in the list at ``path`` (other items are skipped)."""
    value = lookup(body, *path)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def strings(body: Any, *path: str) -> list[str]:
    """The strings in the list at ``path`` (other items are skipped)."""
    value = lookup(body, *path)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


def timestamp(body: Any, *path: str) -> datetime.datetime | None:
    """An RFC 3339 timestamp at ``path`` as an aware UTC datetime, or ``None``."""
    return parse_timestamp(text(body, *path))


def parse_timestamp(value: str) -> datetime.datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.astimezone(datetime.UTC)


def object_key(body: Any) -> tuple[str, str]:
    """``(namespace, name)`` of a Kubernetes object."""
    return text(body, "metadata", "namespace"), text(body, "metadata", "name")
