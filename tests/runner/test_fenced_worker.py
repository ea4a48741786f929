"""A host fence refusal stops the worker: it is not a stage failure, and no status says otherwise.

The session fakes what :meth:`SshSession.run` does when the server has seen a newer epoch: it raises
:class:`Deposed` (a ``BaseException``), which must pass through the worker untouched.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from stage_fakes import FakeKube, RecordingConnector, RecordingSession, instance_body, make_runtime, spec_body
from stage_fakes import static_resolver as resolver_of

from o4o_operator.fencing import Deposed
from o4o_operator.providers.protocols import CommandResult, LogSink
from o4o_operator.runner.worker import InstanceWorker

REFUSAL = "Stopped: the server refused epoch 3: it has seen epoch 4 (a newer leader)"


class FencedSession(RecordingSession):
    async def run(self, script: str, *, timeout: float, log: LogSink,  # noqa: ASYNC109 - the protocol's
                  env: Mapping[str, str] | None = None,
                  public_env: Mapping[str, str] | None = None) -> CommandResult:
        self.scripts.append(script)
        raise Deposed(REFUSAL)


async def test_a_refused_host_script_stops_the_worker_without_a_failed_stage_or_a_stall() -> None:
    kube = FakeKube()
    session = FencedSession({})
    resolver = resolver_of({"shop-host.test": ["198.51.100.1"], "shop.example.com": ["198.51.100.1"]})
    runtime = make_runtime(kube, RecordingConnector(session), resolver)
    body = instance_body(spec_body())
    worker = InstanceWorker(runtime, lambda: body, body.get("status"))
    with pytest.raises(Deposed, match="refused epoch 3"):
        for _ in range(10):  # the first stages need no host; the first host script is refused
            await worker.step(body)
    assert session.scripts, "no host script was tried"
    patches_text = repr(kube.status_patches)
    assert "Failed" not in patches_text and "refused" not in patches_text
    for patch in kube.status_patches:
        for condition in patch.get("conditions", []):
            assert not (condition["type"] == "Stalled" and condition["status"] == "True"), condition
