"""What idle and starting workers hold (bench p4_memory): no status model before a pass needs one, and no more
instances deciding at once than may run a stage at once, so that 1000 workers starting together do not all
hold their status and the Secrets they read at the same moment."""

from __future__ import annotations

import asyncio
from typing import Any

from stage_fakes import FakeKube, RecordingConnector, RecordingSession, instance_body, make_runtime, spec_body
from stage_fakes import static_resolver as resolver

from o4o_operator import kopf_watch_trim
from o4o_operator.kubeapi import SecretData
from o4o_operator.models import DeploymentInstanceStatus, ServerStatus
from o4o_operator.pipeline.transitions import status_from_body
from o4o_operator.runner.worker import InstanceWorker


def test_a_worker_on_an_instance_with_a_status_holds_only_its_packed_text_until_a_pass() -> None:
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), resolver({}))
    stored = DeploymentInstanceStatus(server=ServerStatus(name="shop-host.test", ip_address="198.51.100.5"),
                                      log_tail=["04:00:00 [provision] a line"]).to_body()
    worker = InstanceWorker(runtime, lambda: instance_body(spec_body(), stored), stored)
    assert worker._status is None
    assert worker.status.to_body() == status_from_body(stored).to_body()  # read back when a pass needs it


async def test_a_worker_goes_on_from_the_status_the_api_holds_not_kopfs_summary_of_it() -> None:
    kube = FakeKube()
    runtime = make_runtime(kube, RecordingConnector(RecordingSession({})), resolver({}))
    stored = DeploymentInstanceStatus(phase="Ready", log_tail=["04:00:00 [provision] a line"],
                                      server=ServerStatus(name="shop-host.test", ip_address="198.51.100.5")).to_body()
    kube.instances[("team", "shop")] = instance_body(spec_body(), stored)
    as_kopf_keeps = kopf_watch_trim.compacted({"type": None, "object": instance_body(spec_body(), stored)},
                                              summarize_status=True)["object"]
    assert as_kopf_keeps["status"] == {"phase": "Ready", "observedGeneration": 0}

    worker = await InstanceWorker.resumed(runtime, lambda: as_kopf_keeps)

    assert worker is not None
    assert worker.status.to_body() == status_from_body(stored).to_body()
    assert not await worker.write_status(worker.status)  # what the API holds: a restart writes nothing
    assert not worker.log.earlier_known  # its earlier log is read back from the ConfigMap


async def test_no_worker_for_an_instance_that_is_gone_or_is_another_by_that_name_now() -> None:
    kube = FakeKube()
    runtime = make_runtime(kube, RecordingConnector(RecordingSession({})), resolver({}))
    assert await InstanceWorker.resumed(runtime, lambda: instance_body(spec_body())) is None
    other = instance_body(spec_body())
    other["metadata"]["uid"] = "uid-of-a-later-shop"
    kube.instances[("team", "shop")] = other
    assert await InstanceWorker.resumed(runtime, lambda: instance_body(spec_body())) is None


class GatedKube(FakeKube):
    """Secrets are read only when the test lets them: how many readers are waiting at once is counted."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.inside = 0
        self.most_inside = 0

    async def read_secret(self, namespace: str, name: str, field: str) -> SecretData:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            await self.gate.wait()
            return await super().read_secret(namespace, name, field)
        finally:
            self.inside -= 1


async def test_no_more_instances_decide_at_once_than_may_run_a_stage() -> None:
    kube = GatedKube()
    runtime = make_runtime(kube, RecordingConnector(RecordingSession({})), resolver({}))
    runtime.decisions = asyncio.Semaphore(1)  # as build_runtime makes it for O4O_MAX_PIPELINES=1

    def body(name: str) -> dict[str, Any]:
        made = instance_body(spec_body())
        made["metadata"].update(name=name, uid=f"uid-{name}")
        return made

    bodies = [body(name) for name in ("first", "second", "third")]
    passes = [asyncio.create_task(InstanceWorker(runtime, lambda b=b: b, None).step(b)) for b in bodies]
    for _ in range(100):  # let every pass run up to where it waits
        await asyncio.sleep(0)
    assert kube.most_inside == 1
    for task in passes:
        task.cancel()
    await asyncio.gather(*passes, return_exceptions=True)
