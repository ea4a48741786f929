"""The in-memory cache every page is served from, and its change feed.

Owns: the DeploymentInstances and DeploymentFleets (trimmed bodies plus their
precomputed rows), the Events about instances, whether the data is stale (and since when), a revision
number bumped on every change, and the subscriptions the live stream reads.
The reflectors fill it through :class:`InstanceStore`, :class:`FleetStore`
and :class:`EventStore`.

Must not: do I/O or call the API (pages read it without any API call), keep
fields the dashboard never shows (managedFields, annotations), or hold more
than :data:`EVENTS_PER_INSTANCE` Events per instance.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from o4o_dashboard import bodies
from o4o_dashboard.detail import EventView, event_view
from o4o_dashboard.fleets import FleetRow, fleet_row
from o4o_dashboard.metrics import DashboardMetrics
from o4o_dashboard.views import InstanceRow, instance_row, is_paused
from o4o_operator.models import PAUSED_ANNOTATION

Key = tuple[str, str]
EVENTS_PER_INSTANCE = 20
KEPT_METADATA = ("name", "namespace", "uid", "generation", "creationTimestamp", "deletionTimestamp",
                 "resourceVersion", "labels", "ownerReferences")


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class CachedInstance:
    body: Mapping[str, Any]
    row: InstanceRow


@dataclasses.dataclass(frozen=True, slots=True)
class CachedFleet:
    body: Mapping[str, Any]
    row: FleetRow


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """What changed: ``kind`` is ``instance``, ``fleet``, ``events`` or ``status``; ``key`` is
    ``namespace/name``."""

    kind: str
    key: str
    revision: int


def trimmed(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a DeploymentInstance or DeploymentFleet the dashboard shows (drops managedFields and
    annotations)."""
    metadata = bodies.mapping(body, "metadata")
    kept: dict[str, Any] = {name: metadata[name] for name in KEPT_METADATA if name in metadata}
    if is_paused(body):  # the paused annotation is the one annotation that matters; keep its effect
        kept["annotations"] = {PAUSED_ANNOTATION: "true"}
    return {"metadata": kept, "spec": body.get("spec", {}), "status": body.get("status", {})}


