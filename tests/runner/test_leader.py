"""The elector's loops against an in-memory Lease with compare-and-swap, and what stops when a term ends.

Short timings (a lease of 1 s) on the real monotonic clock; every wait is for a condition.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import cast

import pytest

from o4o_operator.fencing import Deposed, Term
from o4o_operator.kubeapi_lease import LeaseApi
from o4o_operator.kubeapi_transport import KubeTransport
from o4o_operator.pipeline.election import ElectionTimings, LeaseRecord
from o4o_operator.pipeline.epoch import Epoch
from o4o_operator.runner import leader
from o4o_operator.runner.leader import LOST_EXIT_STATUS, LeaderElector, run_while_leading

TIMINGS = ElectionTimings(lease_duration=1.0, renew_deadline=0.6, retry_period=0.1)
"""A Lease holds whole seconds: one second is the shortest lease."""


class MemoryLease(LeaseApi):
    """One Lease in memory; replace succeeds only behind the current resourceVersion. The resourceVersion is
    one counter for every write, as etcd's revision is, so it goes on rising across a delete."""

    def __init__(self) -> None:
        super().__init__(cast(KubeTransport, None), "o4o-system", "o4o-operator")
        self.record: LeaseRecord | None = None
        self.version = 0
        self.down = False
        self.conflicts = 0
        self.stored = asyncio.Event()

    def delete(self) -> None:
        """``kubectl delete lease``: gone, and the next write's version is still higher."""
        self.version += 1
        self.record = None

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.stored.set()
        self.record = dataclasses.replace(record, resource_version=str(self.version))
        return self.record

    async def read(self) -> LeaseRecord | None:
        if self.down:
            raise OSError("apiserver down")
        return self.record

    async def create(self, record: LeaseRecord) -> LeaseRecord | None:
        if self.down:
            raise OSError("apiserver down")
        return None if self.record is not None else self._store(record)

    async def replace(self, record: LeaseRecord) -> LeaseRecord | None:
        if self.down:
            raise OSError("apiserver down")
        if self.record is None or record.resource_version != self.record.resource_version:
            self.conflicts += 1
            return None
        return self._store(record)


async def stored_version(lease: MemoryLease, version: int) -> None:
    """Wait until the Lease was written up to ``version`` (at most 5 s)."""
    async with asyncio.timeout(5):
        while lease.version < version:
            lease.stored.clear()
            await lease.stored.wait()


async def test_the_first_elector_creates_the_lease_and_the_second_waits() -> None:
    lease = MemoryLease()
    first = await LeaderElector(lease, "a", TIMINGS).acquire()
    assert (first.epoch, lease.record and lease.record.holder) == (Epoch(1, 0), "a")  # the create's version
    assert await LeaderElector(lease, "b", TIMINGS).try_acquire() is None


async def test_a_standby_takes_over_a_lease_not_renewed_within_one_lease_duration_in_the_next_epoch() -> None:
    lease = MemoryLease()
    await LeaderElector(lease, "a", TIMINGS).acquire()  # a never renews: it crashed
    loop = asyncio.get_running_loop()
    started = loop.time()
    term = await LeaderElector(lease, "b", TIMINGS).acquire()
    waited = loop.time() - started
    assert term.epoch.transitions == 1 and lease.record is not None and lease.record.holder == "b"
    assert term.epoch.revision == int(str(lease.record.resource_version))
    assert waited >= TIMINGS.lease_duration  # never before the lease ran out (load can only make it later)
    print(f"took over {waited:.2f} s after the last renewal (lease {TIMINGS.lease_duration} s)")  # a figure


async def test_a_renewing_leader_keeps_its_lease_and_its_epoch() -> None:
    lease = MemoryLease()
    elector = LeaderElector(lease, "a", TIMINGS)
    term = await elector.acquire()
    holding = asyncio.create_task(elector.hold(term))
    standby = LeaderElector(lease, "b", TIMINGS)
    renewals = lease.version
    await stored_version(lease, renewals + 8)  # well past a lease duration of renewals
    assert await standby.try_acquire() is None
    assert term.deposed is None and lease.record is not None and lease.record.transitions == 0
    holding.cancel()


