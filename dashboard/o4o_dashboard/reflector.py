"""The list+watch loop that keeps one resource of the cache current.

Owns: the first list, watching from the last resourceVersion seen (bookmarks
advance it), listing again after 410 Gone, reconnecting with capped
exponential backoff and jitter, telling the cache when the API server is
(un)reachable so pages can say the data is stale, the restart and relist
metrics, treating a resource the server does not serve (yet) as empty
when it is optional (a cluster with the DeploymentInstance CRD but not the
DeploymentFleet one is not "unreachable"), and :meth:`Reflector.restart_watch` (used to force a resume from a
chosen resourceVersion, e.g. one too old, to exercise the 410 path).

Must not: serve pages, or reach the API other than through :class:`KubeApi`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable, Mapping
from typing import Protocol

from o4o_dashboard import bodies
from o4o_dashboard.cache import WatchStore
from o4o_dashboard.kubeapi import ApiError, ApiUnreachable, KubeApi, ResourceExpired
from o4o_dashboard.metrics import DashboardMetrics
from o4o_operator.models import GROUP, KIND, PLURAL, VERSION
from o4o_operator.models_fleet import FLEET_PLURAL

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter: a delay in [d/2, d] where d doubles per failure."""

    initial: float = 0.5
    maximum: float = 30.0

    def delay(self, failures: int) -> float:
        ceiling = min(self.maximum, self.initial * 2.0 ** min(failures, 32))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclasses.dataclass(frozen=True, slots=True)
class Resource:
    """What to list and watch: a name for metrics and logs, the collection path, and query parameters.
    An ``optional`` resource that the server answers 404 for counts as empty, and is listed again later."""

    name: str
    path: str
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    optional: bool = False


def instances_resource(namespace: str | None) -> Resource:
    scope = f"/namespaces/{namespace}" if namespace else ""
    return Resource(PLURAL, f"/apis/{GROUP}/{VERSION}{scope}/{PLURAL}")


def fleets_resource(namespace: str | None) -> Resource:
    scope = f"/namespaces/{namespace}" if namespace else ""
    return Resource(FLEET_PLURAL, f"/apis/{GROUP}/{VERSION}{scope}/{FLEET_PLURAL}", optional=True)


def events_resource(namespace: str | None) -> Resource:
    scope = f"/namespaces/{namespace}" if namespace else ""
    return Resource("events", f"/api/v1{scope}/events", {"fieldSelector": f"involvedObject.kind={KIND}"})


class _NotServed(Exception):
    """An optional resource the API server does not serve (its CRD is not installed)."""


class Reachability(Protocol):
    def mark_unreachable(self, source: str) -> None: ...

    def mark_reachable(self, source: str) -> None: ...


def default_watch_timeout() -> int:
    """Like client-go: between 5 and 10 minutes, so many watchers do not reconnect in step."""
    return random.randint(300, 600)