class Subscription:
    """One live-stream client's pending changes, coalesced per key so memory stays bounded."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], Change] = {}
        self._wakeup = asyncio.Event()
        self.closed = False

    def push(self, change: Change) -> None:
        self._pending[(change.kind, change.key)] = change
        self._wakeup.set()

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()

    async def next_batch(self, wait_seconds: float) -> list[Change]:
        """Changes since the last call; empty after ``wait_seconds`` without any (or once closed)."""
        if not self._pending and not self.closed:
            try:
                await asyncio.wait_for(self._wakeup.wait(), wait_seconds)
            except TimeoutError:
                return []
        self._wakeup.clear()
        batch = sorted(self._pending.values(), key=lambda change: change.revision)
        self._pending.clear()
        return batch


class WatchStore(Protocol):
    """What a reflector feeds: a full list, then watch events one by one."""

    def replace(self, items: list[Mapping[str, Any]]) -> None: ...

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None: ...


class InstanceCache:
    """DeploymentInstances and their Events by ``(namespace, name)``; one per dashboard process."""

    def __init__(self, metrics: DashboardMetrics | None = None,
                 clock: Callable[[], datetime.datetime] = utc_now) -> None:
        self._metrics = metrics
        self._clock = clock
        self._instances: dict[Key, CachedInstance] = {}
        self._events: dict[Key, dict[str, EventView]] = {}
        self._event_owner: dict[str, Key] = {}
        self._rows: list[InstanceRow] | None = None
        self._fleets: dict[Key, CachedFleet] = {}
        self._stale_sources: dict[str, datetime.datetime] = {}
        self._subscriptions: set[Subscription] = set()
        self._changed = asyncio.Event()
        self.revision = 0
        self.boot_id = secrets.token_hex(8)
        """Differs per process, so a page can tell a restarted dashboard (whose revisions start over)."""
        self.instance_store = InstanceStore(self)
        self.event_store = EventStore(self)
        self.fleet_store = FleetStore(self)

    # ---- reading (what pages use) ------------------------------------------------

    def rows(self) -> list[InstanceRow]:
        if self._rows is None:
            self._rows = [cached.row for cached in self._instances.values()]
        return self._rows

    def get(self, namespace: str, name: str) -> CachedInstance | None:
        return self._instances.get((namespace, name))

    def fleet_rows(self) -> list[FleetRow]:
        """Every fleet, by namespace and name."""
        return [self._fleets[key].row for key in sorted(self._fleets)]

    def get_fleet(self, namespace: str, name: str) -> CachedFleet | None:
        return self._fleets.get((namespace, name))

    def events_for(self, namespace: str, name: str) -> list[EventView]:
        return list(self._events.get((namespace, name), {}).values())

    def __len__(self) -> int:
        return len(self._instances)

    @property
    def event_count(self) -> int:
        return len(self._event_owner)

    @property
    def stale_since(self) -> datetime.datetime | None:
        return min(self._stale_sources.values(), default=None)

    @property
    def stale(self) -> bool:
        return bool(self._stale_sources)

    # ---- staleness (what reflectors report) ------------------------------------------

    def mark_unreachable(self, source: str) -> None:
        """``source`` lost the API server; keep serving, marked stale, from now on (first loss counts)."""
        if source in self._stale_sources:
            return
        self._stale_sources[source] = self._clock()
        self._status_changed()

    def mark_reachable(self, source: str) -> None:
        if self._stale_sources.pop(source, None) is not None:
            self._status_changed()

    # ---- change feed -----------------------------------------------------------------

    def subscribe(self) -> Subscription:
        subscription = Subscription()
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def close_subscriptions(self) -> None:
        for subscription in list(self._subscriptions):
            subscription.close()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    async def wait_until(self, predicate: Callable[[InstanceCache], bool]) -> None:
        """Return once ``predicate(cache)`` holds (checked after every change)."""
        while not predicate(self):
            await self._changed.wait()

    def _publish(self, kind: str, key: str) -> None:
        self.revision += 1
        change = Change(kind=kind, key=key, revision=self.revision)
        for subscription in self._subscriptions:
            subscription.push(change)
        if self._metrics is not None:
            self._metrics.cached_instances.set(len(self._instances))
            self._metrics.cached_events.set(len(self._event_owner))
        self._changed.set()  # wakes every waiter; they re-check against the next event
        self._changed = asyncio.Event()

    def _status_changed(self) -> None:
        if self._metrics is not None:
            since = self.stale_since
            self._metrics.stale.set(1 if since else 0)
            self._metrics.stale_since.set(since.timestamp() if since else 0)
        self._publish("status", "")

    # ---- writing (what the reflectors call, through the stores) ------------------------------

    def replace_instances(self, items: list[Mapping[str, Any]]) -> None:
        """A full list: drop what is gone, add or update the rest (publishing only real changes)."""
        fresh = {bodies.object_key(item): item for item in items}
        for key in [key for key in self._instances if key not in fresh]:
            self._instances.pop(key)
            self._rows = None
            self._publish("instance", _key_text(key))
        for key, item in fresh.items():
            if self._put_instance(key, item):
                self._publish("instance", _key_text(key))

    def apply_instance(self, event_type: str, obj: Mapping[str, Any]) -> None:
        key = bodies.object_key(obj)
        if event_type == "DELETED":
            changed = self._instances.pop(key, None) is not None
            self._rows = None
        else:
            changed = self._put_instance(key, obj)
        if changed:
            self._publish("instance", _key_text(key))

    def replace_fleets(self, items: list[Mapping[str, Any]]) -> None:
        fresh = {bodies.object_key(item): item for item in items}
        for key in [key for key in self._fleets if key not in fresh]:
            self._fleets.pop(key)
            self._publish("fleet", _key_text(key))
        for key, item in fresh.items():
            if self._put_fleet(key, item):
                self._publish("fleet", _key_text(key))

    def apply_fleet(self, event_type: str, obj: Mapping[str, Any]) -> None:
        key = bodies.object_key(obj)
        changed = self._fleets.pop(key, None) is not None if event_type == "DELETED" else self._put_fleet(key, obj)
        if changed:
            self._publish("fleet", _key_text(key))

    def _put_fleet(self, key: Key, body: Mapping[str, Any]) -> bool:
        if not all(key):
            return False
        slim = trimmed(body)
        previous = self._fleets.get(key)
        if previous is not None and previous.body == slim:
            return False
        self._fleets[key] = CachedFleet(body=slim, row=fleet_row(slim))
        return True

    def replace_events(self, items: list[Mapping[str, Any]]) -> None:
        touched = set(self._events)
        self._events.clear()
        self._event_owner.clear()
        for view in _oldest_first(event_view(item) for item in items):
            owner = self._put_event(view)
            if owner is not None:
                touched.add(owner)
        for owner in sorted(touched):
            self._publish("events", _key_text(owner))

    def apply_event(self, event_type: str, obj: Mapping[str, Any]) -> None:
        view = event_view(obj)
        owner = self._drop_event(view.key) if event_type == "DELETED" else self._put_event(view)
        if owner is not None:
            self._publish("events", _key_text(owner))

    def _put_instance(self, key: Key, body: Mapping[str, Any]) -> bool:
        if not all(key):
            return False
        slim = trimmed(body)
        previous = self._instances.get(key)
        if previous is not None and previous.body == slim:
            return False
        self._instances[key] = CachedInstance(body=slim, row=instance_row(slim))
        self._rows = None
        return True

    def _put_event(self, view: EventView) -> Key | None:
        owner = (view.involved_namespace, view.involved_name)
        if not all(owner):
            return None
        self._drop_event(view.key)
        per_instance = self._events.setdefault(owner, {})
        per_instance[view.key] = view
        self._event_owner[view.key] = owner
        if len(per_instance) > EVENTS_PER_INSTANCE:
            evicted = _oldest_first(per_instance.values())[0]
            self._drop_event(evicted.key)
        return owner

    def _drop_event(self, event_key: str) -> Key | None:
        owner = self._event_owner.pop(event_key, None)
        if owner is None:
            return None
        per_instance = self._events.get(owner, {})
        per_instance.pop(event_key, None)
        if not per_instance:
            self._events.pop(owner, None)
        return owner


def _key_text(key: Key) -> str:
    return f"{key[0]}/{key[1]}"


def _oldest_first(views: Iterable[EventView]) -> list[EventView]:
    oldest = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    return sorted(views, key=lambda view: view.last_seen or oldest)


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceStore:
    """The DeploymentInstance side of the cache, as a reflector sees it."""

    cache: InstanceCache

    def replace(self, items: list[Mapping[str, Any]]) -> None:
        self.cache.replace_instances(items)

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        self.cache.apply_instance(event_type, obj)


@dataclasses.dataclass(frozen=True, slots=True)
class EventStore:
    """The Event side of the cache, as a reflector sees it."""

    cache: InstanceCache

    def replace(self, items: list[Mapping[str, Any]]) -> None:
        self.cache.replace_events(items)

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        self.cache.apply_event(event_type, obj)


@dataclasses.dataclass(frozen=True, slots=True)
class FleetStore:
    """The DeploymentFleet side of the cache, as a reflector sees it."""

    cache: InstanceCache

    def replace(self, items: list[Mapping[str, Any]]) -> None:
        self.cache.replace_fleets(items)

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        self.cache.apply_fleet(event_type, obj)
