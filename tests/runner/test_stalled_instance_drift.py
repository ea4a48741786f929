"""A stalled instance is still drift-checked: the worker reports what it finds, keeps the stall, repairs
nothing while stalled, and repairs first once the stall clears. Cloud and host are fakes."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

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
    ConditionStatus,
    DeploymentInstanceSpec,
    DeploymentInstanceStatus,
    HostKeySource,
    ServerStatus,
    SourceStatus,
    StageState,
)
from o4o_operator.pipeline.decisions import current_inputs, format_time
from o4o_operator.pipeline.stages import STAGES, StageName
from o4o_operator.pipeline.transitions import with_stage_failed, with_stage_started, with_stage_succeeded
from o4o_operator.providers.ownership import ownership_tags, server_name
from o4o_operator.providers.protocols import ServerFacts
from o4o_operator.runner.generated_secret import generated_values
from o4o_operator.runner.worker import InstanceWorker

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
NAME = server_name("team", "shop")
FINGERPRINT = "SHA256:" + "A" * 43
SPEC = spec_body(provider={"lightsail": {"region": "eu-west-1"}}, apps=["forum-core"],
                 ssh={"privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}})
REFUSED = "forum-core: No manifest found"


class EventRecordingKube(FakeKube):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str]] = []

    async def post_event(self, body: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        self.events.append((reason, message))


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime.datetime:
        return self.now


async def _stalled_worker(cloud: FakeCloud, clock: Clock, last_check: datetime.datetime) -> tuple[Any, Any]:
    """A worker for an instance that got everything up to apps done, then stalled on AppRefused."""
    kube = EventRecordingKube()
    runtime = make_runtime(kube, RecordingConnector(RecordingSession({})), static_resolver({}))
    runtime.cloud_factory = lambda region, settings, poll: cloud
    runtime.clock = clock
    status = DeploymentInstanceStatus(
        server=ServerStatus(name=NAME, ip_address="198.51.100.20", host_key_fingerprint=FINGERPRINT,
                            host_key_fingerprints=(FINGERPRINT,), host_key_source=HostKeySource.PROVIDER),
        source=SourceStatus(repository=SPEC["source"]["repository"], revision="main", commit="c" * 40),
        certificate=CertificateStatus(not_after="2026-03-01T00:00:00Z"))
    driver = make_context(runtime, SPEC, status)
    await generated_values(driver.instance)  # as the worker does before it observes: <name>-database exists
    facts = await driver.instance.observe_facts(status)
    hashes = current_inputs(DeploymentInstanceSpec.model_validate(SPEC).to_body(), facts)
    earlier = START - datetime.timedelta(hours=1)
    for stage in STAGES:
        status = with_stage_started(status, stage, hashes[stage.name.value], 1, earlier,
                                    secrets_version=facts.secrets_version)
        if stage.name is StageName.APPS:
            status = with_stage_failed(status, stage, PermanentError("AppRefused", REFUSED), "uid-1", earlier)
        else:
            status = with_stage_succeeded(status, stage, "done", earlier)
    body = instance_body(SPEC, status.model_copy(update={"last_check_time": format_time(last_check)}).to_body())
    worker = InstanceWorker(runtime, lambda: body, body.get("status"))
    return worker, body


def _conditions(worker: InstanceWorker) -> dict[str, tuple[ConditionStatus, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in worker.status.conditions}


async def test_a_stalled_instance_whose_server_is_stopped_reports_it_within_one_drift_period() -> None:
    cloud = FakeCloud({NAME: ServerFacts(NAME, "stopped", ownership_tags("team", "shop", "uid-1"))})
    clock = Clock()
    interval = datetime.timedelta(seconds=600)
    worker, body = await _stalled_worker(cloud, clock, last_check=START - datetime.timedelta(seconds=30))
    apps_before = worker.status.stage("apps")

    waits = []
    deadline = START + interval
    while worker.status.last_check_time != format_time(clock.now) or not worker.status.drift_findings:
        assert clock.now <= deadline, "no drift check within one drift period of the last"
        wait = await worker.step(body)
        if wait is not None:
            waits.append(wait)
            clock.now += datetime.timedelta(seconds=wait)

    conditions = _conditions(worker)
    assert conditions["Stalled"][:2] == (ConditionStatus.TRUE, "AppRefused")
    assert conditions["Ready"][:2] == (ConditionStatus.FALSE, "AppRefused")
    assert f"server {NAME} is stopped" in conditions["Ready"][2]
    assert conditions["ServerReady"][:2] == (ConditionStatus.FALSE, "ServerNotRunning")
    assert worker.status.stage("apps") == apps_before  # the stalled stage was not run again
    assert worker.status.stage("provision").state is StageState.SUCCEEDED  # type: ignore[union-attr]
    assert [event for event in worker.runtime.kube.events if event[0] == "DriftFound"]

    # Still stalled, the next passes repair nothing: no stage starts, the cloud is only looked at.
    for _ in range(3):
        wait = await worker.step(body)
        assert wait is not None
        clock.now += datetime.timedelta(seconds=wait)
    assert cloud.calls == []
    assert not [event for event in worker.runtime.kube.events if event[0] == "StageStarted"]
    assert _conditions(worker)["Stalled"][:2] == (ConditionStatus.TRUE, "AppRefused")


async def test_a_stalled_instance_whose_server_runs_reports_nothing_and_stays_stalled() -> None:
    cloud = FakeCloud({NAME: ServerFacts(NAME, "running", ownership_tags("team", "shop", "uid-1"))})
    clock = Clock()
    worker, body = await _stalled_worker(cloud, clock, last_check=START - datetime.timedelta(hours=1))

    assert await worker.step(body) is None  # the drift check, then at once the next decision
    wait = await worker.step(body)

    assert worker.status.last_check_time == format_time(START)
    assert worker.status.drift_findings == ()
    assert wait is not None and wait <= 60
    conditions = _conditions(worker)
    assert conditions["Stalled"] == (ConditionStatus.TRUE, "AppRefused", f"Install the apps: {REFUSED}")
    assert conditions["Ready"][2] == f"Install the apps: {REFUSED}"
    assert conditions["ServerReady"][0] is ConditionStatus.TRUE