class Reflector:
    def __init__(self, api: KubeApi, resource: Resource, store: WatchStore, reachability: Reachability,
                 metrics: DashboardMetrics | None = None, *, backoff: Backoff | None = None,
                 watch_timeout: Callable[[], int] = default_watch_timeout) -> None:
        self._api = api
        self._resource = resource
        self._store = store
        self._reachability = reachability
        self._metrics = metrics
        self._backoff = backoff or Backoff()
        self._watch_timeout = watch_timeout
        self._restart = asyncio.Event()
        self._restart_from: str | None = None
        self._progress = asyncio.Event()
        self.resource_version = ""
        self.relists = 0
        self.watches_opened = 0
        self.synced = asyncio.Event()
        self.not_served = False
        """An optional resource the API server answered 404 for at the last list."""

    @property
    def name(self) -> str:
        return self._resource.name

    def restart_watch(self, resource_version: str | None = None) -> None:
        """Drop the current watch and resume from ``resource_version`` (default: the last one seen)."""
        self._restart_from = resource_version
        self._restart.set()

    async def wait_until(self, predicate: Callable[[Reflector], bool]) -> None:
        """Return once ``predicate(self)`` holds (checked after every list, watch start and failure)."""
        while not predicate(self):
            await self._progress.wait()

    def _made_progress(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    def _count_restart(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.watch_restarts.labels(self.name, reason).inc()

    async def run(self) -> None:
        """List, then watch for ever; never returns (cancel the task to stop it)."""
        failures = 0
        while True:
            try:
                if not self.resource_version:
                    await self._relist()
                await self._watch()
                failures = 0
            except ResourceExpired:
                if not self.resource_version:  # the list itself expired (a stale continue token)
                    failures += 1
                logger.info("Watch of %s expired at resourceVersion %s; listing again",
                            self.name, self.resource_version or "(list)")
                self.resource_version = ""
                self._count_restart("expired")
                self._made_progress()
                if failures:
                    await self._pause(self._backoff.delay(failures - 1))
            except _NotServed:
                if not self.not_served:
                    logger.info("The API server does not serve %s; showing none and listing again every %.0fs",
                                self.name, self._backoff.maximum)
                self.not_served = True
                await self._pause(self._backoff.maximum)
            except (ApiUnreachable, ApiError) as error:
                if isinstance(error, ApiError) and error.status == 404 and self._resource.optional:
                    self.resource_version = ""  # removed while watched: list again (and see it is gone)
                self._reachability.mark_unreachable(self.name)
                self._count_restart("error")
                delay = self._backoff.delay(failures)
                failures += 1
                logger.warning("Lost the watch of %s (%s); retrying in %.1fs", self.name, error, delay)
                self._made_progress()
                await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        """Back off for ``seconds``, or less if a restart is requested meanwhile."""
        if self._take_restart():
            return
        try:
            await asyncio.wait_for(self._restart.wait(), seconds)
        except TimeoutError:
            return
        self._take_restart()

    def _take_restart(self) -> bool:
        if not self._restart.is_set():
            return False
        self._restart.clear()
        if self._restart_from is not None:
            self.resource_version = self._restart_from
            self._restart_from = None
        return True

    async def _relist(self) -> None:
        try:
            items, resource_version = await self._api.list(self._resource.path, self._resource.params)
        except ApiError as error:
            if error.status != 404 or not self._resource.optional:
                raise
            self._store.replace([])
            self._reachability.mark_reachable(self.name)
            self.synced.set()
            self._made_progress()
            raise _NotServed from None
        self._store.replace(items)
        self.not_served = False
        self.resource_version = resource_version
        self.relists += 1
        if self._metrics is not None:
            self._metrics.relists.labels(self.name).inc()
        self._reachability.mark_reachable(self.name)
        self.synced.set()
        logger.info("Listed %d %s at resourceVersion %s", len(items), self.name, resource_version)
        self._made_progress()

    async def _watch(self) -> None:
        """One watch connection, until the server ends it or a restart is requested."""
        consume = asyncio.ensure_future(self._consume_watch())
        restart = asyncio.ensure_future(self._restart.wait())
        try:
            done, _ = await asyncio.wait({consume, restart}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            consume.cancel()
            restart.cancel()
            await asyncio.gather(consume, restart, return_exceptions=True)
        if consume in done:
            consume.result()  # re-raises what ended the watch
            self._count_restart("timeout")
            return
        self._take_restart()
        self._count_restart("requested")

    async def _consume_watch(self) -> None:
        async with self._api.watch(self._resource.path, self.resource_version, self._watch_timeout(),
                                   self._resource.params) as events:
            self.watches_opened += 1
            self._reachability.mark_reachable(self.name)
            self._made_progress()
            async for event in events:
                version = bodies.text(event.object, "metadata", "resourceVersion")
                if event.type != "BOOKMARK":
                    self._store.apply(event.type, event.object)
                if version:
                    self.resource_version = version
