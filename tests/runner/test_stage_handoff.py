"""A stage's end write starts the next stage (runner/handoff.py): one status write per stage, an announced stage
taken back when the next decision runs another or none, and the pipeline slot held between announced stages."""

from __future__ import annotations

from typing import Any

import pytest
from stage_fakes import RecordingConnector, RecordingSession, echo_api_steps, instance_body, make_runtime
from stage_fakes import static_resolver as resolver
from test_inventory_made import RESULTS, ConfigMapKube, spec_body

from o4o_operator.models import StageState
from o4o_operator.pipeline.stages import STAGES
from o4o_operator.runner.worker import InstanceWorker


@pytest.fixture(autouse=True)
def api_step_echoes_the_script(monkeypatch: pytest.MonkeyPatch) -> None:
    echo_api_steps(monkeypatch)


def _worker() -> tuple[ConfigMapKube, InstanceWorker, dict[str, Any]]:
    kube = ConfigMapKube()
    runtime = make_runtime(kube, RecordingConnector(RecordingSession(RESULTS)),
                           resolver({"shop-host.test": ["198.51.100.5"], "shop.example.com": ["198.51.100.5"]}))
    body = instance_body(spec_body())
    return kube, InstanceWorker(runtime, lambda: body, body.get("status")), body


def _state(worker: InstanceWorker, name: str) -> StageState | None:
    record = worker.status.stage(name)
    return record.state if record else None


async def test_the_end_write_of_a_stage_starts_the_next_and_its_pass_writes_no_start_of_its_own() -> None:
    kube, worker, body = _worker()
    first, second, third = (stage.name.value for stage in STAGES[:3])

    await worker.step(body)
    assert len(kube.status_patches) == 2  # the first stage's start, then its end with the second's start
    assert _state(worker, first) is StageState.SUCCEEDED and _state(worker, second) is StageState.RUNNING
    assert kube.status_patches[-1]["stages"][1]["state"] == "Running"

    await worker.step(body)
    assert len(kube.status_patches) == 3  # the second stage's pass wrote only its end (and the third's start)
    assert _state(worker, second) is StageState.SUCCEEDED and _state(worker, third) is StageState.RUNNING
    assert worker.status.stage(second).attempts == 1  # type: ignore[union-attr]  # not counted twice


async def test_an_announced_stage_is_taken_back_when_the_next_pass_runs_none() -> None:
    kube, worker, body = _worker()
    second = STAGES[1].name.value
    await worker.step(body)
    assert _state(worker, second) is StageState.RUNNING and worker.handoff.holding

    body["spec"]["paused"] = True  # between the two passes: the next decision pauses
    await worker.step(body)

    assert _state(worker, second) is not StageState.RUNNING
    written = {stage["name"]: stage for stage in kube.status_patches[-1].get("stages", [])}
    assert written.get(second, {}).get("state") != "Running", kube.status_patches[-1]
    assert not worker.handoff.holding  # a paused instance gives its pipeline slot back


async def test_the_slot_is_held_between_announced_stages_and_given_back_when_none_follows() -> None:
    _, worker, body = _worker()
    slots = worker.runtime.pipelines  # one slot (stage_fakes.make_runtime)
    await worker.step(body)
    assert slots.locked()  # another instance cannot start while this one's next stage is announced

    for _ in range(3 * len(STAGES)):
        await worker.step(body)
        if all(_state(worker, stage.name.value) is StageState.SUCCEEDED for stage in STAGES):
            break
    await worker.step(body)  # settled: nothing to run
    assert not slots.locked() and not worker.handoff.holding


class _SavedLogKube(ConfigMapKube):
    """Holds the log ConfigMap the worker saves, as the apiserver would."""

    def __init__(self, saved: str = "") -> None:
        super().__init__()
        self.saved = saved

    async def apply_configmap(self, namespace: str, name: str, data: Any, *args: Any, **kwargs: Any) -> bool:
        self.saved = data["log"]
        return True

    async def read_owned_configmap(self, *args: Any, **kwargs: Any) -> dict[str, str] | None:
        return {"log": self.saved} if self.saved else None


async def test_an_idle_worker_keeps_only_the_written_status_text_and_no_copy_of_its_saved_log() -> None:
    kube = _SavedLogKube()
    runtime = make_runtime(kube, RecordingConnector(RecordingSession(RESULTS)),
                           resolver({"shop-host.test": ["198.51.100.5"], "shop.example.com": ["198.51.100.5"]}))
    body = instance_body(spec_body())
    worker = InstanceWorker(runtime, lambda: body, body.get("status"))
    await worker.step(body)
    written = worker.status.to_body()
    saved = kube.saved
    assert saved and worker.log.full_text == saved

    worker.idle()
    assert worker._status is None and worker.log.full_text == ""
    assert worker.status.to_body() == written  # read back from the written text, exactly

    await worker.step(body)  # the next stage's save reads the saved log back first: nothing is lost
    assert kube.saved.startswith(saved) and len(kube.saved) > len(saved)


async def test_a_worker_on_an_instance_with_a_status_keeps_the_log_saved_before_it_started() -> None:
    """After an operator restart, the first save must not replace the ConfigMap's log with the new lines only."""
    kube = _SavedLogKube("09:00:00 [provision] from before the restart\n")
    runtime = make_runtime(kube, RecordingConnector(RecordingSession(RESULTS)),
                           resolver({"shop-host.test": ["198.51.100.5"], "shop.example.com": ["198.51.100.5"]}))
    body = instance_body(spec_body())
    first = InstanceWorker(runtime, lambda: body, body.get("status"))
    await first.step(body)  # provision, then a status exists
    first.handoff.release()  # the first worker is gone (its run() gives its slot back)
    body["status"] = first.status.to_body()
    kube.saved = "09:00:00 [provision] from before the restart\n"

    restarted = InstanceWorker(runtime, lambda: body, body.get("status"))
    await restarted.step(body)
    assert kube.saved.startswith("09:00:00 [provision] from before the restart\n")
    assert kube.saved.count("\n") > 1
