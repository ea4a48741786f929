"""The rollout of one target commit across a DeploymentFleet's members, wave by wave.

Owns: the decision of one pass, from the fleet's spec, its resolved target, each member's observed state and
the clock: which members to pin to the target now (waves in order, ``maxUnavailable`` inside a wave, bake
time after it, the manual gate of ``maxUnavailable: 0`` released by an annotation, once per start of the
wave: the plan asks for the annotation to be taken away), which members to create
and delete, whether the rollout is halted (``failureThreshold`` failed members), paused or complete, and the
fleet's whole status (kstatus conditions, per-wave progress). A member counts as updated only when it is
pinned to the target, reports the target as ``status.source.commit``, has observed its current generation
and is Ready: a Ready left over from the previous commit never completes a wave (argo-cd #29410).
Purely computational: no I/O, no Kopf, no clients; the clock is passed in.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping

from o4o_operator.errors import bounded_reason
from o4o_operator.models import Condition, ConditionStatus
from o4o_operator.models_fleet import (
    DeploymentFleetSpec,
    DeploymentFleetStatus,
    FleetTarget,
    MemberFailure,
    WaveState,
    WaveStatus,
)
from o4o_operator.pipeline.fleet_waves import FleetSpecProblem, Wave, assign_waves

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
FAILED_REASONS = frozenset({"RolledBack"})
"""A member whose Ready reason is one of these has failed even before it is Stalled."""


@dataclasses.dataclass(frozen=True)
class MemberState:
    """What the fleet's watch cache says about one member DeploymentInstance."""

    name: str
    owned: bool = True
    """False: a DeploymentInstance of this name exists and this fleet is not its controller."""
    pinned_revision: str | None = None
    """Its ``spec.source.revision``."""
    commit: str | None = None
    """Its ``status.source.commit``."""
    generation: int = 1
    observed_generation: int = 0
    ready: bool = False
    stalled: bool = False
    reason: str = ""
    message: str = ""

    def pinned_to(self, commit: str) -> bool:
        return self.pinned_revision == commit

    def updated_to(self, commit: str) -> bool:
        """Pinned, serving the commit, its status about its current spec, and Ready."""
        return (self.pinned_to(commit) and self.commit == commit
                and self.observed_generation == self.generation and self.ready)

    def failed_on(self, commit: str) -> bool:
        """Pinned to the commit and, for its current spec, Stalled or rolled back."""
        return (self.pinned_to(commit) and self.observed_generation == self.generation
                and (self.stalled or self.reason in FAILED_REASONS))


@dataclasses.dataclass(frozen=True)
class FleetPlan:
    """What to do now, and the status to write."""

    status: DeploymentFleetStatus
    pin: tuple[str, ...] = ()
    """Existing members whose ``spec.source.revision`` becomes the target commit."""
    create: tuple[tuple[str, str], ...] = ()
    """(member, commit) to create, pinned to that commit."""
    delete: tuple[str, ...] = ()
    """Owned DeploymentInstances no longer in ``spec.members``."""
    recheck_seconds: float | None = None
    """When to look again although nothing changed (a bake or a deadline ends); None: on the next change."""
    release_promotion: str | None = None
    """The gated wave the promote annotation released in this pass: the annotation is taken away, so that each
    start of a gated wave (each target) needs its own; the started wave stays released (``startedAt``)."""


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _condition(old: DeploymentFleetStatus, type_: str, status: ConditionStatus, reason: str, message: str,
               generation: int, now: str) -> Condition:
    previous = old.condition(type_)
    changed = previous is None or previous.status is not status
    return Condition(type=type_, status=status, reason=bounded_reason(reason), message=message[:1024],
                     last_transition_time=now if changed or previous is None else previous.last_transition_time,
                     observed_generation=generation)


def _conditions(old: DeploymentFleetStatus, generation: int, now: str, *, ready: bool, reconciling: bool,
                stalled: bool, reason: str, message: str) -> tuple[Condition, ...]:
    true, false = ConditionStatus.TRUE, ConditionStatus.FALSE
    return (
        _condition(old, READY, true if ready else false, reason, message, generation, now),
        _condition(old, RECONCILING, true if reconciling else false, reason if reconciling else "Idle",
                   message if reconciling else "Nothing to do", generation, now),
        _condition(old, STALLED, true if stalled else false, reason if stalled else "NotStalled",
                   message if stalled else "Progressing or done", generation, now),
    )


