"""Compacts every object Kopf lists and watches before Kopf keeps it: no ``metadata.managedFields``, shared strings,
and of a DeploymentInstance's ``status`` only the summary the handlers read.

Kopf (1.45.2, the locked version) keeps the last body it saw of every object it serves (the daemons'
``body`` is a live view of it). Each DeploymentInstance's ``managedFields`` (the apiserver's record of
which manager wrote which field: one entry per manager, a nested ``f:`` map of every status field) is
about half of that body as Python objects (42 of 88 KiB for a Ready instance; bench ``p4_memory``), and
nothing reads it: not Kopf, not the operator. controller-runtime drops it from its caches for the
same reason (``cache.TransformStripManagedFields``). Of the rest, most is keys and short values every
instance repeats (``lastTransitionTime``, ``Succeeded``, the spec's defaults): JSON decoding makes new
strings for each object, so they are interned (keys, and values up to :data:`SHARED_UP_TO` characters):
1000 instances then hold each once. The objects stay equal; only their strings are shared.

A DeploymentInstance's ``status`` (a Ready one: about 13 KB of JSON, its stages, inventory, facts and log tail)
is most of what is left, and Kopf needs none of it (its progress and diff-base live in annotations,
``handlers.configure_kopf``). Kopf keeps only :func:`status_summary`: what the handlers read from Kopf's body
(the phase gauge in ``handlers.wake``: ``phase``; the fleets' index, ``runner.fleet.summarize_member``:
``observedGeneration``, ``source.commit``, the Ready and Stalled conditions). Whoever needs the whole status
reads it from the API: the worker once as it starts (``InstanceWorker.resumed``; after that it holds what it
writes), the teardown as it begins. Other resources (DeploymentFleets, whose status their timer reads from
Kopf's body) keep theirs.

Owns: one wrapper around Kopf's ``continuous_watch`` (the list and the watch of one resource, which
``infinite_watch`` looks up by module global on every reconnect) that compacts each event's object, and
what of a DeploymentInstance's status Kopf keeps. Bookmarks and errors pass unchanged.

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
from kopf._cogs.structs import references

from o4o_operator.models import GROUP, PLURAL

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


SUMMARY_CONDITIONS = ("Ready", "Stalled")
"""The conditions the fleets' index reads (``runner.fleet.summarize_member``)."""
SUMMARY_CONDITION_FIELDS = ("type", "status", "reason", "message")


def status_summary(status: Any) -> dict[str, Any]:
    """What Kopf keeps of a DeploymentInstance's ``status``: what the handlers read from Kopf's body (see the
    module's docstring), and nothing else."""
    if not isinstance(status, dict):
        return {}
    summary = {key: status[key] for key in ("phase", "observedGeneration") if key in status}
    source = status.get("source")
    if isinstance(source, dict) and "commit" in source:
        summary["source"] = {"commit": source["commit"]}
    conditions = [{key: condition[key] for key in SUMMARY_CONDITION_FIELDS if key in condition}
                  for condition in status.get("conditions") or () if isinstance(condition, dict)
                  and condition.get("type") in SUMMARY_CONDITIONS]
    if conditions:
        summary["conditions"] = conditions
    return summary


def is_instance_resource(resource: Any) -> bool:
    """Whether ``resource`` (Kopf's) is the DeploymentInstances'."""
    return isinstance(resource, references.Resource) and (resource.group, resource.plural) == (GROUP, PLURAL)


def compacted(event: Any, *, summarize_status: bool = False) -> Any:
    """``event`` (a raw watch event, or Kopf's listing mark) with its object compacted: ``managedFields``
    removed, strings shared, and with ``summarize_status`` (a DeploymentInstance's) the status reduced to
    :func:`status_summary` (see the module's docstring)."""
    if isinstance(event, dict):
        obj = event.get("object")
        if isinstance(obj, dict):
            metadata = obj.get("metadata")
            if isinstance(metadata, dict):
                metadata.pop("managedFields", None)
            if summarize_status and "status" in obj:
                obj["status"] = status_summary(obj["status"])
            event["object"] = shared_strings(obj)
    return event


async def continuous_watch_compacted(**kwargs: Any) -> AsyncIterator[Any]:
    """Kopf's ``continuous_watch``, each object compacted (a DeploymentInstance's status summarised)."""
    summarize_status = is_instance_resource(kwargs.get("resource"))
    async for event in _KOPF_WATCH(**kwargs):
        yield compacted(event, summarize_status=summarize_status)


def install() -> None:
    """Put the wrapper where Kopf's ``infinite_watch`` looks it up (by module global, per reconnect)."""
    if watching.continuous_watch is continuous_watch_compacted:
        return
    if "stream = continuous_watch(" not in inspect.getsource(watching.infinite_watch) \
            or "yield {'type': None, 'object': obj}" not in inspect.getsource(_KOPF_WATCH):
        raise KopfWatchShapeChanged("kopf's watch-stream changed; review o4o_operator.kopf_watch_trim")
    watching.continuous_watch = continuous_watch_compacted
