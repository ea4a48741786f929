"""Compacts every object Kopf lists and watches before Kopf keeps it: no ``metadata.managedFields``, shared strings.

Kopf (1.45.2, the locked version) keeps the last body it saw of every object it serves (the daemons'
``body`` is a live view of it). Each DeploymentInstance's ``managedFields`` (the apiserver's record of
which manager wrote which field: one entry per manager, a nested ``f:`` map of every status field) is
about half of that body as Python objects (42 of 88 KiB for a Ready instance; bench ``p4_memory``), and
nothing reads it: not Kopf, not the operator. controller-runtime drops it from its caches for the
same reason (``cache.TransformStripManagedFields``). Of the rest, most is keys and short values every
instance repeats (``lastTransitionTime``, ``Succeeded``, the spec's defaults): JSON decoding makes new
strings for each object, so they are interned (keys, and values up to :data:`SHARED_UP_TO` characters):
1000 instances then hold each once. The objects stay equal; only their strings are shared.

Owns: one wrapper around Kopf's ``continuous_watch`` (the list and the watch of one resource, which
``infinite_watch`` looks up by module global on every reconnect) that compacts each event's object.
Bookmarks and errors pass unchanged.

Must not: change anything else in Kopf. It refuses to install (raises) when Kopf's internals no longer
have the shape it wraps, so an upgrade of the lock fails the suite loudly instead of silently keeping
the memory.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import AsyncIterator
from typing import Any

from kopf._cogs.clients import watching

_KOPF_WATCH = watching.continuous_watch


class KopfWatchShapeChanged(RuntimeError):
    """Kopf's watch-stream is no longer the code this wrapper was written for."""


SHARED_UP_TO = 64
"""String values up to this length are interned (timestamps, reasons, names, defaults); longer ones (messages,
log lines) are mostly unique and stay as decoded."""


def shared_strings(value: Any) -> Any:
    """``value`` (decoded JSON) equal, with its keys and short strings interned (dicts and lists rebuilt)."""
    if isinstance(value, dict):
        return {sys.intern(key) if isinstance(key, str) else key: shared_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shared_strings(item) for item in value]
    if isinstance(value, str) and len(value) <= SHARED_UP_TO:
        return sys.intern(value)
    return value


def compacted(event: Any) -> Any:
    """``event`` (a raw watch event, or Kopf's listing mark) with its object compacted: ``managedFields``
    removed, strings shared (see the module's docstring)."""
    if isinstance(event, dict):
        obj = event.get("object")
        if isinstance(obj, dict):
            metadata = obj.get("metadata")
            if isinstance(metadata, dict):
                metadata.pop("managedFields", None)
            event["object"] = shared_strings(obj)
    return event


async def continuous_watch_compacted(**kwargs: Any) -> AsyncIterator[Any]:
    """Kopf's ``continuous_watch``, each object compacted."""
    async for event in _KOPF_WATCH(**kwargs):
        yield compacted(event)


def install() -> None:
    """Put the wrapper where Kopf's ``infinite_watch`` looks it up (by module global, per reconnect)."""
    if watching.continuous_watch is continuous_watch_compacted:
        return
    if "stream = continuous_watch(" not in inspect.getsource(watching.infinite_watch) \
            or "yield {'type': None, 'object': obj}" not in inspect.getsource(_KOPF_WATCH):
        raise KopfWatchShapeChanged("kopf's watch-stream changed; review o4o_operator.kopf_watch_trim")
    watching.continuous_watch = continuous_watch_compacted
