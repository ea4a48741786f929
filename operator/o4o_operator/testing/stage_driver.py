"""Run one stage action outside the worker, applying its steps as the worker does (tests only).

Owns: :class:`StageDriver`, which holds the status the way :class:`~o4o_operator.runner.worker.InstanceWorker`
does (changes kept, checkpoints recorded, what the instance learnt taken in), so that tests can
give facts and a spec and read back the decision, the commands and the status changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from o4o_operator.models import DeploymentInstanceSpec, DeploymentInstanceStatus
from o4o_operator.pipeline.stages import STAGES_BY_NAME, StageName
from o4o_operator.pipeline.transitions import with_changes
from o4o_operator.redaction import Redactor
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.log import InstanceLog
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.stage_steps import Checkpoint, Outcome
from o4o_operator.runner.worker import stage_steps


class StageDriver:
    """Runs stages the way the worker applies them: it alone holds the status; checkpoints are recorded."""

    def __init__(self, runtime: Runtime, body: Mapping[str, Any], spec: DeploymentInstanceSpec,
                 status: DeploymentInstanceStatus | None = None) -> None:
        self._status = status or DeploymentInstanceStatus()
        self.checkpoints: list[DeploymentInstanceStatus] = []
        self.instance = InstanceContext(runtime, body, spec, lambda: self._status, InstanceLog(Redactor()),
                                        self._checkpoint)

    async def _checkpoint(self, changes: Mapping[str, Any]) -> None:
        """As the worker writes a checkpoint made outside a stage's steps: at once, recorded."""
        self._status = with_changes(self.status, changes)
        self.checkpoints.append(self._status)

    @property
    def status(self) -> DeploymentInstanceStatus:
        """The status with everything learnt so far (e.g. a host key trusted on first use)."""
        self._status = with_changes(self._status, self.instance.take_learned())
        return self._status

    def host_key_pins(self) -> tuple[str, ...]:
        return self.instance.host_key_pins()

    async def run(self, name: StageName) -> str:
        """Run the stage; return its message. A failure propagates, with what was kept in :attr:`status`."""
        steps = stage_steps(STAGES_BY_NAME[name], self.instance)
        try:
            async for step in steps:
                self._status = with_changes(self.status, step.changes)
                if isinstance(step, Checkpoint):
                    self.checkpoints.append(self._status)
                if isinstance(step, Outcome):
                    return step.message
        finally:
            await steps.aclose()
        raise AssertionError(f"{name.value} yielded no outcome")
