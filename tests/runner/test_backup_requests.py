"""On-request backups in the worker: taken once per id, only while the instance is settled (never while it is
stalled or a stage is due). The backup itself is faked here (tests/host and tests/e2e run it for real)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from cloud_fakes import FakeCloud
from stage_fakes import (
    FakeKube,
    RecordingConnector,
    RecordingSession,
    instance_body,
    make_context,
    make_runtime,
    spec_body,
    static_resolver,
)

from o4o_operator.errors import PermanentError
from o4o_operator.models import (
    CertificateStatus,
    DeploymentInstanceSpec,
    DeploymentInstanceStatus,
    HostKeySource,
    ServerStatus,
    SourceStatus,
)
from o4o_operator.models_database import BackupRequestStatus
from o4o_operator.pipeline.backups import BACKUP_REQUEST_ANNOTATION
from o4o_operator.pipeline.decisions import current_inputs, format_time
from o4o_operator.pipeline.stages import STAGES, StageName
from o4o_operator.pipeline.transitions import with_stage_failed, with_stage_started, with_stage_succeeded
from o4o_operator.providers.ownership import ownership_tags, server_name
from o4o_operator.providers.protocols import ServerFacts
from o4o_operator.runner import backup_step
from o4o_operator.runner.generated_secret import generated_values
from o4o_operator.runner.worker import InstanceWorker

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
NAME = server_name("team", "shop")
FINGERPRINT = "SHA256:" + "A" * 43
BACKUP = {"target": {"s3": {"endpoint": "http://127.0.0.1:9", "bucket": "shop-backups",
                            "credentialsSecretRef": {"name": "shop-s3"}}}}
SPEC = spec_body(provider={"lightsail": {"region": "eu-west-1"}}, apps=["forum-core"], database={"backup": BACKUP},
                 ssh={"privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}})


async def _worker(*, stalled: bool, request: str) -> tuple[InstanceWorker, dict[str, Any]]:
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), static_resolver({}))
    runtime.cloud_factory = lambda region, settings, poll: FakeCloud(  # type: ignore[assignment]
        {NAME: ServerFacts(NAME, "running", ownership_tags("team", "shop", "uid-1"))})
    runtime.clock = lambda: START
    status = DeploymentInstanceStatus(
        server=ServerStatus(name=NAME, ip_address="198.51.100.20", host_key_fingerprint=FINGERPRINT,
                            host_key_fingerprints=(FINGERPRINT,), host_key_source=HostKeySource.PROVIDER),
        source=SourceStatus(repository=SPEC["source"]["repository"], revision="main", commit="c" * 40),
        certificate=CertificateStatus(not_after="2026-03-01T00:00:00Z"))
    driver = make_context(runtime, SPEC, status)
    await generated_values(driver.instance)
    facts = await driver.instance.observe_facts(status)
    hashes = current_inputs(DeploymentInstanceSpec.model_validate(SPEC).to_body(), facts)
    earlier = START - datetime.timedelta(minutes=1)
    for stage in STAGES:
        status = with_stage_started(status, stage, hashes[stage.name.value], 1, earlier,
                                    secrets_version=facts.secrets_version)
        if stalled and stage.name is StageName.APPS:
            status = with_stage_failed(status, stage, PermanentError("AppRefused", "no"), "uid-1", earlier)
        else:
            status = with_stage_succeeded(status, stage, "done", earlier)
    body = instance_body(SPEC, status.model_copy(update={"last_check_time": format_time(earlier)}).to_body())
    body["metadata"]["annotations"] = {BACKUP_REQUEST_ANNOTATION: request}
    return InstanceWorker(runtime, lambda: body, body.get("status")), body


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    async def run_requested(instance: Any, request_id: str) -> dict[str, Any]:
        calls.append(request_id)
        return {"database.backup_request": BackupRequestStatus(id=request_id, outcome="Succeeded",
                                                                time=format_time(START), backup_id="b")}

    monkeypatch.setattr(backup_step, "run_requested", run_requested)
    return calls


async def test_a_settled_instance_takes_a_requested_backup_once(taken: list[str]) -> None:
    worker, body = await _worker(stalled=False, request="nightly-1")
    for _ in range(4):
        await worker.step(body)
    assert taken == ["nightly-1"]
    assert worker.status.database.backup_request is not None
    assert worker.status.database.backup_request.id == "nightly-1"


async def test_a_stalled_instance_takes_no_requested_backup(taken: list[str]) -> None:
    worker, body = await _worker(stalled=True, request="nightly-1")
    for _ in range(3):
        await worker.step(body)
    assert taken == []
    assert worker.status.database.backup_request is None
