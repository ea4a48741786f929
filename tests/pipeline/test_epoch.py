"""The fencing epoch: ordered by (revision, transitions), monotonic across a Lease's deletion, and its token."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from o4o_operator.pipeline.election import ElectionTimings, LeaseRecord, acquired, epoch_of, lost_reason
from o4o_operator.pipeline.epoch import Epoch

TIMINGS = ElectionTimings()


def test_epochs_compare_revisions_first_then_transitions() -> None:
    assert Epoch(100, 5) < Epoch(101, 0) < Epoch(101, 1) < Epoch(250, 0)
    assert Epoch(7, 3) == Epoch(7, 3) and not Epoch(7, 3) < Epoch(7, 3)
    assert sorted([Epoch(9, 0), Epoch(3, 8), Epoch(9, 1), Epoch(3, 2)]) == \
        [Epoch(3, 2), Epoch(3, 8), Epoch(9, 0), Epoch(9, 1)]


def test_the_token_is_one_word_and_reads_back() -> None:
    assert Epoch(123456, 7).token == "123456.7" == str(Epoch(123456, 7))
    assert Epoch.from_token("123456.7\n") == Epoch(123456, 7)
    big = Epoch(10**18 - 1, 10**18 - 1)
    assert Epoch.from_token(big.token) == big


def test_an_older_operators_plain_epoch_is_older_than_any_of_ours() -> None:
    recorded = Epoch.from_token("4000000")  # a plain leaseTransitions, as hosts recorded it before
    assert recorded == Epoch(0, 4000000)
    assert recorded < Epoch(1, 0)  # the smallest epoch this operator can hold


@pytest.mark.parametrize("token", ["", "x", "1.2.3", ".5", "5.", "-1", "1e3", "1234567890123456789.0", "1. 2"])
def test_anything_else_is_no_epoch(token: str) -> None:
    with pytest.raises(ValueError, match="not a fencing epoch"):
        Epoch.from_token(token)


def test_an_epoch_out_of_the_shells_range_is_refused() -> None:
    with pytest.raises(ValueError, match="18 digits"):
        Epoch(10**18, 0)
    with pytest.raises(ValueError, match="18 digits"):
        Epoch(1, -1)


def written(transitions: int, resource_version: str) -> LeaseRecord:
    """A Lease as the apiserver answered the write that acquired it."""
    return LeaseRecord("a", 15, transitions, "2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:00.000000Z",
                       resource_version)


def test_a_term_is_the_acquiring_writes_revision_and_the_leases_transitions() -> None:
    assert epoch_of(written(4, "81234")) == Epoch(81234, 4)


def test_a_lease_deleted_and_made_again_gives_a_newer_epoch_though_its_transitions_restart() -> None:
    before = epoch_of(written(9, "5000"))  # the ninth transition of the first Lease
    made_again = acquired(None, "b", TIMINGS, datetime.datetime.now(datetime.UTC))
    assert made_again.transitions == 0  # what the old epoch (leaseTransitions alone) went back to
    after = epoch_of(dataclasses.replace(made_again, resource_version="5731"))  # the create's answer
    assert after == Epoch(5731, 0) and before < after


@pytest.mark.parametrize("resource_version", [None, "", "abc", "0", "12a"])
def test_a_resource_version_that_is_no_revision_is_a_clear_error(resource_version: str | None) -> None:
    with pytest.raises(ValueError, match="needs an etcd-backed apiserver's resourceVersion"):
        epoch_of(written(0, resource_version))  # type: ignore[arg-type]


def test_a_leader_knows_why_it_lost_by_the_leases_transitions() -> None:
    ours = Epoch(500, 3)
    assert lost_reason(written(3, "612"), "a", ours) is None  # renewed since: the revision moved, the term did not
    assert lost_reason(dataclasses.replace(written(4, "700"), holder="b"), "a", ours) == \
        "the Lease is held by b (leaseTransitions 4)"
    assert lost_reason(written(5, "700"), "a", ours) == "the Lease moved on to leaseTransitions 5"
    assert lost_reason(None, "a", ours) == "the Lease was deleted"