async def test_a_renewal_that_finds_another_holder_deposes_the_term_at_once() -> None:
    lease = MemoryLease()
    elector = LeaderElector(lease, "a", TIMINGS)
    term = await elector.acquire()
    assert lease.record is not None
    lease._store(dataclasses.replace(lease.record, holder="b", transitions=1))  # taken behind a's back
    await elector.renew(term)
    assert term.deposed == "the Lease is held by b (leaseTransitions 1)"
    assert lease.conflicts == 1


async def test_a_conflict_with_our_own_lease_reads_again_and_renews() -> None:
    lease = MemoryLease()
    elector = LeaderElector(lease, "a", TIMINGS)
    term = await elector.acquire()
    assert lease.record is not None
    lease._store(lease.record)  # someone touched it (a label, say): the version moved, the holder did not
    await elector.renew(term)
    assert term.deposed is None and lease.conflicts == 1 and lease.record.holder == "a"


async def test_losing_the_api_stops_the_work_within_the_renew_deadline_and_exits_lost() -> None:
    lease = MemoryLease()
    cancelled = asyncio.Event()
    terms: list[Term] = []
    loop = asyncio.get_running_loop()
    cut: list[float] = []

    async def work(term: Term) -> None:
        terms.append(term)
        lease.down = True  # the apiserver is gone from here on
        cut.append(loop.time())
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    # awaited in this task, as the CLI does: every other task of the loop is cancelled on loss
    assert await run_while_leading(LeaderElector(lease, "a", TIMINGS), work, stop_grace=2) == LOST_EXIT_STATUS
    assert cancelled.is_set()
    assert loop.time() - cut[0] < TIMINGS.renew_deadline + TIMINGS.retry_period + 0.3
    with pytest.raises(Deposed, match="not renewed"):
        terms[0].check("PATCH status")


async def test_a_deposition_by_the_host_fence_stops_everything_at_once() -> None:
    lease = MemoryLease()
    bystander_cancelled = asyncio.Event()

    async def bystander() -> None:  # a daemon or an SSH command elsewhere in the process
        try:
            await asyncio.Event().wait()
        finally:
            bystander_cancelled.set()

    async def work(term: Term) -> None:
        running = asyncio.create_task(bystander())
        await asyncio.sleep(0)
        assert not running.done()
        term.depose("the server refused epoch 1.0: it has seen epoch 9.3 (a newer leader)")
        await asyncio.Event().wait()

    assert await run_while_leading(LeaderElector(lease, "a", TIMINGS), work, stop_grace=2) == LOST_EXIT_STATUS
    assert bystander_cancelled.is_set()


@pytest.mark.parametrize("asks_the_term", [False, True], ids=["unasked-like-kopf-alone", "asked-like-ours"])
async def test_a_write_due_when_a_paused_leader_wakes_is_stopped_only_by_its_own_check(asks_the_term: bool) -> None:
    """Stopping on deposition cancels every task, but only once the elector has noticed, a few turns of the loop
    after a paused replica wakes. A write whose timer came due in the pause (Kopf's patch after a retry's delay)
    runs first: only a check of the term in the write itself (ours; Kopf's through ``kopf_fence``) refuses it."""
    lease = MemoryLease()
    writes: list[tuple[str, bool]] = []

    async def delayed_write(term: Term) -> None:  # Kopf touching an object once a handler's delay ran out
        await asyncio.sleep(0.2)
        over = time.monotonic() >= term.valid_until
        try:
            if asks_the_term:
                term.check("PATCH the instance")
            writes.append(("written", over))
        except Deposed:
            writes.append(("refused", over))

    def pause(until: float) -> None:
        """SIGSTOP, as the event loop sees it: nothing of it runs until SIGCONT, the monotonic clock goes on."""
        while time.monotonic() < until:
            time.sleep(0.01)

    async def work(term: Term) -> None:
        writer = asyncio.create_task(delayed_write(term))
        await asyncio.sleep(0)
        pause(max(term.valid_until, time.monotonic() + 0.2) + 0.1)
        await writer
        await asyncio.Event().wait()

    assert await run_while_leading(LeaderElector(lease, "a", TIMINGS), work, stop_grace=2) == LOST_EXIT_STATUS
    assert writes == [("refused" if asks_the_term else "written", True)]


