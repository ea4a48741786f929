"""View models for DeploymentFleets: the fleet list's rows and one fleet's page.

Owns: turning a DeploymentFleet body into a :class:`FleetRow` (target, updated/total, Ready, current wave,
and one :class:`FleetState`: done, rolling, baking, waiting for promotion, paused, halted, stalled), and a
fleet body plus its members' DeploymentInstance bodies into a :class:`FleetDetail` (the target, each wave
with its state and counts, the member table, and the halting member with its reason and wave). Which member
belongs to which wave is the planner's own :func:`assign_waves`, and whether a member is updated is the
planner's own :meth:`MemberState.updated_to`, so the page cannot disagree with the rollout. Messages and the
repository pass through the operator's :class:`Redactor` (credential-shaped text is masked), and the
template is summarised by the instance page's allow-list, which shows Secrets as references only.
Purely computational: no I/O, no clock. Must not read a Secret.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from o4o_dashboard import bodies
from o4o_dashboard.detail import ConditionView, FieldGroup, condition_views, spec_groups
from o4o_dashboard.views import condition
from o4o_operator.models import ConditionStatus, Phase
from o4o_operator.models_fleet import PROMOTE_ANNOTATION, DeploymentFleetSpec, WaveState
from o4o_operator.pipeline.fleet_rollout import MemberState
from o4o_operator.pipeline.fleet_waves import FleetSpecProblem, assign_waves
from o4o_operator.redaction import Redactor

SHORT_COMMIT = 12
HALTED_REASON = "RolloutHalted"
_REDACT = Redactor()  # no values known here: masks credential-shaped text (URLs with passwords, keys)
TRUE = ConditionStatus.TRUE.value


class FleetState(enum.StrEnum):
    """Where a fleet's rollout stands, as its conditions say (one word for the list's badge)."""

    PENDING = "Pending"
    ROLLING = "Rolling"
    BAKING = "Baking"
    WAITING_FOR_PROMOTION = "WaitingForPromotion"
    PAUSED = "Paused"
    HALTED = "Halted"
    STALLED = "Stalled"
    DONE = "Done"


def short(commit: str) -> str:
    return commit[:SHORT_COMMIT]


def fleet_state(body: Mapping[str, Any]) -> FleetState:
    """The fleet's state from its Stalled and Ready conditions (a flat chain, most severe first)."""
    status = bodies.mapping(body, "status")
    stalled, ready = condition(status, "Stalled"), condition(status, "Ready")
    if stalled.get("status") == TRUE:
        return FleetState.HALTED if stalled.get("reason") == HALTED_REASON else FleetState.STALLED
    if ready.get("status") == TRUE:
        return FleetState.DONE
    reason = bodies.text(ready, "reason")
    if reason == "Paused" or bodies.flag(body, "spec", "paused"):
        return FleetState.PAUSED
    if reason == "WaitingForPromotion":
        return FleetState.WAITING_FOR_PROMOTION
    if reason == "Baking":
        return FleetState.BAKING
    if not ready:
        return FleetState.PENDING
    return FleetState.ROLLING


@dataclasses.dataclass(frozen=True, slots=True)
class FleetRow:
    """One line of the fleet list, computed once when the fleet changes."""

    namespace: str
    name: str
    uid: str
    state: FleetState
    paused: bool
    target_revision: str
    target_commit: str
    updated: int
    members: int
    ready_members: int
    ready: str
    """The fleet's Ready condition status (True, False, Unknown, or blank before any status)."""
    ready_reason: str
    ready_message: str
    current_wave: str
    created_at: datetime.datetime | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def target_short(self) -> str:
        return short(self.target_commit)

    @property
    def halted(self) -> bool:
        return self.state is FleetState.HALTED

    @property
    def health(self) -> str:
        """The CSS bucket of the state's badge (the instance list's colours)."""
        if self.state in (FleetState.HALTED, FleetState.STALLED):
            return "failed"
        if self.state is FleetState.DONE:
            return "ready"
        return "paused" if self.state is FleetState.PAUSED else "deploying"


