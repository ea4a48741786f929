"""Leader election's decisions (client-go's tryAcquireOrRenew) and the fenced term, on a fake clock."""

from __future__ import annotations

import datetime

import pytest

from o4o_operator.fencing import Deposed, Term
from o4o_operator.markers import refusal_reason
from o4o_operator.pipeline.election import (
    Action,
    ElectionTimings,
    LeaseRecord,
    acquired,
    decide,
    lost_reason,
    released,
    renewed,
)
from o4o_operator.pipeline.epoch import Epoch

WALL = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC)
TIMINGS = ElectionTimings()


def held_by(holder: str, *, transitions: int = 3, duration: int = 15) -> LeaseRecord:
    return LeaseRecord(holder=holder, lease_duration_seconds=duration, transitions=transitions,
                       acquire_time="2026-01-02T03:00:00.000000Z", renew_time="2026-01-02T03:04:00.000000Z",
                       resource_version="41")


def test_client_go_defaults_and_their_order() -> None:
    assert (TIMINGS.lease_duration, TIMINGS.renew_deadline, TIMINGS.retry_period) == (15.0, 10.0, 2.0)
    assert TIMINGS.problem() is None
    assert "longer than the renew deadline" in str(ElectionTimings(10, 10, 2).problem())
    assert "longer than the retry period" in str(ElectionTimings(15, 2, 2).problem())


def test_no_lease_is_created() -> None:
    assert decide(None, "a", leading=False, observed_at=0, now=0) is Action.CREATE


def test_a_live_holder_is_waited_for_a_whole_lease_duration_by_our_own_clock() -> None:
    lease = held_by("b")
    assert decide(lease, "a", leading=False, observed_at=100.0, now=100.0) is Action.WAIT
    assert decide(lease, "a", leading=False, observed_at=100.0, now=114.9) is Action.WAIT
    assert decide(lease, "a", leading=False, observed_at=100.0, now=115.0) is Action.TAKE


def test_a_released_lease_is_taken_at_once() -> None:
    assert decide(released(held_by("b"), WALL), "a", leading=False, observed_at=100.0, now=100.0) is Action.TAKE


def test_our_own_lease_is_renewed_while_leading_and_taken_in_a_new_term_otherwise() -> None:
    lease = held_by("a")
    assert decide(lease, "a", leading=True, observed_at=100.0, now=100.0) is Action.RENEW
    # the same identity after a restart (a pod's container restarted in place) starts a new term
    assert decide(lease, "a", leading=False, observed_at=100.0, now=100.0) is Action.TAKE


def test_every_acquisition_is_the_next_epoch_and_the_cas_carries_the_read_version() -> None:
    first = acquired(None, "a", TIMINGS, WALL)
    assert (first.holder, first.transitions, first.resource_version) == ("a", 0, None)
    assert first.renew_time == first.acquire_time == "2026-01-02T03:04:05.678901Z"
    taken = acquired(held_by("b", transitions=3), "a", TIMINGS, WALL)
    assert (taken.holder, taken.transitions, taken.lease_duration_seconds) == ("a", 4, 15)
    body = taken.to_body("o4o-system", "o4o-operator")
    assert body["metadata"]["resourceVersion"] == "41"
    assert body["spec"]["leaseTransitions"] == 4
    assert LeaseRecord.from_body({**body, "metadata": {**body["metadata"], "resourceVersion": "42"}}) == \
        LeaseRecord("a", 15, 4, taken.acquire_time, taken.renew_time, "42")


def test_renewing_keeps_the_epoch_and_moves_only_the_renew_time() -> None:
    lease = held_by("a", transitions=7)
    later = renewed(lease, WALL + datetime.timedelta(seconds=2))
    assert (later.transitions, later.holder, later.acquire_time) == (7, "a", lease.acquire_time)
    assert later.renew_time == "2026-01-02T03:04:07.678901Z"
    assert later.observed_key != lease.observed_key


def test_a_leader_knows_why_it_lost() -> None:
    assert lost_reason(held_by("a", transitions=3), "a", Epoch(30, 3)) is None
    assert "held by b (leaseTransitions 4)" in str(lost_reason(held_by("b", transitions=4), "a", Epoch(30, 3)))
    assert "deleted" in str(lost_reason(None, "a", Epoch(30, 3)))
    assert "leaseTransitions 5" in str(lost_reason(held_by("a", transitions=5), "a", Epoch(30, 3)))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_term_lasts_a_renew_deadline_from_the_start_of_its_last_renewal() -> None:
    clock = FakeClock()
    term = Term(Epoch(40, 4), "a", 10.0, renewed_at=clock.now, clock=clock)
    clock.now += 9.9
    term.check("write")
    term.renewed(clock.now - 0.5)  # a renewal that started half a second ago
    clock.now += 9.4
    term.check("write")
    clock.now += 0.2
    with pytest.raises(Deposed, match=r"Refused to write: .*not renewed for 10 s \(epoch 40\.4\)"):
        term.check("write")


def test_a_replica_paused_past_its_lease_refuses_on_waking_and_says_so_once() -> None:
    clock = FakeClock()
    term = Term(Epoch(20, 2), "a", 10.0, renewed_at=clock.now, clock=clock)
    reasons: list[str] = []
    term.on_deposed(reasons.append)
    clock.now += 60  # SIGSTOP for a minute, then SIGCONT: the monotonic clock went on
    with pytest.raises(Deposed):
        term.check("run a host script")
    with pytest.raises(Deposed):
        term.check("PATCH /status")
    term.renewed(clock.now)  # a late renewal cannot revive a deposed term
    with pytest.raises(Deposed):
        term.check("write")
    assert len(reasons) == 1
    late: list[str] = []
    term.on_deposed(late.append)
    assert late == reasons


def test_the_host_fence_refusal_names_both_epochs() -> None:
    assert refusal_reason("::o4o::fenced epoch=3 recorded=5") == \
        "the server refused epoch 3: it has seen epoch 5 (a newer leader)"
    assert refusal_reason("::o4o::result health=ok") is None
