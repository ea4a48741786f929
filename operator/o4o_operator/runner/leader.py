"""Active/standby on a Lease: wait for it, hold it, and stop all work the moment it is lost.

Owns: :class:`LeaderElector` (the asyncio loops of client-go's ``tools/leaderelection``: try to acquire every
retry period; while leading, renew every retry period, each try bounded by what is left of the renew
deadline; a conflict on replace reads again; give the Lease up on a clean stop), :func:`run_while_leading`
(start the work once leading; when the term ends, cancel every task of the process, which kills the remote
process groups of running host commands, and say so with :data:`LOST_EXIT_STATUS`: the process then exits
and Kubernetes starts it again as a standby) and where the Lease lives (:func:`lease_namespace`,
:func:`default_identity`). Decisions come from :mod:`o4o_operator.pipeline.election`.
Must not import Kopf: the CLI hands in the work to run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from o4o_operator.fencing import Term
from o4o_operator.kubeapi_lease import LeaseApi
from o4o_operator.pipeline.election import (
    Action,
    ElectionTimings,
    LeaseRecord,
    acquired,
    decide,
    epoch_of,
    lost_reason,
    released,
    renewed,
)

logger = logging.getLogger("o4o_operator.leader")
LOST_EXIT_STATUS = 75
"""The process's exit status after it lost the Lease (EX_TEMPFAIL): restarted, it waits as a standby."""
STOP_GRACE_SECONDS = 10.0
"""How long the cancelled tasks get to kill their remote commands before the process exits regardless."""
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_identity(environ: Mapping[str, str]) -> str:
    """``POD_NAME`` (the downward API), else ``<hostname>-<pid>``: unique per process, as a holder must be."""
    return environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def lease_namespace(configured: str, environ: Mapping[str, str],
                    service_account_file: Path = SERVICE_ACCOUNT_NAMESPACE) -> str | None:
    """The Lease's namespace: the setting, else ``POD_NAMESPACE``, else the pod's service account's namespace."""
    if configured:
        return configured
    if environ.get("POD_NAMESPACE"):
        return environ["POD_NAMESPACE"]
    try:
        return service_account_file.read_text().strip() or None
    except OSError:
        return None


@dataclasses.dataclass
class _Observation:
    key: tuple[str, str | None, int] | None = None
    at: float = 0.0


