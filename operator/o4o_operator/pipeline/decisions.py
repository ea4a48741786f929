"""The pipeline's decision: given spec, status, facts and the clock, what next.

Owns: :func:`decide`, a flat chain of early returns in the style of Kopf's
``detect_changing_cause``, and the retry backoff. Purely computational: the
clock and everything observed are passed in; nothing here does I/O.

Drift checks run while settled and while stalled. A stall waits for a human, and what was
built before the stalled stage can still be lost meanwhile (a stopped server, a failing site,
an expiring certificate), so a stalled instance still checks, once per drift interval, the
stages that succeeded before the stalled one (never a stage it has not reached: no health
check of a site never configured). Those findings are reported, not repaired, while stalled
(:attr:`DeploymentInstanceStatus.drift_findings`): a repair would run stages around the stall,
turning Stalled False while it runs, and could replace the stall's reason with another failure
or retry forever behind it. Once the stall clears, the stages found lost run first.
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
    next_check_at: datetime.datetime | None = None
    """When the drift check of the stages before the stalled one is next due; None: they have none."""


@dataclasses.dataclass(frozen=True)
class Pause:
    pass


@dataclasses.dataclass(frozen=True)
class CheckDrift:
    checks: tuple[Stage, ...] = tuple(stage for stage in STAGES if stage.drift is not None)
    """The stages whose drift checks run (every one's when settled; those before the stalled stage when
    stalled)."""
    stall: Stall | None = None
    """Set while stalled: the check reports what it finds and the stall stays as it is."""


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


def _is_current(record: StageStatus | None, wanted: str) -> bool:
    return record is not None and record.state is StageState.SUCCEEDED and record.inputs_hash == wanted


def decide(spec: DeploymentInstanceSpec, spec_body: Mapping[str, Any], status: DeploymentInstanceStatus,
           facts: Facts, annotations: Mapping[str, str], now: datetime.datetime,
           drift_interval: datetime.timedelta = DEFAULT_DRIFT_INTERVAL) -> Decision:
    if is_paused(spec, annotations):
        return Pause()
    hashes = current_inputs(spec_body, facts)
    records = {record.name: record for record in status.stages}
    found_lost = {finding.stage for finding in status.drift_findings}
    repair: RunStage | None = None  # the first stage a check found lost while stalled
    for index, stage in enumerate(STAGES):
        wanted = hashes[stage.name.value]
        if _is_current(records.get(stage.name.value), wanted):
            if repair is None and stage.name.value in found_lost:
                repair = RunStage(stage, wanted)
            continue
        following = _next_for_stage(stage, records.get(stage.name.value), wanted, facts, now)
        if isinstance(following, Stall):
            return _while_stalled(following, STAGES[:index], status, now, drift_interval)
        return repair or following
    if repair is not None:
        return repair
    last_check = parse_time(status.last_check_time)
    if last_check is None or now >= last_check + drift_interval:
        return CheckDrift()
    return Settle(next_check_at=last_check + drift_interval)


def _while_stalled(stall: Stall, before: tuple[Stage, ...], status: DeploymentInstanceStatus,
                   now: datetime.datetime, drift_interval: datetime.timedelta) -> Decision:
    """The stall, or a drift check of the stages that succeeded before it when one is due."""
    checks = tuple(stage for stage in before if stage.drift is not None)
    if not checks:
        return stall
    last_check = parse_time(status.last_check_time)
    if last_check is None or now >= last_check + drift_interval:
        return CheckDrift(checks, stall=stall)
    return dataclasses.replace(stall, next_check_at=last_check + drift_interval)


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
    if isinstance(decision, CheckDrift) and decision.stall is not None:
        decision = decision.stall
    if isinstance(decision, Stall):
        message = f"{decision.stage.title}: {decision.message}"
        return Summary(Verdict.STALLED, decision.reason, message, ready_message=_with_findings(message, status))
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


def _with_findings(message: str, status: DeploymentInstanceStatus) -> str | None:
    """Ready's message while stalled: the stall, then what the drift check found lost (None: nothing).

    Ready is the condition kubectl shows (``kubectl get di -o wide``'s Reason and Message columns,
    ``kubectl wait``), and a lost server or failing site is a reason the instance is not ready. Stalled
    keeps the stall's own reason and message, because kstatus (Flux, kpt) reports a stalled resource by
    them and the findings are not why progress stopped. Each finding also turns its stage's own
    condition False (``ServerReady``, ``Configured``, ``CertificateReady``) with the check's reason,
    and the Argo CD health check (``manifests/argocd/health.lua``) appends ``status.driftFindings`` to
    its Degraded message. No new condition type: kstatus and Argo CD would ignore it.
    """
    if not status.drift_findings:
        return None
    found = "; ".join(finding.message for finding in status.drift_findings)
    return f"{message}. The drift check also found: {found} (repaired once the stall is resolved)"
