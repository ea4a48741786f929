"""What every instance shares, and the one place where the concrete providers are built.

Owns: :class:`Runtime` (settings, Kubernetes client, SSH connector, provider
factories, the pipeline semaphore, the clock); the default factories, the only
code in the runner that names a concrete provider class (``LightsailCloud``,
``LightsailDns``, ``Route53Dns``, ``NoDns``, ``SshConnector``): everything else
uses providers through :mod:`o4o_operator.providers.protocols`; and
:class:`OperatorState`, the operator-wide mutable state the Kopf handlers keep
(cluster credentials from login, the runtime built from them on first use, the
last phase seen of each instance for the ``o4o_instances`` gauge, the allocator's trim loop).
Must not import Kopf: the handlers translate Kopf's objects into these.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
from collections.abc import Callable, Mapping
from typing import Any

from o4o_operator import metrics
from o4o_operator.fencing import Term
from o4o_operator.kubeapi import Credentials, KubeApi
from o4o_operator.models import DnsProviderKind, Phase
from o4o_operator.providers import aws
from o4o_operator.providers.aws import ClientSettings
from o4o_operator.providers.dns import LightsailDns, NoDns, Resolver, Route53Dns, resolve_with_getaddrinfo
from o4o_operator.providers.lightsail import LightsailCloud
from o4o_operator.providers.protocols import CloudProvider, DnsProvider, HostConnector, NameCheck
from o4o_operator.providers.ssh import SshConnector
from o4o_operator.providers.ssh_session import HostFence
from o4o_operator.rendering import render
from o4o_operator.runner import memory_trim
from o4o_operator.runner.settings import OperatorSettings

CloudFactory = Callable[[str, ClientSettings, float], CloudProvider]
"""(region, client settings, seconds between polls of a pending server) -> provider."""
DnsFactory = Callable[[DnsProviderKind, ClientSettings], DnsProvider]
NameCheckFactory = Callable[[Resolver], NameCheck]


def default_cloud_factory(region: str, settings: ClientSettings, poll_interval: float) -> CloudProvider:
    return LightsailCloud(region, settings, poll_interval=poll_interval)


def default_dns_factory(kind: DnsProviderKind, settings: ClientSettings) -> DnsProvider:
    if kind is DnsProviderKind.LIGHTSAIL:
        return LightsailDns(settings)
    if kind is DnsProviderKind.ROUTE53:
        return Route53Dns(settings)
    return NoDns()


def default_name_check(resolver: Resolver) -> NameCheck:
    return NoDns(resolver)


@dataclasses.dataclass
class Runtime:
    settings: OperatorSettings
    kube: KubeApi
    connector: HostConnector
    pipelines: asyncio.Semaphore
    """How many instances may run a stage at once, shared by every instance."""
    decisions: asyncio.Semaphore = dataclasses.field(default_factory=lambda: asyncio.Semaphore(20))
    """How many instances may read their facts and decide at once (as many as may run a stage): each holds its
    status and the Secrets it read meanwhile, and 1000 workers start together (bench ``p4_memory``)."""
    cloud_factory: CloudFactory = default_cloud_factory
    dns_factory: DnsFactory = default_dns_factory
    name_check_factory: NameCheckFactory = default_name_check
    """Checks that a name resolves to the server, for DNS managed elsewhere (``spec.dns.provider: none``)."""
    resolver: Resolver = resolve_with_getaddrinfo
    """Looks up an existing host given by name (tests inject one; no network needed)."""
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
    in_flight: dict[str, aws.InFlightCalls] = dataclasses.field(default_factory=dict)
    """Per instance uid: its boto3 calls still running in their threads (teardown waits for them)."""

    def in_flight_for(self, uid: str) -> aws.InFlightCalls:
        return self.in_flight.setdefault(uid, aws.InFlightCalls())

    async def stored_instance(self, metadata: Mapping[str, Any]) -> dict[str, Any] | None:
        """The instance ``metadata`` names as the API holds it now, status whole (Kopf keeps only a summary, see
        :mod:`o4o_operator.kopf_watch_trim`); None when it is gone, or its name is another instance's now."""
        stored = await self.kube.get_instance(metadata["namespace"], metadata["name"])
        if stored is None or stored["metadata"].get("uid") != metadata.get("uid"):
            return None
        return stored

    def cloud(self, region: str, settings: ClientSettings) -> CloudProvider:
        """The cloud provider of ``region``, polling a pending server at the operator's interval."""
        return self.cloud_factory(region, settings, self.settings.cloud_poll_interval)

    def dns(self, kind: DnsProviderKind, settings: ClientSettings) -> DnsProvider:
        """The DNS provider of ``kind`` (Route 53 at its own endpoint; Lightsail's DNS at Lightsail's)."""
        if kind is DnsProviderKind.ROUTE53:
            settings = dataclasses.replace(settings, endpoint_url=self.settings.route53_endpoint_url)
        return self.dns_factory(kind, settings)