def stalled(old: DeploymentFleetStatus, generation: int, reason: str, message: str,
            now: datetime.datetime) -> DeploymentFleetStatus:
    """The status of a fleet that cannot roll at all (a spec problem, a revision that does not resolve)."""
    return old.model_copy(update={
        "observed_generation": generation,
        "conditions": _conditions(old, generation, _iso(now), ready=False, reconciling=False, stalled=True,
                                  reason=reason, message=message)})


def _unowned_problem(spec: DeploymentFleetSpec, members: Mapping[str, MemberState]) -> FleetSpecProblem | None:
    for index, member in enumerate(spec.members):
        state = members.get(member.name)
        if state is not None and not state.owned:
            return FleetSpecProblem(f"spec.members[{index}].name", "MemberNameTaken",
                                    f"DeploymentInstance {member.name} exists and is not owned by this fleet; "
                                    "it is never touched")
    return None


@dataclasses.dataclass
class _Pass:
    """What one walk over the waves collects."""

    pin: list[str] = dataclasses.field(default_factory=list)
    create: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    failures: list[MemberFailure] = dataclasses.field(default_factory=list)
    waves: list[WaveStatus] = dataclasses.field(default_factory=list)
    standing: WaveStatus | None = None
    """The first wave not done: where the rollout stands."""
    recheck: list[float] = dataclasses.field(default_factory=list)
    released: str | None = None
    """A gated wave the promote annotation released."""


def plan(spec: DeploymentFleetSpec, generation: int, target: FleetTarget, members: Mapping[str, MemberState],
         old: DeploymentFleetStatus, promoted: str | None, now: datetime.datetime) -> FleetPlan:
    """One pass of the rollout of ``target`` (see the module's docstring); ``members`` holds every
    DeploymentInstance of a member's name or owned by the fleet, ``promoted`` the promote annotation."""
    listed = {member.name for member in spec.members}
    delete = tuple(sorted(name for name, state in members.items() if state.owned and name not in listed))
    try:
        waves = assign_waves(spec)
        problem = _unowned_problem(spec, members)
        if problem is not None:
            raise problem
    except FleetSpecProblem as problem:
        return FleetPlan(stalled(old, generation, problem.reason, problem.message, now), delete=delete)
    same_target = old.target is not None and old.target.commit == target.commit
    previous = {wave.name: wave for wave in old.waves} if same_target else {}
    walk = _Pass()
    for wave in waves:
        _walk_wave(wave, spec, target.commit, members, previous.get(wave.name), old, promoted, now, walk)
    return FleetPlan(_status(spec, generation, target, members, old, walk, now), tuple(walk.pin),
                     tuple(walk.create), delete, min(walk.recheck) if walk.recheck else None, walk.released)


def _walk_wave(wave: Wave, spec: DeploymentFleetSpec, commit: str, members: Mapping[str, MemberState],
               previous: WaveStatus | None, old: DeploymentFleetStatus, promoted: str | None,
               now: datetime.datetime, walk: _Pass) -> None:
    updated, failed, rolling, pending = [], [], [], []
    started_at = previous.started_at if previous else None
    deadline = _parse(started_at) + datetime.timedelta(seconds=wave.spec.deadline_seconds) if started_at else None
    for member in wave.members:
        observed = members.get(member.name)
        if observed is not None and observed.updated_to(commit):
            updated.append(member.name)
        elif observed is not None and observed.failed_on(commit):
            failed.append(MemberFailure(member=member.name, wave=wave.name, reason=bounded_reason(
                observed.reason or "Stalled"), message=observed.message[:512]))
        elif observed is not None and observed.pinned_to(commit):
            if deadline is not None and now >= deadline:
                failed.append(MemberFailure(member=member.name, wave=wave.name, reason="DeadlineExceeded",
                                            message=f"not updated within {wave.spec.deadline_seconds}s of the "
                                                    "wave's start"))
            else:
                rolling.append(member.name)
                if deadline is not None:
                    walk.recheck.append((deadline - now).total_seconds())
        else:
            pending.append(member.name)
    walk.failures.extend(failed)
    status = WaveStatus(name=wave.name, members=len(wave.members), updated=len(updated), failed=len(failed),
                        pending=len(pending), started_at=started_at,
                        updated_at=previous.updated_at if previous else None)
    if walk.standing is not None:  # an earlier wave is not done: this one waits, starting nothing
        _create_at_stable(pending, members, old, walk)
        walk.waves.append(status.model_copy(update={"state": WaveState.PENDING}))
        return
    state = _wave_state(wave, spec, promoted, status, now, walk, halted=len(walk.failures) >= spec.failure_threshold,
                        done=not rolling and not pending)
    if state is WaveState.ROLLING:
        budget = len(wave.members) if wave.spec.max_unavailable == 0 else wave.spec.max_unavailable
        starting = pending[:max(0, budget - len(rolling) - len(failed))]
        for name in starting:
            if name in members:
                walk.pin.append(name)
            else:
                walk.create.append((name, commit))
        _create_at_stable([name for name in pending if name not in starting], members, old, walk)
        status = status.model_copy(update={"started_at": started_at or _iso(now)})
        if started_at is None:
            walk.recheck.append(float(wave.spec.deadline_seconds))
        if wave.spec.max_unavailable == 0 and promoted == wave.name:
            walk.released = wave.name
    elif state is not WaveState.DONE:
        _create_at_stable(pending, members, old, walk)
    if state is WaveState.BAKING or state is WaveState.DONE:
        status = status.model_copy(update={"updated_at": status.updated_at or _iso(now)})
    status = status.model_copy(update={"state": state})
    if state is not WaveState.DONE:
        walk.standing = status
    walk.waves.append(status)


