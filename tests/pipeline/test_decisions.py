"""Pipeline decisions as tables: given spec, status and facts, expect an action. No processes."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from o4o_operator.errors import PermanentError, TransientError
from o4o_operator.models import DeploymentInstanceSpec, DeploymentInstanceStatus, StageState
from o4o_operator.pipeline.decisions import (
    CheckDrift,
    Pause,
    RunStage,
    Settle,
    Stall,
    WaitForRetry,
    current_inputs,
    decide,
    format_time,
)
from o4o_operator.pipeline.facts import Facts
from o4o_operator.pipeline.stages import STAGES, STAGES_BY_NAME, StageName
from o4o_operator.pipeline.transitions import (
    with_stage_failed,
    with_stage_started,
    with_stage_succeeded,
)

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
FACTS = Facts(server_address="198.51.100.7", commit="a" * 40, env_version="v1")


def spec_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "domain": "shop.example.com", "apps": ["forum-core"],
        "provider": {"lightsail": {"region": "ap-northeast-2"}},
        "ssh": {"privateKeySecretRef": {"name": "k", "key": "ssh-privatekey"}},
        "source": {"repository": "https://example.com/o4o.git", "revision": "main"},
        "tls": {"email": "ops@example.com"},
    }
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = body
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return body


def run(body: dict[str, Any], status: DeploymentInstanceStatus, facts: Facts = FACTS,
        annotations: dict[str, str] | None = None, now: datetime.datetime = NOW) -> Any:
    spec = DeploymentInstanceSpec.model_validate(body)
    return decide(spec, spec.to_body(), status, facts, annotations or {}, now)


def completed(body: dict[str, Any], facts: Facts = FACTS, upto: int = len(STAGES)) -> DeploymentInstanceStatus:
    spec = DeploymentInstanceSpec.model_validate(body)
    hashes = current_inputs(spec.to_body(), facts)
    status = DeploymentInstanceStatus()
    for stage in STAGES[:upto]:
        status = with_stage_started(status, stage, hashes[stage.name.value], 1, NOW)
        status = with_stage_succeeded(status, stage, "done", NOW)
    return status.model_copy(update={"last_check_time": format_time(NOW)})


def test_fresh_instance_starts_with_provision() -> None:
    decision = run(spec_body(), DeploymentInstanceStatus())
    assert isinstance(decision, RunStage)
    assert decision.stage.name is StageName.PROVISION


@pytest.mark.parametrize("done", range(len(STAGES)))
def test_next_stage_follows_the_table_order(done: int) -> None:
    decision = run(spec_body(), completed(spec_body(), upto=done))
    assert isinstance(decision, RunStage)
    assert decision.stage is STAGES[done]


def test_all_done_and_checked_recently_settles_until_the_next_drift_check() -> None:
    decision = run(spec_body(), completed(spec_body()))
    assert decision == Settle(next_check_at=NOW + datetime.timedelta(minutes=10))


def test_drift_check_is_due_after_the_interval() -> None:
    later = NOW + datetime.timedelta(minutes=11)
    assert isinstance(run(spec_body(), completed(spec_body()), now=later), CheckDrift)


@pytest.mark.parametrize(("change", "reruns"), [
    ({"apps": ["forum-core", "signage"]}, StageName.APPS),
    ({"postInstall": [{"name": "seed", "command": ["pnpm", "run", "seed"]}]}, StageName.APPS),
    ({"source__revision": "v2"}, StageName.SOURCE),
    ({"tls__email": "new@example.com"}, StageName.TLS),
    ({"tls__server": "https://acme-staging-v02.api.letsencrypt.org/directory"}, StageName.TLS),
    ({"dns": {"provider": "lightsail", "zone": "example.com"}}, StageName.DNS),
])
def test_spec_change_reruns_from_the_right_stage(change: dict[str, Any], reruns: StageName) -> None:
    decision = run(spec_body(**change), completed(spec_body()))
    assert isinstance(decision, RunStage)
    assert decision.stage.name is reruns


@pytest.mark.parametrize(("change", "expected"), [
    ({"apps": ["forum-core", "signage"]}, {StageName.APPS}),
    ({"postInstall": [{"name": "seed", "request": {"path": "/api/v1/seed"}}]}, {StageName.APPS}),
    ({"tls__email": "new@example.com"}, {StageName.TLS}),
    ({"tls__server": "https://acme-staging-v02.api.letsencrypt.org/directory"}, {StageName.TLS}),
    ({"source__revision": "v2"}, {StageName.SOURCE, StageName.BUILD_SITE, StageName.BUILD_API,
                                  StageName.CONFIGURE, StageName.TLS, StageName.APPS}),
])
def test_exactly_the_dependent_stages_are_out_of_date(change: dict[str, Any], expected: set[StageName]) -> None:
    before = current_inputs(DeploymentInstanceSpec.model_validate(spec_body()).to_body(), FACTS)
    after = current_inputs(DeploymentInstanceSpec.model_validate(spec_body(**change)).to_body(), FACTS)
    assert {StageName(name) for name in before if before[name] != after[name]} == expected


def test_env_secret_change_reruns_configure_only() -> None:
    decision = run(spec_body(), completed(spec_body()), facts=Facts("198.51.100.7", "a" * 40, "v2"))
    assert isinstance(decision, RunStage)
    assert decision.stage.name is StageName.CONFIGURE


def test_a_replaced_server_reruns_every_stage_after_provision() -> None:
    moved = Facts("198.51.100.99", "a" * 40, "v1")
    before = current_inputs(DeploymentInstanceSpec.model_validate(spec_body()).to_body(), FACTS)
    after = current_inputs(DeploymentInstanceSpec.model_validate(spec_body()).to_body(), moved)
    assert {n for n in before if before[n] != after[n]} == {s.name.value for s in STAGES[1:]}


@pytest.mark.parametrize("annotations", [{"deploy.o4o.io/paused": "true"}, {}])
def test_pause_wins_over_everything(annotations: dict[str, str]) -> None:
    body = spec_body(paused=not annotations)
    assert isinstance(run(body, DeploymentInstanceStatus(), annotations=annotations), Pause)


def _failed(error: Any) -> DeploymentInstanceStatus:
    body = spec_body()
    status = completed(body, upto=2)
    stage = STAGES_BY_NAME[StageName.RUNTIME]
    hashes = current_inputs(DeploymentInstanceSpec.model_validate(body).to_body(), FACTS)
    status = with_stage_started(status, stage, hashes[stage.name.value], 1, NOW)
    return with_stage_failed(status, stage, error, "uid", NOW)


def test_transient_failure_waits_then_retries() -> None:
    status = _failed(TransientError("ConnectionLost", "sshd went away"))
    waiting = run(spec_body(), status)
    assert isinstance(waiting, WaitForRetry)
    assert waiting.until > NOW
    retry = run(spec_body(), status, now=waiting.until)
    assert isinstance(retry, RunStage) and retry.stage.name is StageName.RUNTIME


def test_permanent_failure_stalls_with_its_reason_until_inputs_change() -> None:
    status = _failed(PermanentError("UnknownApp", "spec.apps: no app named 'blog'"))
    stalled = run(spec_body(), status)
    stall = Stall(STAGES_BY_NAME[StageName.RUNTIME], "UnknownApp", "spec.apps: no app named 'blog'")
    assert stalled == dataclasses.replace(stall, next_check_at=NOW + datetime.timedelta(minutes=10))
    a_day_later = run(spec_body(), status, now=NOW + datetime.timedelta(days=1))
    assert isinstance(a_day_later, CheckDrift) and a_day_later.stall == stall  # checked, and still stalled


def test_a_stage_interrupted_mid_run_is_run_again_on_resume() -> None:
    body = spec_body()
    hashes = current_inputs(DeploymentInstanceSpec.model_validate(body).to_body(), FACTS)
    status = with_stage_started(DeploymentInstanceStatus(), STAGES[0], hashes["provision"], 1, NOW)
    decision = run(body, status)
    assert isinstance(decision, RunStage) and decision.stage is STAGES[0]


def test_attempts_count_up_across_retries_and_reset_on_new_inputs() -> None:
    status = _failed(TransientError("ConnectionLost", "x"))
    stage = STAGES_BY_NAME[StageName.RUNTIME]
    record = status.stage("runtime")
    assert record is not None and record.attempts == 1
    again = with_stage_started(status, stage, record.inputs_hash or "", 1, NOW)
    assert again.stage("runtime").attempts == 2  # type: ignore[union-attr]
    fresh = with_stage_started(status, stage, "other-inputs", 2, NOW)
    assert fresh.stage("runtime").attempts == 1  # type: ignore[union-attr]
    assert fresh.stage("runtime").state is StageState.RUNNING  # type: ignore[union-attr]


def test_a_stall_clears_when_a_referenced_secret_changes() -> None:
    status = _failed(PermanentError("SecretNotFound", "spec.ssh.privateKeySecretRef: Secret 'k' not found"))
    assert isinstance(run(spec_body(), status), Stall)
    fixed = Facts(FACTS.server_address, FACTS.commit, FACTS.env_version, secrets_version="now-present")
    decision = run(spec_body(), status, facts=fixed)
    assert isinstance(decision, RunStage) and decision.stage.name is StageName.RUNTIME