def fleet_row(body: Mapping[str, Any]) -> FleetRow:
    """The list row for a DeploymentFleet body (any shape; missing parts show as blanks)."""
    status = bodies.mapping(body, "status")
    ready = condition(status, "Ready")
    listed = len(bodies.mappings(body, "spec", "members"))
    state = fleet_state(body)
    return FleetRow(
        namespace=bodies.text(body, "metadata", "namespace"),
        name=bodies.text(body, "metadata", "name"),
        uid=bodies.text(body, "metadata", "uid"),
        state=state,
        paused=state is FleetState.PAUSED or bodies.flag(body, "spec", "paused"),
        target_revision=bodies.text(status, "target", "revision"),
        target_commit=bodies.text(status, "target", "commit"),
        updated=bodies.integer(status, "updated"),
        members=bodies.integer(status, "members", default=listed) or listed,
        ready_members=bodies.integer(status, "ready"),
        ready=bodies.text(ready, "status"),
        ready_reason=bodies.text(ready, "reason"),
        ready_message=_REDACT(bodies.text(ready, "message")),
        current_wave=bodies.text(status, "currentWave"),
        created_at=bodies.timestamp(body, "metadata", "creationTimestamp"),
    )


# ---- one fleet -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class WaveView:
    name: str
    state: str
    members: int
    updated: int
    failed: int
    pending: int
    started_at: datetime.datetime | None
    updated_at: datetime.datetime | None
    current: bool

    @property
    def rolling(self) -> int:
        return max(0, self.members - self.updated - self.failed - self.pending)


@dataclasses.dataclass(frozen=True, slots=True)
class MemberView:
    name: str
    domain: str
    wave: str
    exists: bool
    """A DeploymentInstance of this name is in the cache."""
    owned: bool
    """That DeploymentInstance's controller is this fleet (an unowned one is never touched, nor linked)."""
    phase: str
    pinned: str
    """Its ``spec.source.revision`` (the fleet pins it to the target commit)."""
    commit: str
    """Its ``status.source.commit``: what it serves."""
    on_target: bool
    updated: bool
    ready: str
    ready_reason: str
    failure_reason: str
    halting: bool


@dataclasses.dataclass(frozen=True, slots=True)
class HaltView:
    """Why nothing more starts: the first failed member (halted), or the spec problem (stalled)."""

    reason: str
    message: str
    member: str
    wave: str
    failed_members: int


@dataclasses.dataclass(frozen=True, slots=True)
class FleetDetail:
    row: FleetRow
    generation: int
    observed_generation: int
    repository: str
    spec_revision: str
    failure_threshold: int
    waves: tuple[WaveView, ...]
    members: tuple[MemberView, ...]
    halt: HaltView | None
    promote_command: str
    """What releases the manual gate the fleet waits at (blank when it waits at none)."""
    conditions: tuple[ConditionView, ...]
    template: tuple[FieldGroup, ...]


def _parsed_spec(body: Mapping[str, Any]) -> DeploymentFleetSpec | None:
    try:
        return DeploymentFleetSpec.model_validate(bodies.mapping(body, "spec"))
    except pydantic.ValidationError:
        return None


def wave_of_members(body: Mapping[str, Any]) -> dict[str, str]:
    """Member name -> its wave, exactly as the planner assigns them (empty if the spec cannot be rolled)."""
    spec = _parsed_spec(body)
    if spec is None:
        return {}
    try:
        return {member.name: wave.name for wave in assign_waves(spec) for member in wave.members}
    except FleetSpecProblem:
        return {}


def member_state(name: str, instance: Mapping[str, Any]) -> MemberState:
    """The planner's view of one member DeploymentInstance body."""
    status = bodies.mapping(instance, "status")
    stalled, ready = condition(status, "Stalled"), condition(status, "Ready")
    is_stalled = stalled.get("status") == TRUE
    return MemberState(
        name, pinned_revision=bodies.text(instance, "spec", "source", "revision") or None,
        commit=bodies.text(status, "source", "commit") or None,
        generation=bodies.integer(instance, "metadata", "generation", default=1),
        observed_generation=bodies.integer(status, "observedGeneration"),
        ready=ready.get("status") == TRUE, stalled=is_stalled,
        reason=bodies.text(stalled if is_stalled else ready, "reason"))


def _owned_by(instance: Mapping[str, Any], fleet_uid: str) -> bool:
    owners = bodies.mappings(instance, "metadata", "ownerReferences")
    return any(owner.get("controller") is True and owner.get("uid") == fleet_uid for owner in owners)


