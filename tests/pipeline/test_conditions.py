"""Conditions, phase and the status contract, computed without any process."""

from __future__ import annotations

import datetime

import pytest

from o4o_operator.errors import PermanentError, TransientError
from o4o_operator.models import ConditionStatus, DeploymentInstanceStatus, Phase
from o4o_operator.pipeline.decisions import (
    CheckDrift,
    Pause,
    RunStage,
    Settle,
    Stall,
    WaitForRetry,
    current_inputs,
)
from o4o_operator.pipeline.facts import Facts
from o4o_operator.pipeline.stages import STAGE_COUNT, STAGES, STAGES_BY_NAME, StageName
from o4o_operator.pipeline.transitions import (
    with_log_lines,
    with_stage_failed,
    with_stage_started,
    with_stage_succeeded,
    with_summary,
)

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(minutes=5)
HASHES = {stage.name.value: f"h-{stage.name.value}" for stage in STAGES}


def _done(upto: int) -> DeploymentInstanceStatus:
    status = DeploymentInstanceStatus()
    for stage in STAGES[:upto]:
        status = with_stage_succeeded(with_stage_started(status, stage, HASHES[stage.name.value], 3, NOW),
                                      stage, "ok", NOW)
    return status


def _conditions(status: DeploymentInstanceStatus) -> dict[str, tuple[ConditionStatus, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_all_stages_done_is_ready_and_not_reconciling() -> None:
    status = with_summary(_done(STAGE_COUNT), Settle(NOW), HASHES, 3, NOW)
    conditions = _conditions(status)
    assert conditions["Ready"] == (ConditionStatus.TRUE, "Succeeded")
    assert conditions["Reconciling"][0] is ConditionStatus.FALSE
    assert conditions["Stalled"][0] is ConditionStatus.FALSE
    assert all(conditions[s.condition] == (ConditionStatus.TRUE, "Succeeded") for s in STAGES)
    assert status.phase is Phase.READY
    assert status.stage_progress == "10/10"
    assert status.observed_generation == 3
    assert all(c.observed_generation == 3 for c in status.conditions)


@pytest.mark.parametrize(("done", "phase"), [(0, Phase.PROVISIONING), (2, Phase.INSTALLING),
                                              (3, Phase.INSTALLING), (5, Phase.BUILDING),
                                              (7, Phase.CONFIGURING)])
def test_phase_follows_the_running_stage(done: int, phase: Phase) -> None:
    stage = STAGES[done]
    status = with_stage_started(_done(done), stage, HASHES[stage.name.value], 1, NOW)
    status = with_summary(status, RunStage(stage, HASHES[stage.name.value]), HASHES, 1, NOW)
    assert status.phase is phase
    assert _conditions(status)["Reconciling"] == (ConditionStatus.TRUE, phase.value)
    assert _conditions(status)["Ready"][0] is ConditionStatus.FALSE
    assert _conditions(status)[stage.condition] == (ConditionStatus.FALSE, "InProgress")


def test_nothing_started_is_pending() -> None:
    status = with_summary(DeploymentInstanceStatus(), RunStage(STAGES[0], "h"), HASHES, 1, NOW)
    assert status.phase is Phase.PENDING
    assert status.stage_progress == "0/10"


def test_stalled_is_failed_with_the_reason() -> None:
    stage = STAGES_BY_NAME[StageName.APPS]
    status = with_stage_started(_done(STAGE_COUNT - 1), stage, HASHES["apps"], 1, NOW)
    status = with_stage_failed(status, stage, PermanentError("UnknownApp", "no app named blog"), "u", NOW)
    status = with_summary(status, Stall(stage, "UnknownApp", "no app named blog"), HASHES, 1, NOW)
    conditions = _conditions(status)
    assert conditions["Stalled"] == (ConditionStatus.TRUE, "UnknownApp")
    assert conditions["Ready"] == (ConditionStatus.FALSE, "UnknownApp")
    assert conditions["Reconciling"][0] is ConditionStatus.FALSE
    assert conditions["AppsReady"] == (ConditionStatus.FALSE, "UnknownApp")
    assert status.phase is Phase.FAILED


def test_retry_scheduled_is_still_reconciling() -> None:
    stage = STAGES[2]
    status = with_stage_started(_done(2), stage, HASHES[stage.name.value], 1, NOW)
    status = with_stage_failed(status, stage, TransientError("ConnectionLost", "dropped"), "u", NOW)
    status = with_summary(status, WaitForRetry(stage, LATER), HASHES, 1, NOW)
    assert _conditions(status)["Reconciling"] == (ConditionStatus.TRUE, "RetryScheduled")
    assert _conditions(status)["Stalled"][0] is ConditionStatus.FALSE


def test_paused_is_not_reconciling_with_reason_paused() -> None:
    status = with_summary(_done(3), Pause(), HASHES, 1, NOW)
    assert _conditions(status)["Reconciling"] == (ConditionStatus.FALSE, "Paused")


def test_transition_time_moves_only_on_a_flip() -> None:
    first = with_summary(_done(2), RunStage(STAGES[2], "h"), HASHES, 1, NOW)
    second = with_summary(first, RunStage(STAGES[3], "h"), HASHES, 1, LATER)
    ready_before = first.condition("Ready")
    ready_after = second.condition("Ready")
    assert ready_before is not None and ready_after is not None
    assert ready_after.last_transition_time == ready_before.last_transition_time
    done = with_summary(_done(STAGE_COUNT), Settle(LATER), HASHES, 1, LATER)
    flipped = with_summary(done.model_copy(update={"conditions": second.conditions}), Settle(LATER), HASHES, 1,
                           LATER + datetime.timedelta(minutes=1))
    assert flipped.condition("Ready").last_transition_time != ready_before.last_transition_time  # type: ignore[union-attr]


def test_changed_inputs_make_a_succeeded_stage_not_current() -> None:
    changed = {**HASHES, "apps": "new"}
    status = with_summary(_done(STAGE_COUNT), RunStage(STAGES[-1], "new"), changed, 2, NOW)
    assert _conditions(status)["AppsReady"] == (ConditionStatus.FALSE, "InputsChanged")
    assert status.stage_progress == "9/10"


def test_log_tail_is_bounded_in_lines_and_bytes() -> None:
    status = with_log_lines(DeploymentInstanceStatus(), [f"line {i}" for i in range(150)] + ["x" * 5000])
    assert len(status.log_tail) == 100
    assert status.log_tail[-2] == "line 149"
    assert len(status.log_tail[-1].encode()) <= 1024


def test_inputs_depend_on_facts() -> None:
    spec = {"domain": "a.example.com", "source": {"revision": "main"}}
    assert current_inputs(spec, Facts("1.1.1.1")) != current_inputs(spec, Facts("2.2.2.2"))


def test_ready_waits_for_the_first_drift_check() -> None:
    status = with_summary(_done(9), CheckDrift(), HASHES, 1, NOW)
    assert _conditions(status)["Ready"] == (ConditionStatus.FALSE, "Verifying")
    assert _conditions(status)["Reconciling"] == (ConditionStatus.TRUE, "Verifying")
