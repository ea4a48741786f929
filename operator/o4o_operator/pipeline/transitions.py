"""Immutable status transitions: each returns a new status, never mutating one.

Owns: ``with_stage_started`` / ``with_stage_succeeded`` / ``with_stage_failed``,
``with_log_lines`` (the bounded, already-redacted tail) and ``with_summary`` /
``with_verdict``, which recompute conditions, phase, progress and observedGeneration from the
stage records and a decision. Purely computational: the clock is passed in.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from o4o_operator.errors import StageError
from o4o_operator.models import (
    LOG_LINE_BYTES,
    LOG_TAIL_LINES,
    DeploymentInstanceStatus,
    DriftFinding,
    StageState,
    StageStatus,
)
from o4o_operator.pipeline.conditions import (
    Summary,
    Verdict,
    build_conditions,
    derive_phase,
    stage_progress,
)
from o4o_operator.pipeline.decisions import (
    Decision,
    current_stages,
    format_time,
    retry_delay,
    summarize,
)
from o4o_operator.pipeline.stages import STAGES, Stage
from o4o_operator.redaction import bound_line


def _with_record(status: DeploymentInstanceStatus, record: StageStatus) -> DeploymentInstanceStatus:
    records = {existing.name: existing for existing in status.stages}
    records[record.name] = record
    ordered = tuple(records[stage.name.value] for stage in STAGES if stage.name.value in records)
    return status.model_copy(update={"stages": ordered})


def with_stage_started(status: DeploymentInstanceStatus, stage: Stage, inputs_hash: str, generation: int,
                       now: datetime.datetime, *, secrets_version: str | None = None) -> DeploymentInstanceStatus:
    """The stage runs (again); what a drift check found lost of it is no longer pending."""
    previous = status.stage(stage.name.value)
    same_inputs = previous is not None and previous.inputs_hash == inputs_hash
    attempts = (previous.attempts if previous and same_inputs and previous.state is not StageState.SUCCEEDED
                else 0) + 1
    record = StageStatus(name=stage.name.value, state=StageState.RUNNING, attempts=attempts,
                         started_at=format_time(now), message=f"{stage.title}: running",
                         inputs_hash=inputs_hash, secrets_version=secrets_version,
                         observed_generation=generation)
    findings = tuple(finding for finding in status.drift_findings if finding.stage != stage.name.value)
    return _with_record(status.model_copy(update={"drift_findings": findings}), record)


def with_stage_succeeded(status: DeploymentInstanceStatus, stage: Stage, message: str,
                         now: datetime.datetime) -> DeploymentInstanceStatus:
    record = status.stage(stage.name.value)
    assert record is not None, f"{stage.name.value} finished without starting"
    return _with_record(status, record.model_copy(update={
        "state": StageState.SUCCEEDED, "finished_at": format_time(now), "message": message,
        "reason": None, "next_retry_at": None,
    }))


def with_stage_failed(status: DeploymentInstanceStatus, stage: Stage, error: StageError, seed: str,
                      now: datetime.datetime) -> DeploymentInstanceStatus:
    """Record a failure; a transient one gets a retry time, a permanent one none (Stalled)."""
    record = status.stage(stage.name.value)
    assert record is not None, f"{stage.name.value} failed without starting"
    retry_at = None
    if error.transient:
        delay = retry_delay(stage, record.attempts, seed)
        retry_at = format_time(now + datetime.timedelta(seconds=delay))
    return _with_record(status, record.model_copy(update={
        "state": StageState.FAILED, "finished_at": format_time(now), "message": error.message[:4096],
        "reason": error.reason, "next_retry_at": retry_at,
    }))


def with_stage_invalidated(status: DeploymentInstanceStatus, stage: Stage, reason: str, message: str,
                           now: datetime.datetime) -> DeploymentInstanceStatus:
    """A drift check found a stage's result gone: make it run again now."""
    record = status.stage(stage.name.value)
    if record is None:
        return status
    return _with_record(status, record.model_copy(update={
        "state": StageState.FAILED, "reason": reason, "message": message[:4096],
        "next_retry_at": format_time(now), "finished_at": format_time(now),
    }))


def with_drift_findings(status: DeploymentInstanceStatus,
                        findings: tuple[DriftFinding, ...]) -> DeploymentInstanceStatus:
    """What a drift check of a stalled instance found lost, replacing what the last one found."""
    return status.model_copy(update={"drift_findings": findings})


def with_changes(status: DeploymentInstanceStatus, changes: Mapping[str, Any]) -> DeploymentInstanceStatus:
    """Apply a stage's status changes: ``{"server": ServerStatus(...), "certificate.not_after": "..."}``.

    A key is a status field (snake_case); a dotted key changes one field of a nested part and keeps the rest.
    """
    nested: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            top[key] = value
    for head, fields in nested.items():
        part = top.get(head, getattr(status, head))
        top[head] = part.model_copy(update=fields)
    return status.model_copy(update=top) if top else status


def with_log_lines(status: DeploymentInstanceStatus, lines: Iterable[str]) -> DeploymentInstanceStatus:
    """Append already-redacted lines, keeping the last LOG_TAIL_LINES of at most LOG_LINE_BYTES each."""
    new = tuple(bound_line(line, LOG_LINE_BYTES) for line in lines)
    if not new:
        return status
    return status.model_copy(update={"log_tail": (status.log_tail + new)[-LOG_TAIL_LINES:]})


def with_summary(status: DeploymentInstanceStatus, decision: Decision, hashes: Mapping[str, str],
                 generation: int, now: datetime.datetime) -> DeploymentInstanceStatus:
    """Recompute conditions, phase, progress and observedGeneration for ``decision``."""
    return with_verdict(status, summarize(decision, status), hashes, generation, now)


def with_verdict(status: DeploymentInstanceStatus, summary: Summary, hashes: Mapping[str, str],
                 generation: int, now: datetime.datetime) -> DeploymentInstanceStatus:
    """Recompute conditions, phase, progress and observedGeneration for a verdict reached without a
    decision (e.g. a spec that does not parse)."""
    current = current_stages(status, hashes)
    intact = current - {finding.stage for finding in status.drift_findings}
    return status.model_copy(update={
        "conditions": build_conditions(status.conditions, status.stages, current, summary, generation,
                                       format_time(now), status.drift_findings),
        "phase": derive_phase(summary, status.stages, intact),
        "stage_progress": stage_progress(status.stages, intact),
        "observed_generation": generation,
    })


def with_deleting(status: DeploymentInstanceStatus, message: str, generation: int,
                  now: datetime.datetime) -> DeploymentInstanceStatus:
    summary = Summary(Verdict.DELETING, "Deleting", message)
    return status.model_copy(update={
        "phase": derive_phase(summary, status.stages, frozenset()),
        "conditions": build_conditions(status.conditions, status.stages, frozenset(), summary, generation,
                                       format_time(now)),
    })


def status_from_body(body: Mapping[str, Any] | None) -> DeploymentInstanceStatus:
    """Parse a stored status leniently: unknown or malformed parts fall back to defaults."""
    try:
        return DeploymentInstanceStatus.model_validate(dict(body or {}))
    except ValueError:
        return DeploymentInstanceStatus()