def _wave_state(wave: Wave, spec: DeploymentFleetSpec, promoted: str | None, status: WaveStatus,
                now: datetime.datetime, walk: _Pass, *, halted: bool, done: bool) -> WaveState:
    """The state of the first wave not yet passed: a flat chain of early returns."""
    if halted:
        return WaveState.HALTED
    if done and not wave.members:
        return WaveState.DONE
    if done:
        updated_at = _parse(status.updated_at) if status.updated_at else now
        bake_ends = updated_at + datetime.timedelta(seconds=wave.spec.bake_seconds)
        if now < bake_ends:
            walk.recheck.append((bake_ends - now).total_seconds())
            return WaveState.BAKING
        return WaveState.DONE
    if spec.paused:
        return WaveState.PAUSED
    if wave.spec.max_unavailable == 0 and promoted != wave.name and status.started_at is None:
        return WaveState.WAITING_FOR_PROMOTION
    return WaveState.ROLLING


def _create_at_stable(pending: list[str], members: Mapping[str, MemberState], old: DeploymentFleetStatus,
                      walk: _Pass) -> None:
    """A member added while its wave waits starts from the last commit the whole fleet reached, if any."""
    if old.stable_commit is not None:
        walk.create.extend((name, old.stable_commit) for name in pending if name not in members)


def _status(spec: DeploymentFleetSpec, generation: int, target: FleetTarget, members: Mapping[str, MemberState],
            old: DeploymentFleetStatus, walk: _Pass, now: datetime.datetime) -> DeploymentFleetStatus:
    standing = walk.standing
    updated = sum(wave.updated for wave in walk.waves)
    short = target.commit[:12]
    ready, reconciling, is_stalled = False, True, False
    if standing is None:
        ready, reconciling = True, False
        reason, message = "RolloutComplete", f"All {len(spec.members)} members serve {short}"
    elif standing.state is WaveState.HALTED:
        reconciling, is_stalled = False, True
        first = walk.failures[0]
        reason = "RolloutHalted"
        message = (f"Halted in wave {standing.name} after {len(walk.failures)} failed member(s): {first.member} "
                   f"failed in wave {first.wave}: {first.reason}{': ' + first.message if first.message else ''}")
    elif standing.state is WaveState.PAUSED:
        reconciling, reason = False, "Paused"
        message = f"Paused at wave {standing.name} (spec.paused): {updated}/{len(spec.members)} on {short}"
    elif standing.state is WaveState.WAITING_FOR_PROMOTION:
        reason = "WaitingForPromotion"
        message = f"Wave {standing.name} waits for the annotation deploy.o4o.io/promote={standing.name}"
    elif standing.state is WaveState.BAKING:
        reason, message = "Baking", f"Wave {standing.name} is updated and baking before the next wave"
    else:
        reason = "Rolling"
        message = f"Wave {standing.name}: {standing.updated}/{standing.members} updated to {short}"
    serving_all = standing is None
    return DeploymentFleetStatus(
        observed_generation=generation, target=target,
        conditions=_conditions(old, generation, _iso(now), ready=ready, reconciling=reconciling,
                               stalled=is_stalled, reason=reason, message=message),
        waves=tuple(walk.waves), current_wave=standing.name if standing else None, members=len(spec.members),
        updated=updated, ready=sum(1 for member in spec.members
                                   if (state := members.get(member.name)) is not None and state.ready),
        failures=tuple(walk.failures), stable_commit=target.commit if serving_all else old.stable_commit)
