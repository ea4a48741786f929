"""Handing one stage over to the next in a single status write, and the pipeline slot held across it.

Owns: the record of a stage announced as started in the same status write that finished the stage before it
(so a lifecycle costs one write per stage plus its checkpoints, not two), taking that record back when the
next decision runs a different stage or none, and the concurrency slot (``Runtime.pipelines``) an instance
holds from its first stage until its pipeline stops running stages, so that a stage announced as running is
never queued behind other instances' pipelines.
Must not: decide anything (the worker asks :func:`o4o_operator.pipeline.decisions.decide`, and this module only
compares that decision with what was announced), write to the API, or import Kopf.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

from o4o_operator import metrics
from o4o_operator.models import DeploymentInstanceStatus
from o4o_operator.pipeline.decisions import Decision, RunStage
from o4o_operator.pipeline.stages import StageName
from o4o_operator.pipeline.transitions import with_changes


@dataclasses.dataclass(frozen=True)
class Announced:
    """A stage written as started before its own pass began, and the status as it would be without that."""

    stage: StageName
    inputs_hash: str
    unstarted: DeploymentInstanceStatus


class Handoff:
    """One instance's announced stage (if any) and whether it holds a pipeline slot."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self._announced: Announced | None = None
        self.holding = False

    def announce(self, decision: RunStage, unstarted: DeploymentInstanceStatus) -> None:
        """``decision``'s stage is about to be written as started; ``unstarted`` is the status without that."""
        self._announced = Announced(decision.stage.name, decision.inputs_hash, unstarted)

    def basis(self, status: DeploymentInstanceStatus) -> DeploymentInstanceStatus:
        """What to decide on: the status as it was before a stage was announced (deciding on an announced
        stage would count its attempt twice)."""
        return self._announced.unstarted if self._announced else status

    def follow(self, changes: Mapping[str, Any]) -> None:
        """Changes taken after the announcement (a checkpoint's) apply to the unannounced view too."""
        if self._announced is not None:
            self._announced = dataclasses.replace(self._announced,
                                                  unstarted=with_changes(self._announced.unstarted, changes))

    def take(self, decision: Decision | None) -> DeploymentInstanceStatus | None:
        """Forget the announcement. None when ``decision`` runs the announced stage on the same inputs (it is
        started already); otherwise the status to go on from, without the announced start (the next write
        says so)."""
        announced, self._announced = self._announced, None
        if announced is None:
            return None
        if isinstance(decision, RunStage) and (decision.stage.name, decision.inputs_hash) == (
                announced.stage, announced.inputs_hash):
            return None
        return announced.unstarted

    @property
    def pending(self) -> bool:
        return self._announced is not None

    async def hold(self) -> None:
        if not self.holding:
            await self._slots.acquire()
            self.holding = True
            metrics.PIPELINES_IN_FLIGHT.inc()

    def release(self) -> None:
        if self.holding:
            self.holding = False
            self._slots.release()
            metrics.PIPELINES_IN_FLIGHT.dec()