class LeaderElector:
    """Acquires and renews ``api``'s Lease as ``identity``."""

    def __init__(self, api: LeaseApi, identity: str, timings: ElectionTimings, *,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)) -> None:
        self.api = api
        self.identity = identity
        self.timings = timings
        self._monotonic = monotonic
        self._wall = wall
        self._observed = _Observation()
        self._record: LeaseRecord | None = None

    async def acquire(self) -> Term:
        """Wait until this replica holds the Lease; its term (its epoch: the acquiring write's resourceVersion
        and the Lease's ``leaseTransitions``, :func:`~o4o_operator.pipeline.election.epoch_of`)."""
        while True:
            term = await self.try_acquire()
            if term is not None:
                return term
            await asyncio.sleep(self.timings.retry_period)

    async def try_acquire(self) -> Term | None:
        """One try: the new term, or None (held by a live leader, lost a race, or the API failed)."""
        try:
            async with asyncio.timeout(self.timings.renew_deadline):
                lease = await self.api.read()
                self._observe(lease)
                action = decide(lease, self.identity, leading=False, observed_at=self._observed.at,
                                now=self._monotonic())
                if action is Action.WAIT:
                    return None
                started = self._monotonic()
                wanted = acquired(lease, self.identity, self.timings, self._wall())
                written = await (self.api.create(wanted) if action is Action.CREATE else self.api.replace(wanted))
        except Exception as error:  # any failure is one failed try; the next comes a period later
            logger.warning("Could not try to acquire the Lease %s/%s: %s", self.api.namespace, self.api.name, error)
            return None
        if written is None:
            logger.info("Lost the race for the Lease %s/%s; waiting", self.api.namespace, self.api.name)
            return None
        try:
            epoch = epoch_of(written)
        except ValueError as error:  # written, but with no epoch to fence by: not leading (each try says so)
            logger.error("Cannot lead on the Lease %s/%s: %s", self.api.namespace, self.api.name, error)
            return None
        self._record = written
        logger.info("Acquired the Lease %s/%s as %s in epoch %s", self.api.namespace, self.api.name,
                    self.identity, epoch)
        return Term(epoch, self.identity, self.timings.renew_deadline, renewed_at=started,
                    clock=self._monotonic)

    def _observe(self, lease: LeaseRecord | None) -> None:
        key = None if lease is None else lease.observed_key
        if key != self._observed.key:
            self._observed = _Observation(key, self._monotonic())

    async def hold(self, term: Term) -> str:
        """Renew ``term`` until it ends; the reason it ended (it is deposed with it)."""
        while True:
            reason = term.deposed
            if reason is not None:
                return reason
            wait = min(self.timings.retry_period, term.valid_until - self._monotonic())
            await asyncio.sleep(max(0.0, wait))
            if term.deposed is None:
                await self.renew(term)

    async def renew(self, term: Term) -> None:
        """One renewal: on success the term lasts a renew deadline from when it started; a Lease that moved
        to someone else deposes the term at once; any other failure is left to the deadline."""
        started = self._monotonic()
        try:
            async with asyncio.timeout(max(0.01, term.valid_until - started)):
                record = self._record or await self.api.read()
                written = None if record is None else await self.api.replace(renewed(record, self._wall()))
                if written is None:  # a conflict: what is there now?
                    current = await self.api.read()
                    reason = lost_reason(current, self.identity, term.epoch)
                    if reason is not None:
                        term.depose(reason)
                        return
                    assert current is not None
                    written = await self.api.replace(renewed(current, self._wall()))
        except Exception as error:  # a failed renewal; the renew deadline decides
            logger.warning("Could not renew the Lease %s/%s (epoch %s): %s", self.api.namespace, self.api.name,
                           term.epoch, error)
            return
        if written is not None:
            self._record = written
            term.renewed(started)

    async def release(self, term: Term) -> None:
        """Give the Lease up (a clean stop), if this term still holds it: a standby need not wait a lease."""
        if self._record is None or term.deposed is not None:
            return
        term.depose("the operator stopped and released the Lease")
        try:
            async with asyncio.timeout(self.timings.retry_period):
                await self.api.replace(released(self._record, self._wall()))
        except Exception as error:  # then the standby waits one lease duration
            logger.warning("Could not release the Lease %s/%s: %s", self.api.namespace, self.api.name, error)


async def run_while_leading(elector: LeaderElector, work: Callable[[Term], Coroutine[Any, Any, object]], *,
                            stop_grace: float = STOP_GRACE_SECONDS) -> int:
    """Wait to lead, then run ``work(term)`` while the term lasts. The exit status: 0 when the work ended on
    its own (the Lease released), :data:`LOST_EXIT_STATUS` when the term ended first (every other task of the
    process cancelled, for at most ``stop_grace`` seconds)."""
    logger.info("Waiting to lead as %s (Lease %s/%s)", elector.identity, elector.api.namespace, elector.api.name)
    term = await elector.acquire()
    lost = asyncio.Event()
    term.on_deposed(lambda _reason: lost.set())
    working = asyncio.create_task(work(term), name="o4o-leading-work")
    holding = asyncio.create_task(elector.hold(term), name="o4o-lease-renewal")
    losing = asyncio.create_task(lost.wait(), name="o4o-lease-lost")
    await asyncio.wait({working, holding, losing}, return_when=asyncio.FIRST_COMPLETED)
    if working.done() and term.deposed is None:
        holding.cancel()
        losing.cancel()
        await elector.release(term)
        working.result()
        return 0
    term.depose("the Lease renewal stopped")  # no-op when already deposed (the usual case)
    logger.error("Stopped leading (%s): stopping every handler, daemon, timer and host command", term.deposed)
    await stop_every_task(stop_grace)
    return LOST_EXIT_STATUS


async def stop_every_task(grace: float) -> None:
    """Cancel every other task of this loop and wait up to ``grace`` seconds for them to finish: a running host
    command's cancellation kills its remote process group (:meth:`SshSession.run`)."""
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        if pending:
            logger.error("%d tasks did not stop within %g s; exiting regardless", len(pending), grace)
