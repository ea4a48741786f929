"""Leader election on a ``coordination.k8s.io/v1`` Lease: what to do next, given what was read.

Owns: :class:`LeaseRecord` (a Lease's spec and resourceVersion, read from and written to its body),
:class:`ElectionTimings` (client-go's defaults: 15 s lease, 10 s renew deadline, 2 s between tries) and the
decisions of ``tryAcquireOrRenew`` in client-go's ``tools/leaderelection``: create a missing Lease, take one
whose holder is gone (released, or not seen renewed for a lease duration *by our own clock*, never by the
holder's timestamps), renew our own, wait otherwise. Every acquisition raises ``leaseTransitions`` by one,
even by the same identity, behind the compare-and-swap on resourceVersion; the term's epoch (the fence,
:mod:`o4o_operator.pipeline.epoch`) pairs it with the resourceVersion the acquiring write got, which stays
increasing when the Lease is deleted and ``leaseTransitions`` starts again at 0 (:func:`epoch_of`).
Purely computational, no I/O and no clock of its own: callers pass the times.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping
from typing import Any

from o4o_operator.pipeline.epoch import Epoch

MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
"""metav1.MicroTime's wire format."""


@dataclasses.dataclass(frozen=True)
class ElectionTimings:
    lease_duration: float = 15.0
    """How long others wait, after last seeing the Lease change, before they take it."""
    renew_deadline: float = 10.0
    """How long the leader keeps acting without a successful renewal (shorter than the lease duration)."""
    retry_period: float = 2.0
    """Between tries to acquire or renew."""

    def problem(self) -> str | None:
        """Why these timings cannot fence (client-go refuses the same), or None."""
        if not self.lease_duration > self.renew_deadline:
            return "the lease duration must be longer than the renew deadline"
        if not self.renew_deadline > self.retry_period:
            return "the renew deadline must be longer than the retry period"
        return None


@dataclasses.dataclass(frozen=True)
class LeaseRecord:
    holder: str
    """``spec.holderIdentity``; empty once released."""
    lease_duration_seconds: int
    transitions: int
    acquire_time: str | None = None
    renew_time: str | None = None
    resource_version: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> LeaseRecord:
        spec = body.get("spec") or {}
        return cls(holder=str(spec.get("holderIdentity") or ""),
                   lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
                   transitions=int(spec.get("leaseTransitions") or 0),
                   acquire_time=spec.get("acquireTime"), renew_time=spec.get("renewTime"),
                   resource_version=(body.get("metadata") or {}).get("resourceVersion"))

    def to_body(self, namespace: str, name: str) -> dict[str, Any]:
        """The Lease to create or replace (``metadata.resourceVersion`` set: replaced only if unchanged)."""
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if self.resource_version is not None:
            metadata["resourceVersion"] = self.resource_version
        spec: dict[str, Any] = {"holderIdentity": self.holder, "leaseDurationSeconds": self.lease_duration_seconds,
                                "leaseTransitions": self.transitions}
        if self.acquire_time is not None:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time is not None:
            spec["renewTime"] = self.renew_time
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    @property
    def observed_key(self) -> tuple[str, str | None, int]:
        """What changes whenever the holder renews: a new key restarts the observer's lease clock."""
        return (self.holder, self.renew_time, self.transitions)


class Action(enum.Enum):
    CREATE = "create"
    """No Lease yet: create it, holding it."""
    TAKE = "take"
    """Replace it (behind its resourceVersion), holding it under the next epoch."""
    RENEW = "renew"
    """Ours, and we lead: replace it with a new renewTime."""
    WAIT = "wait"
    """Another holder, seen renewed within its lease duration: try again after the retry period."""


def decide(lease: LeaseRecord | None, identity: str, *, leading: bool, observed_at: float, now: float) -> Action:
    """What to do with ``lease`` (None: there is none). ``observed_at`` is when (our monotonic clock) its
    ``observed_key`` was first seen; ``now`` is the same clock now; ``leading``: we hold a term."""
    if lease is None:
        return Action.CREATE
    if lease.holder == identity:
        return Action.RENEW if leading else Action.TAKE
    if not lease.holder:
        return Action.TAKE
    if now < observed_at + max(lease.lease_duration_seconds, 1):
        return Action.WAIT
    return Action.TAKE


def micro_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime(MICRO_TIME)


def acquired(lease: LeaseRecord | None, identity: str, timings: ElectionTimings,
             wall_now: datetime.datetime) -> LeaseRecord:
    """The Lease held by ``identity`` in a new term: ``leaseTransitions`` one higher (0 for a new Lease)."""
    stamp = micro_time(wall_now)
    return LeaseRecord(holder=identity, lease_duration_seconds=max(1, round(timings.lease_duration)),
                       transitions=0 if lease is None else lease.transitions + 1, acquire_time=stamp,
                       renew_time=stamp, resource_version=None if lease is None else lease.resource_version)


def renewed(lease: LeaseRecord, wall_now: datetime.datetime) -> LeaseRecord:
    """Our Lease with a new renewTime (the epoch stays)."""
    return dataclasses.replace(lease, renew_time=micro_time(wall_now))


def released(lease: LeaseRecord, wall_now: datetime.datetime) -> LeaseRecord:
    """Our Lease given up on a clean stop, so that a standby takes it at its next try, not a lease later."""
    stamp = micro_time(wall_now)
    return dataclasses.replace(lease, holder="", lease_duration_seconds=1, renew_time=stamp)


def epoch_of(written: LeaseRecord) -> Epoch:
    """The epoch of the term that ``written`` (what the apiserver answered to our create or replace) began."""
    return Epoch.of_acquisition(written.resource_version, written.transitions)


def lost_reason(lease: LeaseRecord | None, identity: str, epoch: Epoch) -> str | None:
    """Why a leader that read ``lease`` no longer leads term ``epoch`` (None: it still holds it)."""
    if lease is None:
        return "the Lease was deleted"
    if lease.holder != identity:
        return f"the Lease is held by {lease.holder or 'nobody'} (leaseTransitions {lease.transitions})"
    if lease.transitions != epoch.transitions:
        return f"the Lease moved on to leaseTransitions {lease.transitions}"
    return None