KUBE_CONNECTIONS_PER_PIPELINE = 0.25
"""Each pipeline waits on at most one Kubernetes call at a time, and spends most of its time on hosts and
clouds: a connection for every four of them, never fewer than 20. With 20 for 500 pipelines, the calls of
every stage boundary queued behind 25 others each (bench P1 at 500)."""


def kube_connections(max_pipelines: int) -> int:
    """The Kubernetes client's connection pool for ``max_pipelines`` pipelines at once."""
    return max(20, int(max_pipelines * KUBE_CONNECTIONS_PER_PIPELINE))


def build_runtime(settings: OperatorSettings, credentials: Credentials, *, honour_sandbox_root: bool,
                  term: Term | None = None, clock: Callable[[], datetime.datetime] | None = None) -> Runtime:
    """With ``term`` (leader election on), every Kubernetes write and every host command is refused once the
    term is over, and every host script runs behind the host fence under the term's epoch. ``clock``: a test
    world's clock (None: the real one)."""
    # Each running pipeline waits on at most one cloud call at a time: give every one a thread.
    aws.configure_pool(max(aws.DEFAULT_POOL_SIZE, settings.max_pipelines))
    guard = None if term is None else term.check
    fence = None if term is None else HostFence(term, render.render_fence())
    runtime = Runtime(settings=settings, kube=KubeApi(credentials, write_guard=guard,
                                                      connections=kube_connections(settings.max_pipelines)),
                      connector=SshConnector(max_sessions=settings.max_ssh_sessions,
                                             honour_sandbox_root=honour_sandbox_root, fence=fence),
                      pipelines=asyncio.Semaphore(settings.max_pipelines),
                      decisions=asyncio.Semaphore(settings.max_pipelines))
    if clock is not None:
        runtime.clock = clock
    return runtime


@dataclasses.dataclass
class OperatorState:
    """One per operator process: what the handlers share across every instance."""

    settings: OperatorSettings
    honour_sandbox_root: bool = False
    term: Term | None = None
    """The leader's term when leader election is on (see :mod:`o4o_operator.runner.leader`)."""
    clock: Callable[[], datetime.datetime] | None = None
    """A test world's clock (``o4o_operator.testing.operator_main`` only); None: the real one."""
    credentials: Credentials | None = None
    _runtime: Runtime | None = None
    _phases: dict[str, str] = dataclasses.field(default_factory=dict)
    _phase_counts: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """How many of ``_phases`` are in each phase, kept with it."""
    _trimming: asyncio.Task[None] | None = None

    def start_memory_trim(self) -> None:
        """Hand the C allocator's free memory back every ten seconds (see :mod:`~o4o_operator.runner.memory_trim`),
        where the C library can."""
        trim = memory_trim.libc_malloc_trim()
        if trim is not None and self._trimming is None:
            self._trimming = asyncio.get_running_loop().create_task(memory_trim.trim_forever(trim))

    def runtime(self) -> Runtime:
        """The operator-wide runtime, made on first use (after login gave us credentials), so that every
        instance shares one Kubernetes session, one SSH connector and one pipeline semaphore."""
        if self._runtime is None:
            if self.credentials is None:
                raise RuntimeError("No cluster credentials yet: the runtime is built after login")
            self._runtime = build_runtime(self.settings, self.credentials,
                                          honour_sandbox_root=self.honour_sandbox_root, term=self.term,
                                          clock=self.clock)
        return self._runtime

    def saw_phase(self, uid: str, phase: str | None) -> None:
        """Tally ``o4o_instances{phase}``: ``phase`` is the instance's current one, None once it is gone.

        Called on every watch event, so it moves one instance between counts rather than counting all of them
        (a scan per event made N instances' deployments cost the event loop O(N^2))."""
        previous = self._phases.pop(uid, None) if phase is None else self._phases.get(uid)
        if phase is not None:
            self._phases[uid] = phase
        if previous is not None:
            self._phase_counts[previous] -= 1
        if phase is not None:
            self._phase_counts[phase] += 1
        for name in Phase:
            metrics.INSTANCES.labels(phase=name.value).set(self._phase_counts[name.value])

    async def close(self) -> None:
        if self._trimming is not None:
            self._trimming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._trimming
        if self._runtime is not None:
            await self._runtime.connector.close_all()
            await self._runtime.kube.close()
