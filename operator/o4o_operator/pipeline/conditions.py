"""Conditions and phase, derived from stage records and the pipeline's verdict.

Owns: building the full ``conditions`` list (Ready, Reconciling, Stalled and one
per stage) in metav1.Condition shape, keeping ``lastTransitionTime`` unless the
status flips, and deriving the display-only ``phase``. Purely computational:
the clock is passed in.
"""

from __future__ import annotations

import dataclasses
import enum

from o4o_operator.errors import bounded_reason
from o4o_operator.models import Condition, ConditionStatus, DriftFinding, Phase, StageState, StageStatus
from o4o_operator.pipeline.stages import STAGES, Stage

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"


class Verdict(enum.StrEnum):
    """Where the instance stands overall, as decided by :func:`pipeline.decisions.decide`."""

    WORKING = "Working"
    SETTLED = "Settled"
    STALLED = "Stalled"
    PAUSED = "Paused"
    DELETING = "Deleting"


@dataclasses.dataclass(frozen=True)
class Summary:
    verdict: Verdict
    reason: str
    message: str
    ready_message: str | None = None
    """Ready's message when it says more than the others (a stall and what drift found); None: ``message``."""


def _stage_condition(stage: Stage, record: StageStatus | None, current: bool,
                     finding: DriftFinding | None) -> tuple[ConditionStatus, str, str]:
    if record is None or record.state is StageState.PENDING:
        return ConditionStatus.UNKNOWN, "Pending", f"{stage.title}: not started"
    if record.state is StageState.RUNNING:
        return ConditionStatus.FALSE, "InProgress", f"{stage.title}: running (attempt {record.attempts})"
    if record.state is StageState.FAILED:
        return ConditionStatus.FALSE, record.reason or "Failed", record.message or f"{stage.title} failed"
    if not current:
        return ConditionStatus.FALSE, "InputsChanged", f"{stage.title}: inputs changed, will run again"
    if finding is not None:  # found lost while stalled: it runs again once the stall clears
        return ConditionStatus.FALSE, finding.reason, finding.message or f"{stage.title}: found lost"
    return ConditionStatus.TRUE, "Succeeded", record.message or f"{stage.title}: done"


def _merge(previous: dict[str, Condition], type_: str, status: ConditionStatus, reason: str, message: str,
           generation: int, now: str) -> Condition:
    old = previous.get(type_)
    changed = old is None or old.status is not status
    return Condition(type=type_, status=status, reason=bounded_reason(reason), message=message[:1024],
                     last_transition_time=now if changed or old is None else old.last_transition_time,
                     observed_generation=generation)


def build_conditions(previous: tuple[Condition, ...], stages: tuple[StageStatus, ...],
                     current_stages: frozenset[str], summary: Summary, generation: int,
                     now: str, findings: tuple[DriftFinding, ...] = ()) -> tuple[Condition, ...]:
    """All conditions, in a stable order; transition times move only on a flip."""
    old = {condition.type: condition for condition in previous}
    records = {record.name: record for record in stages}
    found = {finding.stage: finding for finding in findings}
    verdict = summary.verdict
    ready = verdict is Verdict.SETTLED
    reconciling = verdict is Verdict.WORKING
    conditions = [
        _merge(old, READY, ConditionStatus.TRUE if ready else ConditionStatus.FALSE,
               "Succeeded" if ready else summary.reason, summary.ready_message or summary.message, generation, now),
        _merge(old, RECONCILING, ConditionStatus.TRUE if reconciling else ConditionStatus.FALSE,
               summary.reason if reconciling or verdict is Verdict.PAUSED else "Idle",
               summary.message if reconciling or verdict is Verdict.PAUSED else "Nothing to do",
               generation, now),
        _merge(old, STALLED, ConditionStatus.TRUE if verdict is Verdict.STALLED else ConditionStatus.FALSE,
               summary.reason if verdict is Verdict.STALLED else "NotStalled",
               summary.message if verdict is Verdict.STALLED else "Progressing or done", generation, now),
    ]
    for stage in STAGES:
        status, reason, message = _stage_condition(stage, records.get(stage.name.value),
                                                   stage.name.value in current_stages, found.get(stage.name.value))
        conditions.append(_merge(old, stage.condition, status, reason, message, generation, now))
    return tuple(conditions)


def derive_phase(summary: Summary, stages: tuple[StageStatus, ...], current_stages: frozenset[str]) -> Phase:
    """The display-only phase: a function of the verdict and the first unfinished stage."""
    if summary.verdict is Verdict.DELETING:
        return Phase.DELETING
    if summary.verdict is Verdict.STALLED:
        return Phase.FAILED
    if summary.verdict is Verdict.SETTLED:
        return Phase.READY
    records = {record.name: record for record in stages}
    if not any(record.state is not StageState.PENDING for record in stages):
        return Phase.PENDING
    for stage in STAGES:
        record = records.get(stage.name.value)
        if record is None or stage.name.value not in current_stages:
            return stage.phase
    return Phase.CONFIGURING


def stage_progress(stages: tuple[StageStatus, ...], current_stages: frozenset[str]) -> str:
    done = sum(1 for record in stages if record.name in current_stages)
    return f"{done}/{len(STAGES)}"
