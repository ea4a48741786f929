"""Scheduled backups in the worker, on a fake clock: the next due time is recorded, the backup is taken when it
comes (once), windows missed while the operator was away take one catch-up backup, the wait never outlasts the
next window, and a stalled instance takes none. The backup itself is faked (tests/e2e runs it for real)."""

from __future__ import annotations

import dataclasses
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

from o4o_operator.errors import PermanentError, TransientError
from o4o_operator.models import (
    CertificateStatus,
    DeploymentInstanceSpec,
    DeploymentInstanceStatus,
    HostKeySource,
    ServerStatus,
    SourceStatus,
)
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
BACKUP = {"schedule": "0 3 * * *", "target": {"s3": {"endpoint": "http://127.0.0.1:9", "bucket": "shop-backups",
                                                     "credentialsSecretRef": {"name": "shop-s3"}}}}
SPEC = spec_body(provider={"lightsail": {"region": "eu-west-1"}}, apps=["forum-core"], database={"backup": BACKUP},
                 ssh={"privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}})


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime.datetime:
        return self.now


async def _worker(clock: Clock, *, stalled: bool = False) -> tuple[InstanceWorker, dict[str, Any]]:
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), static_resolver({}))
    runtime.settings = dataclasses.replace(runtime.settings, drift_interval_seconds=86400.0)  # longer than a window
    runtime.cloud_factory = lambda region, settings, poll: FakeCloud(  # type: ignore[assignment]
        {NAME: ServerFacts(NAME, "running", ownership_tags("team", "shop", "uid-1"))})
    runtime.clock = clock
    status = DeploymentInstanceStatus(
        server=ServerStatus(name=NAME, ip_address="198.51.100.20", host_key_fingerprint=FINGERPRINT,
                            host_key_fingerprints=(FINGERPRINT,), host_key_source=HostKeySource.PROVIDER),
        source=SourceStatus(repository=SPEC["source"]["repository"], revision="main", commit="c" * 40),
        certificate=CertificateStatus(not_after="2027-03-01T00:00:00Z"))
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
    return InstanceWorker(runtime, lambda: body, body.get("status")), body


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, datetime.datetime]]:
    calls: list[tuple[str, datetime.datetime]] = []

    async def take_now(instance: Any, purpose: str) -> tuple[str, dict[str, Any]]:
        calls.append((purpose, instance.runtime.clock()))
        if purpose == "fail":
            raise TransientError("BackupFailed", "upload refused")
        return f"backup-{len(calls)}", {}

    monkeypatch.setattr(backup_step, "take_now", take_now)
    return calls


async def _steps(worker: InstanceWorker, body: dict[str, Any], count: int = 3) -> float | None:
    delay = None
    for _ in range(count):
        delay = await worker.step(body)
    return delay


async def test_the_schedule_fires_once_per_window(taken: list[tuple[str, datetime.datetime]]) -> None:
    clock = Clock()
    worker, body = await _worker(clock)
    delay = await _steps(worker, body)
    assert taken == []
    assert worker.status.database.next_scheduled_backup == "2026-01-01T03:00:00Z"
    assert delay == 3 * 3600  # the wait ends at the window, though the drift check is a day away

    clock.now = datetime.datetime(2026, 1, 1, 3, 0, 20, tzinfo=datetime.UTC)
    await _steps(worker, body)
    assert taken == [("schedule", clock.now)]
    last = worker.status.database.last_scheduled_backup
    assert last is not None and (last.outcome, last.backup_id, last.time) == ("Succeeded", "backup-1",
                                                                               "2026-01-01T03:00:20Z")
    assert worker.status.database.next_scheduled_backup == "2026-01-02T03:00:00Z"


async def test_missed_windows_take_one_catch_up_backup(taken: list[tuple[str, datetime.datetime]]) -> None:
    clock = Clock()
    worker, body = await _worker(clock)
    await _steps(worker, body, 1)
    clock.now = datetime.datetime(2026, 1, 5, 12, 0, tzinfo=datetime.UTC)  # four windows passed meanwhile
    await _steps(worker, body, 5)
    assert len(taken) == 1
    assert worker.status.database.next_scheduled_backup == "2026-01-06T03:00:00Z"


async def test_a_failed_scheduled_backup_is_recorded_and_waits_for_the_next_window(
        taken: list[tuple[str, datetime.datetime]], monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    worker, body = await _worker(clock)
    await _steps(worker, body, 1)
    original = backup_step.take_now

    async def failing(instance: Any, purpose: str) -> tuple[str, dict[str, Any]]:
        return await original(instance, "fail")

    monkeypatch.setattr(backup_step, "take_now", failing)
    clock.now = datetime.datetime(2026, 1, 1, 3, 1, tzinfo=datetime.UTC)
    await _steps(worker, body, 4)
    assert len(taken) == 1
    last = worker.status.database.last_scheduled_backup
    assert last is not None and last.outcome == "Failed" and "BackupFailed: upload refused" in last.message
    assert worker.status.database.next_scheduled_backup == "2026-01-02T03:00:00Z"


async def test_a_stalled_instance_takes_no_scheduled_backup(taken: list[tuple[str, datetime.datetime]]) -> None:
    clock = Clock()
    worker, body = await _worker(clock, stalled=True)
    clock.now = datetime.datetime(2026, 1, 3, tzinfo=datetime.UTC)
    await _steps(worker, body)
    assert taken == []
