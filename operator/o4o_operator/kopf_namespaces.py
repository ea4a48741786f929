"""Closes a race in Kopf's namespace observation, for ``run --namespace`` with globs.

Kopf (1.45.2, the locked version) observes namespaces in two steps: it lists
them once, then starts a watcher, which lists them *again* and watches from
that second list's resourceVersion. Its event processor drops every event of
the second list (``type`` None). A namespace created between the two lists is
therefore in neither the first list nor the watch: Kopf never watches it, and
the DeploymentInstances made in it are ignored until the operator restarts.
The window is the operator's first seconds, which is exactly when a CI job or
an Argo CD sync creates a namespace and its DI.

Owns: one replacement for ``process_discovered_namespace_event`` that revises
the namespaces from the second list as well (adding or dropping a namespace is
idempotent; the orchestrator is notified only when the set changed). Every
other event goes to Kopf's own processor unchanged.

Must not: change anything else in Kopf. It refuses to install (raises) when
Kopf's internals no longer have the shape it replaces, so an upgrade of the
lock fails the suite loudly instead of silently losing the fix.
"""

from __future__ import annotations

import inspect
from typing import Any

from kopf._cogs.structs import bodies, references
from kopf._core.reactor import observation

_KOPF_PROCESSOR = observation.process_discovered_namespace_event


class KopfShapeChanged(RuntimeError):
    """Kopf's namespace observation is no longer the code this fix was written for."""


async def process_namespace_event_including_listing(
        *, raw_event: bodies.RawEvent, namespaces: Any, insights: references.Insights, **kwargs: Any) -> None:
    """Kopf's processor, plus the listing events (``type`` None) it drops."""
    if raw_event["type"] is not None:
        await _KOPF_PROCESSOR(raw_event=raw_event, namespaces=namespaces, insights=insights, **kwargs)
        return
    async with insights.revised:
        before = set(insights.namespaces)
        observation.revise_namespaces(raw_events=[raw_event], insights=insights, namespaces=namespaces)
        if insights.namespaces != before:
            insights.revised.notify_all()


def install() -> None:
    """Put the replacement where Kopf's namespace observer looks it up (by module global, per call)."""
    if observation.process_discovered_namespace_event is process_namespace_event_including_listing:
        return
    observer_source = inspect.getsource(observation.namespace_observer)
    processor_source = inspect.getsource(_KOPF_PROCESSOR)
    if "functools.partial(process_discovered_namespace_event" not in observer_source \
            or "if raw_event['type'] is None:" not in processor_source:
        raise KopfShapeChanged("kopf's namespace observer changed; review o4o_operator.kopf_namespaces")
    observation.process_discovered_namespace_event = process_namespace_event_including_listing
