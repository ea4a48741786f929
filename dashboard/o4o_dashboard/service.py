"""The running dashboard: API client, cache, reflectors and web server, wired together.

Owns: the lifecycle of one dashboard (start the reflectors for
DeploymentInstances, their Events and DeploymentFleets, serve the web app on host:port, stop
everything in order), and what it watches (one namespace or all). The CLI
and the tests both run it through :class:`Dashboard`.

Must not: parse flags or decide bind policy (``cli`` and ``security`` do),
or serve anything that is not built from the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from types import TracebackType

from aiohttp import web

from o4o_dashboard.cache import InstanceCache
from o4o_dashboard.credentials import ApiCredentials
from o4o_dashboard.kubeapi import KubeApi
from o4o_dashboard.metrics import DashboardMetrics
from o4o_dashboard.reflector import Backoff, Reflector, events_resource, fleets_resource, instances_resource
from o4o_dashboard.security import is_loopback
from o4o_dashboard.web import create_app

SHUTDOWN_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class DashboardConfig:
    namespace: str | None
    """The namespace to watch; ``None`` watches all namespaces."""
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = dataclasses.field(default=None, repr=False)
    backoff: Backoff = dataclasses.field(default_factory=Backoff)

    @property
    def scope_label(self) -> str:
        return f"namespace {self.namespace}" if self.namespace else "all namespaces"


class Dashboard:
    """One dashboard process's worth of machinery. Use as an async context manager."""

    def __init__(self, credentials: ApiCredentials, config: DashboardConfig,
                 metrics: DashboardMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or DashboardMetrics()
        self.api = KubeApi(credentials, self.metrics)
        self.cache = InstanceCache(self.metrics)
        self.instances = Reflector(self.api, instances_resource(config.namespace), self.cache.instance_store,
                                   self.cache, self.metrics, backoff=config.backoff)
        self.events = Reflector(self.api, events_resource(config.namespace), self.cache.event_store,
                                self.cache, self.metrics, backoff=config.backoff)
        self.fleets = Reflector(self.api, fleets_resource(config.namespace), self.cache.fleet_store,
                                self.cache, self.metrics, backoff=config.backoff)
        self.app = create_app(self.cache, self.metrics, token=config.token, scope_label=config.scope_label,
                              loopback_only=config.token is None and is_loopback(config.host),
                              ready=self.instances.synced.is_set)
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
        self._tasks: list[asyncio.Task[None]] = []
        self.port = config.port

    async def __aenter__(self) -> Dashboard:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.port}"

    @property
    def api_calls(self) -> int:
        """Requests made to the Kubernetes API so far (lists, list pages and watches)."""
        return self.api.calls

    async def start(self) -> None:
        """Start watching and serving. Pages are served at once, empty until the first list."""
        for reflector in (self.instances, self.events, self.fleets):
            self._tasks.append(asyncio.create_task(reflector.run(), name=f"reflector-{reflector.name}"))
        try:
            await self._runner.setup()
            await web.TCPSite(self._runner, self.config.host, self.config.port).start()
        except BaseException:
            await self.stop()
            raise
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])

    async def wait_synced(self) -> None:
        """Return once DeploymentInstances, Events and DeploymentFleets have been listed."""
        await self.instances.synced.wait()
        await self.events.synced.wait()
        await self.fleets.synced.wait()

    async def stop(self) -> None:
        await self._runner.cleanup()
        # The API's connections are closed first, and each close (a TLS shutdown) is awaited: a watch cancelled
        # mid-read hands its connection back without waiting for it to close, and an event loop that ends then
        # leaves its transport unclosed (a ResourceWarning when it is collected, in whatever runs next).
        await self.api.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.api.close()  # a reflector may have opened a new session meanwhile
