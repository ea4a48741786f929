"""Drift checks go on while an instance is stalled: decided, summarised and deferred without any process.

A stall waits for a human; the server, the site's health and the certificate are still checked and
reported meanwhile, the stall's reason stays, and nothing is repaired until the stall clears.
"""

from __future__ import annotations

import datetime
from typing import Any

from o4o_operator.errors import PermanentError
from o4o_operator.models import (
    ConditionStatus,
    DeploymentInstanceSpec,
    DeploymentInstanceStatus,
    DriftFinding,
    StageState,
)
from o4o_operator.pipeline.decisions import CheckDrift, RunStage, Stall, current_inputs, decide, format_time
from o4o_operator.pipeline.facts import Facts
from o4o_operator.pipeline.stages import STAGES, STAGES_BY_NAME, StageName
from o4o_operator.pipeline.transitions import (
    with_drift_findings,
    with_stage_failed,
    with_stage_started,
    with_stage_succeeded,
    with_summary,
)

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
INTERVAL = datetime.timedelta(minutes=10)
FACTS = Facts(server_address="198.51.100.7", commit="a" * 40, env_version="v1")
SPEC: dict[str, Any] = {
    "domain": "shop.example.com", "apps": ["forum-core"],
    "provider": {"lightsail": {"region": "ap-northeast-2"}},
    "ssh": {"privateKeySecretRef": {"name": "k", "key": "ssh-privatekey"}},
    "source": {"repository": "https://example.com/o4o.git", "revision": "main"},
    "tls": {"email": "ops@example.com"},
}
REFUSED = "forum-core: No manifest found"
SERVER_STOPPED = DriftFinding(stage="provision", reason="ServerNotRunning", message="server o4o-x is stopped")


def _hashes(spec: dict[str, Any] = SPEC, facts: Facts = FACTS) -> dict[str, str]:
    return current_inputs(DeploymentInstanceSpec.model_validate(spec).to_body(), facts)


def _stalled_at(name: StageName, last_check: datetime.datetime | None) -> DeploymentInstanceStatus:
    """Every stage before ``name`` succeeded; ``name`` failed permanently (no retry: stalled)."""
    hashes = _hashes()
    status = DeploymentInstanceStatus()
    earlier = NOW - datetime.timedelta(hours=1)
    for stage in STAGES:
        status = with_stage_started(status, stage, hashes[stage.name.value], 1, earlier)
        if stage.name is name:
            status = with_stage_failed(status, stage, PermanentError("AppRefused", REFUSED), "uid", earlier)
            break
        status = with_stage_succeeded(status, stage, "done", earlier)
    return status.model_copy(update={"last_check_time": format_time(last_check) if last_check else None})


def _decide(status: DeploymentInstanceStatus, spec: dict[str, Any] = SPEC, facts: Facts = FACTS,
            now: datetime.datetime = NOW) -> Any:
    model = DeploymentInstanceSpec.model_validate(spec)
    return decide(model, model.to_body(), status, facts, {}, now, INTERVAL)


