"""The pipeline's decision: given spec, status, facts and the clock, what next.

Owns: :func:`decide`, a flat chain of early returns in the style of Kopf's
``detect_changing_cause``, and the retry backoff. Purely computational: the
clock and everything observed are passed in; nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Mapping
from typing import Any

from o4o_operator.models import (
    PAUSED_ANNOTATION,
    DeploymentInstanceSpec,
    DeploymentInstanceStatus,
    StageState,
    StageStatus,
)
from o4o_operator.pipeline.conditions import Summary, Verdict
from o4o_operator.pipeline.facts import Facts, inputs_hash
from o4o_operator.pipeline.stages import STAGES, Stage

BASE_BACKOFF_SECONDS = 5.0
DEFAULT_DRIFT_INTERVAL = datetime.timedelta(minutes=10)


@dataclasses.dataclass(frozen=True)
class RunStage:
    stage: Stage
    inputs_hash: str


@dataclasses.dataclass(frozen=True)
class WaitForRetry:
    stage: Stage
    until: datetime.datetime


@dataclasses.dataclass(frozen=True)
class Stall:
    stage: Stage
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Pause:
    pass


@dataclasses.dataclass(frozen=True)
class CheckDrift:
    pass


@dataclasses.dataclass(frozen=True)
class Settle:
    next_check_at: datetime.datetime


Decision = RunStage | WaitForRetry | Stall | Pause | CheckDrift | Settle


def parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_paused(spec: DeploymentInstanceSpec, annotations: Mapping[str, str]) -> bool:
    return spec.paused or annotations.get(PAUSED_ANNOTATION, "").lower() == "true"


def current_inputs(spec_body: Mapping[str, Any], facts: Facts) -> dict[str, str]:
    """Each stage's inputs digest right now."""
    return {stage.name.value: inputs_hash(stage, spec_body, facts) for stage in STAGES}


def current_stages(status: DeploymentInstanceStatus, hashes: Mapping[str, str]) -> frozenset[str]:
    """Stages that succeeded with exactly today's inputs."""
    return frozenset(
        record.name for record in status.stages
        if record.state is StageState.SUCCEEDED and record.inputs_hash == hashes.get(record.name)
    )


def retry_delay(stage: Stage, attempt: int, seed: str) -> float:
    """Exponential backoff with deterministic jitter (50-150%), capped per stage."""
    digest = hashlib.sha256(f"{seed}:{stage.name.value}:{attempt}".encode()).digest()
    jitter = 0.5 + digest[0] / 255
    return float(min(stage.max_backoff_seconds, BASE_BACKOFF_SECONDS * 2 ** max(0, attempt - 1)) * jitter)


def decide(spec: DeploymentInstanceSpec, spec_body: Mapping[str, Any], status: DeploymentInstanceStatus,
           facts: Facts, annotations: Mapping[str, str], now: datetime.datetime,
           drift_interval: datetime.timedelta = DEFAULT_DRIFT_INTERVAL) -> Decision:
    if is_paused(spec, annotations):
        return Pause()
    hashes = current_inputs(spec_body, facts)
    records = {record.name: record for record in status.stages}
    for stage in STAGES:
        record = records.get(stage.name.value)
        wanted = hashes[stage.name.value]
        if record is not None and record.state is StageState.SUCCEEDED and record.inputs_hash == wanted:
            continue
        return _next_for_stage(stage, record, wanted, facts, now)
    last_check = parse_time(status.last_check_time)
    if last_check is None or now >= last_check + drift_interval:
        return CheckDrift()
    return Settle(next_check_at=last_check + drift_interval)


def _next_for_stage(stage: Stage, record: StageStatus | None, wanted: str, facts: Facts,
                    now: datetime.datetime) -> Decision:
    if record is None or record.state is not StageState.FAILED or record.inputs_hash != wanted:
        return RunStage(stage, wanted)
    retry_at = parse_time(record.next_retry_at)
    if retry_at is None:
        if record.secrets_version != facts.secrets_version:  # a referenced Secret was fixed
            return RunStage(stage, wanted)
        return Stall(stage, record.reason or "Failed", record.message)
    if now < retry_at:
        return WaitForRetry(stage, retry_at)
    return RunStage(stage, wanted)


def summarize(decision: Decision, status: DeploymentInstanceStatus) -> Summary:
    """How a decision reads in the Ready/Reconciling/Stalled conditions."""
    if isinstance(decision, Pause):
        return Summary(Verdict.PAUSED, "Paused", "Reconciliation is paused (spec.paused or annotation)")
    if isinstance(decision, Stall):
        return Summary(Verdict.STALLED, decision.reason, f"{decision.stage.title}: {decision.message}")
    if isinstance(decision, RunStage):
        return Summary(Verdict.WORKING, decision.stage.phase.value, decision.stage.title)
    if isinstance(decision, WaitForRetry):
        record = status.stage(decision.stage.name.value)
        why = f"{record.reason}: {record.message}" if record else "failed"
        return Summary(Verdict.WORKING, "RetryScheduled",
                       f"{decision.stage.title} failed ({why}); retrying at {format_time(decision.until)}")
    if isinstance(decision, CheckDrift):
        return Summary(Verdict.WORKING, "Verifying", "Checking the server, HTTP health and the certificate")
    return Summary(Verdict.SETTLED, "Succeeded", f"All {len(STAGES)} stages succeeded")
