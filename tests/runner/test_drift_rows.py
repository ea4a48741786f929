"""Drift checks, one case per row: given what the cloud, the host and the status show, expect these
findings; and the worker turns exactly those stages back to Failed (the pipeline then repairs them)."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
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

from o4o_operator import errors
from o4o_operator.models import (
    CertificateStatus,
    DeploymentInstanceSpec,
    DeploymentInstanceStatus,
    HostKeySource,
    ServerStatus,
    SourceStatus,
    StageState,
)
from o4o_operator.pipeline.decisions import current_inputs, format_time
from o4o_operator.pipeline.stages import STAGES, StageName
from o4o_operator.pipeline.transitions import with_stage_started, with_stage_succeeded
from o4o_operator.providers.ownership import ownership_tags, server_name
from o4o_operator.providers.protocols import CommandResult, LogSink, ServerFacts
from o4o_operator.runner.drift import check_drift
from o4o_operator.runner.generated_secret import generated_values
from o4o_operator.runner.worker import InstanceWorker

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
NAME = server_name("team", "shop")
FINGERPRINT = "SHA256:" + "A" * 43


class UnhealthySession(RecordingSession):
    async def run(self, script: str, *, timeout: float, log: LogSink,  # noqa: ASYNC109 - the protocol's
                  env: Mapping[str, str] | None = None,
                  public_env: Mapping[str, str] | None = None) -> CommandResult:
        raise errors.TransientError("HealthCheckFailed", "curl: (7) Failed to connect")


@dataclasses.dataclass(frozen=True)
class Row:
    case: str
    server: ServerFacts | None
    healthy: bool
    not_after: str | None
    found: list[tuple[StageName, str]]


def _server(state: str = "running", uid: str = "uid-1") -> ServerFacts:
    return ServerFacts(NAME, state, ownership_tags("team", "shop", uid))


ROWS = [
    Row("all well", _server(), True, "2026-03-01T00:00:00Z", []),
    Row("server gone: the host checks after it are skipped", None, False, "2026-03-01T00:00:00Z",
        [(StageName.PROVISION, "ServerNotRunning")]),
    Row("server stopped", _server("stopped"), True, None, [(StageName.PROVISION, "ServerNotRunning")]),
    Row("server re-tagged by another instance", _server(uid="uid-2"), True, None,
        [(StageName.PROVISION, "ServerNotRunning")]),
    Row("site unhealthy", _server(), False, None, [(StageName.CONFIGURE, "HealthCheckFailed")]),
    Row("certificate expiring, and checked even when the server is gone", None, True, "2026-01-05T00:00:00Z",
        [(StageName.PROVISION, "ServerNotRunning"), (StageName.TLS, "CertificateExpiring")]),
]


def _ready(spec: Mapping[str, Any], not_after: str | None) -> DeploymentInstanceStatus:
    return DeploymentInstanceStatus(
        server=ServerStatus(name=NAME, ip_address="198.51.100.20", host_key_fingerprint=FINGERPRINT,
                            host_key_fingerprints=(FINGERPRINT,), host_key_source=HostKeySource.PROVIDER),
        source=SourceStatus(repository=spec["source"]["repository"], revision="main", commit="c" * 40),
        certificate=CertificateStatus(not_after=not_after))


def _runtime(row: Row) -> Any:
    session = RecordingSession({}) if row.healthy else UnhealthySession({})
    runtime = make_runtime(FakeKube(), RecordingConnector(session), static_resolver({}))
    cloud = FakeCloud({NAME: row.server} if row.server else {})
    runtime.cloud_factory = lambda region, settings, poll: cloud
    runtime.clock = lambda: NOW
    return runtime


SPEC = spec_body(provider={"lightsail": {"region": "eu-west-1"}},
                 ssh={"privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}})


@pytest.mark.parametrize("row", ROWS, ids=[row.case for row in ROWS])
async def test_drift_finds_what_was_lost(row: Row) -> None:
    driver = make_context(_runtime(row), SPEC, _ready(SPEC, row.not_after))

    findings = await check_drift(driver.instance, NOW)

    assert [(finding.stage.name, finding.reason) for finding in findings] == row.found


@pytest.mark.parametrize("row", ROWS, ids=[row.case for row in ROWS])
async def test_the_worker_invalidates_exactly_the_stages_found_lost(row: Row) -> None:
    runtime = _runtime(row)
    body = instance_body(SPEC)
    status = _ready(SPEC, row.not_after)
    driver = make_context(runtime, SPEC, status)
    await generated_values(driver.instance)  # as the worker does before it observes: <name>-database exists
    hashes = current_inputs(DeploymentInstanceSpec.model_validate(SPEC).to_body(),
                            await driver.instance.observe_facts(status))
    earlier = NOW - datetime.timedelta(hours=1)
    for stage in STAGES:
        status = with_stage_succeeded(with_stage_started(status, stage, hashes[stage.name.value], 1, earlier),
                                      stage, "done", earlier)
    body["status"] = status.model_copy(update={"last_check_time": format_time(earlier)}).to_body()
    worker = InstanceWorker(runtime, lambda: body, body.get("status"))

    assert await worker.step(body) is None  # a drift check, then at once the next decision

    failed = {record.name: record.reason for record in worker.status.stages if record.state is StageState.FAILED}
    assert failed == {name.value: reason for name, reason in row.found}
    assert worker.status.last_check_time == format_time(NOW)
    assert len(runtime.kube.status_patches) == 1  # one write for the whole check