def _conditions(status: DeploymentInstanceStatus) -> dict[str, tuple[ConditionStatus, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in status.conditions}


def test_a_stalled_instance_whose_last_check_is_old_checks_drift_and_keeps_its_stall() -> None:
    status = _stalled_at(StageName.APPS, last_check=NOW - INTERVAL - datetime.timedelta(seconds=1))

    decision = _decide(status)

    assert isinstance(decision, CheckDrift)
    assert decision.stall == Stall(STAGES_BY_NAME[StageName.APPS], "AppRefused", REFUSED)
    assert [stage.name for stage in decision.checks] == [StageName.PROVISION, StageName.CONFIGURE, StageName.TLS]
    conditions = _conditions(with_summary(status, decision, _hashes(), 1, NOW))
    assert conditions["Stalled"][:2] == (ConditionStatus.TRUE, "AppRefused")
    assert conditions["Ready"][:2] == (ConditionStatus.FALSE, "AppRefused")
    assert conditions["Reconciling"][0] is ConditionStatus.FALSE


def test_a_stall_without_any_check_yet_checks_at_once() -> None:
    decision = _decide(_stalled_at(StageName.APPS, last_check=None))
    assert isinstance(decision, CheckDrift) and decision.stall is not None


def test_only_the_checks_of_stages_that_succeeded_before_the_stall_run() -> None:
    """No health check of a site never configured, no certificate check of one never issued."""
    decision = _decide(_stalled_at(StageName.SOURCE, last_check=None))
    assert isinstance(decision, CheckDrift)
    assert [stage.name for stage in decision.checks] == [StageName.PROVISION]


def test_a_stall_at_provision_has_nothing_to_check() -> None:
    decision = _decide(_stalled_at(StageName.PROVISION, last_check=None))
    assert decision == Stall(STAGES_BY_NAME[StageName.PROVISION], "AppRefused", REFUSED)


def test_a_recent_check_stalls_until_the_next_check_is_due() -> None:
    last = NOW - datetime.timedelta(minutes=3)
    decision = _decide(_stalled_at(StageName.APPS, last_check=last))
    assert decision == Stall(STAGES_BY_NAME[StageName.APPS], "AppRefused", REFUSED, next_check_at=last + INTERVAL)


def test_a_finding_while_stalled_is_reported_and_the_stall_reason_survives() -> None:
    status = with_drift_findings(_stalled_at(StageName.APPS, last_check=NOW), (SERVER_STOPPED,))

    decision = _decide(status)

    assert isinstance(decision, Stall) and decision.reason == "AppRefused"  # no repair while stalled
    conditions = _conditions(with_summary(status, decision, _hashes(), 1, NOW))
    assert conditions["Stalled"] == (ConditionStatus.TRUE, "AppRefused", f"Install the apps: {REFUSED}")
    assert conditions["Ready"][:2] == (ConditionStatus.FALSE, "AppRefused")
    assert REFUSED in conditions["Ready"][2] and "server o4o-x is stopped" in conditions["Ready"][2]
    assert conditions["ServerReady"] == (ConditionStatus.FALSE, "ServerNotRunning", "server o4o-x is stopped")
    assert conditions["AppsReady"][:2] == (ConditionStatus.FALSE, "AppRefused")
    summarized = with_summary(status, decision, _hashes(), 1, NOW)
    assert summarized.stage_progress == "8/10"  # neither the stopped server nor the refused apps count
    provision = status.stage("provision")
    assert provision is not None and provision.state is StageState.SUCCEEDED  # the record is left as it was


def test_once_the_stall_clears_what_drift_found_is_repaired_first() -> None:
    status = with_drift_findings(_stalled_at(StageName.APPS, last_check=NOW), (SERVER_STOPPED,))
    fixed = {**SPEC, "apps": []}

    decision = _decide(status, spec=fixed)

    assert isinstance(decision, RunStage) and decision.stage.name is StageName.PROVISION


def test_a_stall_cleared_by_a_fixed_secret_also_repairs_first() -> None:
    status = with_drift_findings(_stalled_at(StageName.APPS, last_check=NOW), (SERVER_STOPPED,))
    fixed = Facts(FACTS.server_address, FACTS.commit, FACTS.env_version, secrets_version="now-present")

    decision = _decide(status, facts=fixed)

    assert isinstance(decision, RunStage) and decision.stage.name is StageName.PROVISION


def test_starting_the_repair_drops_the_finding() -> None:
    status = with_drift_findings(_stalled_at(StageName.APPS, last_check=NOW), (SERVER_STOPPED,))
    provision = STAGES_BY_NAME[StageName.PROVISION]

    started = with_stage_started(status, provision, _hashes()["provision"], 1, NOW)

    assert started.drift_findings == ()