async def test_work_that_ends_on_its_own_releases_the_lease_for_the_standby() -> None:
    lease = MemoryLease()

    async def work(term: Term) -> None:
        assert term.epoch.transitions == 0

    assert await run_while_leading(LeaderElector(lease, "a", TIMINGS), work) == 0
    assert lease.record is not None and lease.record.holder == ""
    term = await LeaderElector(lease, "b", TIMINGS).try_acquire()
    assert term is not None and term.epoch.transitions == 1


async def test_a_lease_deleted_under_a_leader_deposes_it_and_the_next_term_is_newer() -> None:
    """leaseTransitions starts again at 0 in a Lease made anew; the epoch does not go back with it."""
    lease = MemoryLease()
    a = LeaderElector(lease, "a", TIMINGS)
    first = await a.acquire()
    lease.delete()
    second = await LeaderElector(lease, "b", TIMINGS).acquire()  # b makes the Lease again
    assert first.epoch.transitions == 0
    lease.delete()
    third = await LeaderElector(lease, "c", TIMINGS).acquire()
    assert lease.record is not None and lease.record.transitions == 0
    assert first.epoch < second.epoch < third.epoch, (first.epoch, second.epoch, third.epoch)
    await a.renew(first)
    assert first.deposed == "the Lease is held by c (leaseTransitions 0)"


async def test_a_lease_whose_version_is_no_revision_is_not_led(caplog: pytest.LogCaptureFixture) -> None:
    lease = MemoryLease()
    lease.version = -1  # the next write's version is "0": no revision an etcd-backed apiserver gives
    assert await LeaderElector(lease, "a", TIMINGS).try_acquire() is None
    assert "needs an etcd-backed apiserver's resourceVersion" in caplog.text


def test_identity_and_namespace_come_from_the_downward_api(tmp_path: object) -> None:
    assert leader.default_identity({"POD_NAME": "o4o-operator-7d9-abc"}) == "o4o-operator-7d9-abc"
    assert leader.default_identity({}).endswith(f"-{__import__('os').getpid()}")
    assert leader.lease_namespace("mine", {"POD_NAMESPACE": "o4o-system"}) == "mine"
    assert leader.lease_namespace("", {"POD_NAMESPACE": "o4o-system"}) == "o4o-system"
    from pathlib import Path
    account = Path(str(tmp_path)) / "namespace"
    assert leader.lease_namespace("", {}, account) is None
    account.write_text("from-the-token\n")
    assert leader.lease_namespace("", {}, account) == "from-the-token"


@pytest.mark.parametrize(("environment", "complaint"), [
    ({}, "leader election needs the Lease's namespace: set O4O_LEASE_NAMESPACE"),
    ({"O4O_LEASE_NAMESPACE": "o4o-system", "O4O_RENEW_DEADLINE_SECONDS": "20"},
     "the lease duration must be longer than the renew deadline (O4O_LEASE_DURATION_SECONDS"),
])
def test_the_cli_refuses_an_election_it_cannot_hold(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str],
                                                    environment: dict[str, str], complaint: str) -> None:
    from o4o_operator import cli

    for name in ("POD_NAMESPACE", "O4O_LEASE_NAMESPACE", "O4O_LEADER_ELECTION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if leader.SERVICE_ACCOUNT_NAMESPACE.exists():
        pytest.skip("runs in a pod: the service account names the namespace")
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", "--all-namespaces"])
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err