def _wave_views(body: Mapping[str, Any], waves_of: Mapping[str, str]) -> tuple[WaveView, ...]:
    status = bodies.mapping(body, "status")
    current = bodies.text(status, "currentWave")
    reported = bodies.mappings(status, "waves")
    if reported:
        return tuple(WaveView(
            name=bodies.text(w, "name"), state=bodies.text(w, "state") or WaveState.PENDING.value,
            members=bodies.integer(w, "members"), updated=bodies.integer(w, "updated"),
            failed=bodies.integer(w, "failed"), pending=bodies.integer(w, "pending"),
            started_at=bodies.timestamp(w, "startedAt"), updated_at=bodies.timestamp(w, "updatedAt"),
            current=bodies.text(w, "name") == current) for w in reported)
    names = list(dict.fromkeys(waves_of.values()))  # no status yet: the waves the spec makes, all pending
    return tuple(WaveView(name=name, state=WaveState.PENDING.value, members=list(waves_of.values()).count(name),
                          updated=0, failed=0, pending=list(waves_of.values()).count(name), started_at=None,
                          updated_at=None, current=False) for name in names)


def _halt(row: FleetRow, status: Mapping[str, Any]) -> HaltView | None:
    stalled = condition(status, "Stalled")
    failures = bodies.mappings(status, "failures")
    if row.state is FleetState.HALTED and failures:
        first = failures[0]
        return HaltView(reason=bodies.text(first, "reason"), message=_REDACT(bodies.text(first, "message")),
                        member=bodies.text(first, "member"), wave=bodies.text(first, "wave"),
                        failed_members=len(failures))
    if row.state in (FleetState.HALTED, FleetState.STALLED):
        return HaltView(reason=bodies.text(stalled, "reason"), message=_REDACT(bodies.text(stalled, "message")),
                        member="", wave=bodies.text(status, "currentWave"), failed_members=len(failures))
    return None


def fleet_detail(body: Mapping[str, Any], instance: Callable[[str], Mapping[str, Any] | None]) -> FleetDetail:
    """The fleet page; ``instance(name)`` is the cached DeploymentInstance of that name in the fleet's
    namespace, or ``None``."""
    status = bodies.mapping(body, "status")
    row = fleet_row(body)
    waves_of = wave_of_members(body)
    failures = {bodies.text(f, "member"): bodies.text(f, "reason") for f in bodies.mappings(status, "failures")}
    halt = _halt(row, status)
    members = []
    for entry in bodies.mappings(body, "spec", "members"):
        name = bodies.text(entry, "name")
        found = instance(name)
        cached = found or {}
        owned = found is not None and _owned_by(cached, row.uid)
        shown = cached if owned else {}
        commit = bodies.text(shown, "status", "source", "commit")
        ready = condition(bodies.mapping(shown, "status"), "Ready")
        members.append(MemberView(
            name=name, domain=bodies.text(entry, "domain"), wave=waves_of.get(name, ""), exists=found is not None,
            owned=owned, phase=(bodies.text(shown, "status", "phase") or Phase.PENDING.value) if owned else "",
            pinned=bodies.text(shown, "spec", "source", "revision"), commit=commit,
            on_target=bool(commit) and commit == row.target_commit,
            updated=owned and bool(row.target_commit) and member_state(name, shown).updated_to(row.target_commit),
            ready=bodies.text(ready, "status"), ready_reason=bodies.text(ready, "reason"),
            failure_reason=failures.get(name, ""), halting=halt is not None and halt.member == name))
    waves = _wave_views(body, waves_of)
    gate = next((w.name for w in waves if w.state == WaveState.WAITING_FOR_PROMOTION.value), "")
    return FleetDetail(
        row=row, generation=bodies.integer(body, "metadata", "generation"),
        observed_generation=bodies.integer(status, "observedGeneration"),
        repository=_REDACT(bodies.text(status, "target", "repository")
                           or bodies.text(body, "spec", "template", "source", "repository")),
        spec_revision=bodies.text(body, "spec", "template", "source", "revision"),
        failure_threshold=bodies.integer(body, "spec", "failureThreshold", default=1),
        waves=waves, members=tuple(members), halt=halt,
        promote_command=(f"kubectl annotate dfleet {row.name} -n {row.namespace} {PROMOTE_ANNOTATION}={gate}"
                         if gate else ""),
        conditions=tuple(dataclasses.replace(c, message=_REDACT(c.message)) for c in condition_views(status)),
        template=spec_groups(bodies.mapping(body, "spec", "template")),
    )
