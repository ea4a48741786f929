"""The per-instance worker: decide, act, record, and wait, for as long as the instance lives.

Owns: the instance's status (it alone holds it, applies the changes stages hand
back and writes it), the one call to :func:`o4o_operator.pipeline.decisions.decide`,
the loop that runs a stage's steps (one status write per stage: its end, which also
starts the next one (see :mod:`~o4o_operator.runner.handoff`), plus a checkpoint a
stage asks for; log lines ride along), applying what drift
checks found, posting Events, keeping the log ConfigMap (never one of that name
it did not make), and sleeping until woken by a change, a retry time or the next
check. Must not make decisions of its own, and must not import Kopf: stop and
wake-up arrive as plain callables and an ``asyncio.Event``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import pydantic

from o4o_operator import metrics
from o4o_operator.errors import StageError, TransientError
from o4o_operator.kubeapi import ApiError
from o4o_operator.models import DeploymentInstanceSpec, DeploymentInstanceStatus, DriftFinding, merge_patch
from o4o_operator.pipeline.conditions import Summary, Verdict
from o4o_operator.pipeline.decisions import (
    CheckDrift,
    Decision,
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
from o4o_operator.pipeline.stages import STAGES, Stage, StageKind
from o4o_operator.pipeline.transitions import (
    status_from_body,
    with_changes,
    with_drift_findings,
    with_log_lines,
    with_stage_failed,
    with_stage_invalidated,
    with_stage_started,
    with_stage_succeeded,
    with_summary,
    with_verdict,
)
from o4o_operator.redaction import Redactor
from o4o_operator.runner import scheduled_backup, settled_backups
from o4o_operator.runner.cloud_stages import CLOUD_STAGES
from o4o_operator.runner.drift import check_drift
from o4o_operator.runner.generated_secret import generated_values
from o4o_operator.runner.handoff import Handoff
from o4o_operator.runner.host_stages import run_host_stage
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.log import InstanceLog
from o4o_operator.runner.log_configmap import LogKeeping, save_log
from o4o_operator.runner.made_items import (
    made_by,
    with_confirmed,
    with_intents,
    with_worker_objects,
)
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.secret_holds import keep_teardown_secrets
from o4o_operator.runner.stage_steps import Checkpoint, Keep, Outcome, StageStep
from o4o_operator.runner.written_status import WrittenStatus, pack

logger = logging.getLogger("o4o_operator.worker")


_RESULTS: dict[type, str] = {Stall: "stalled", Pause: "paused", WaitForRetry: "requeued", Settle: "success"}
"""``o4o_reconcile_total{result}`` for passes that run no stage; a stage counts success or error."""


def _invalid_spec_message(error: pydantic.ValidationError) -> str:
    first = error.errors()[0]
    field = "spec." + ".".join(str(part) for part in first["loc"])
    return f"{field}: {first['msg']}"


class InstanceWorker:
    def __init__(self, runtime: Runtime, body: Callable[[], Mapping[str, Any]],
                 stored: Mapping[str, Any] | None) -> None:
        """``body``: the instance as last seen (Kopf's copy, whose status is only a summary, see
        :mod:`o4o_operator.kopf_watch_trim`); ``stored``: the whole status the API holds as the worker starts
        (see :meth:`resumed`), None or empty for a new instance."""
        self.runtime = runtime
        self._body = body
        # What the API already holds, so that a first pass that changes nothing (a restart) writes nothing:
        # kept packed (compressed canonical JSON, see written_status; 1000 idle instances hold one each), and
        # nothing else until a pass needs the status (read back then, see ``status``).
        self._written: WrittenStatus | None = WrittenStatus.of(status_from_body(stored).to_body()) if stored \
            else None
        self._status: DeploymentInstanceStatus | None = None if stored else status_from_body(None)
        # An instance with a status may have a log in its ConfigMap from before this process: read back first.
        self.log = InstanceLog(Redactor(), max_bytes=runtime.settings.log_configmap_max_bytes,
                               earlier_known=not stored)
        self._last_events: set[str] = set()
        self._log_keeping = LogKeeping()
        self._secret_made = False
        """The operator-owned Secret is ours (read or made in this process): the inventory lists it Present."""
        self._log_saved = False
        """The log ConfigMap was made or written: the inventory lists it Present."""
        self.handoff = Handoff(runtime.pipelines)

    @classmethod
    async def resumed(cls, runtime: Runtime, body: Callable[[], Mapping[str, Any]]) -> InstanceWorker | None:
        """A worker that goes on from the status the API holds now, read once (a restart, a new leader, a new
        instance); None when the instance is gone (or its name is another instance's now)."""
        stored = await runtime.stored_instance(body()["metadata"])
        return None if stored is None else cls(runtime, body, stored.get("status"))

    @property
    def status(self) -> DeploymentInstanceStatus:
        """The status this worker holds: the one it last wrote, unless it has changes not yet written."""
        if self._status is None:
            assert self._written is not None, "only a written status is ever dropped"
            self._status = status_from_body(self._written.body())
        return self._status

    @status.setter
    def status(self, status: DeploymentInstanceStatus) -> None:
        self._status = status

    def idle(self) -> None:
        """Going to wait: keep only the written status (packed) when that is all the worker holds, and drop the
        full log once it is saved (both are read back on the next pass that needs them)."""
        if self._status is not None and self._written is not None \
                and self._written.is_packed(pack(self._status.to_body())):
            self._status = None
        self.log.forget_saved()

    # ---- writing -------------------------------------------------------------

    async def write_status(self, status: DeploymentInstanceStatus) -> bool:
        """Write the whole status if it changed (pending log lines ride along); say whether it did.

        Fields written before and empty now are sent as nulls, so the stored status loses them too.
        """
        status = with_log_lines(status, self.log.take_pending())
        self.status = status
        body = status.to_body()
        packed = pack(body)
        if self._written is not None and self._written.is_packed(packed):
            return False
        meta = self._body()["metadata"]
        before = self._written.body() if self._written is not None else None
        await self.runtime.kube.patch_status(meta["namespace"], meta["name"], merge_patch(before, body))
        self._written = WrittenStatus(packed)
        return True

    async def _event(self, reason: str, message: str, *, warning: bool = False) -> None:
        await self.runtime.kube.post_event(self._body(), reason, self.log.redactor(message), warning=warning)

    async def save_log(self) -> None:
        """Write the full log to the ConfigMap ``<name>-log`` (see :func:`~.log_configmap.save_log`)."""
        self._log_saved = await save_log(self.runtime.kube, self._body(), self.log, self._log_keeping) \
            or self._log_saved

    # ---- the loop --------------------------------------------------------------

    async def run(self, stopped: Callable[[], bool], wakeup: asyncio.Event) -> None:
        try:
            while not stopped():
                wakeup.clear()
                body = self._body()
                if body["metadata"].get("deletionTimestamp"):
                    return
                delay = await self.step(body)
                if delay is None or stopped():
                    continue
                self.idle()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, delay)):  # no task of its own, unlike wait_for
                        await wakeup.wait()
        finally:
            self.handoff.release()

    async def step(self, body: Mapping[str, Any]) -> float | None:
        """One decision and its action. Returns how long to wait, or None to go on at once."""
        now = self.runtime.clock()
        generation = int(body["metadata"].get("generation", 1))
        try:
            spec = DeploymentInstanceSpec.model_validate(body.get("spec") or {})
        except pydantic.ValidationError as error:
            self._take_announced(None)
            summary = Summary(Verdict.STALLED, "InvalidSpec", _invalid_spec_message(error))
            await self.write_status(with_verdict(self.status, summary, {}, generation, now))
            return self.runtime.settings.stall_recheck_seconds
        # A checkpoint outside a stage's steps (a backup bucket's intent, before CreateBucket) is written at once.
        instance = InstanceContext(self.runtime, body, spec, lambda: self.status, self.log,
                                   lambda changes: self._apply(Checkpoint(changes)))
        async with self.runtime.decisions:  # bounded: what a pass holds while it reads facts (see Runtime)
            async for checkpoint in keep_teardown_secrets(instance):
                await self._apply(checkpoint)
            decision, hashes, facts = await self._decide(instance, self.handoff.basis(self.status), now)
        started = self._take_announced(decision)
        if isinstance(decision, RunStage):
            await self.handoff.hold()
            try:
                await self._run_stage(instance, decision, hashes, generation, facts.secrets_version, started)
            finally:
                if not self.handoff.pending:  # the next stage was not announced: another instance may go
                    self.handoff.release()
            return None
        self.handoff.release()
        self.status, taken = await settled_backups.take(instance, decision, self.status, now)
        if taken is not None:
            await self.write_status(self.status)
            await self._event(taken.reason, taken.message, warning=taken.warning)
            return None
        if isinstance(decision, CheckDrift):
            await self._check_drift(instance, decision, generation, now)
            metrics.RECONCILES.labels(result="success").inc()
            return None
        metrics.RECONCILES.labels(result=_RESULTS.get(type(decision), "success")).inc()
        if await self.write_status(with_summary(self.status, decision, hashes, generation, now)):
            await self._announce(decision)  # a restart that finds nothing new says nothing new
        return self._wait_seconds(decision, now)

    def _wait_seconds(self, decision: Decision, now: datetime.datetime) -> float:
        scheduled = scheduled_backup.seconds_until_due(self.status, now) if isinstance(decision, Settle) else None
        return min(self._decision_wait_seconds(decision, now), scheduled if scheduled is not None else float("inf"))

    def _decision_wait_seconds(self, decision: Decision, now: datetime.datetime) -> float:
        settings = self.runtime.settings
        if isinstance(decision, WaitForRetry):
            return (decision.until - now).total_seconds()
        if isinstance(decision, Settle):
            return min((decision.next_check_at - now).total_seconds(), settings.drift_interval_seconds)
        if isinstance(decision, Stall):
            if decision.next_check_at is not None:  # a stalled instance is still drift-checked
                return min(settings.stall_recheck_seconds, (decision.next_check_at - now).total_seconds())
            return settings.stall_recheck_seconds
        return settings.drift_interval_seconds  # paused: only a change wakes it

    async def _announce(self, decision: Decision) -> None:
        """One Event per new verdict, not one per pass."""
        key = f"{type(decision).__name__}:{getattr(decision, 'reason', '')}"
        if key in self._last_events:
            return
        self._last_events = {key}
        if isinstance(decision, Stall):
            await self._event("Stalled", f"{decision.stage.title}: {decision.reason}: {decision.message}",
                              warning=True)
        elif isinstance(decision, Settle):
            await self._event("Ready", f"All {len(STAGES)} stages succeeded")
        elif isinstance(decision, Pause):
            await self._event("Paused", "Reconciliation paused")

    async def _decide(self, instance: InstanceContext, status: DeploymentInstanceStatus,
                      now: datetime.datetime) -> tuple[Decision, dict[str, str], Facts]:
        """Ask the pipeline (the only place that does) what ``status`` needs next, with today's facts."""
        # The operator-owned Secret first, so that its making is not itself a change of the facts (which
        # would run the database stage a second time). Failures are the database stage's to report.
        with contextlib.suppress(StageError, ApiError):
            await generated_values(instance)
            self._secret_made = True
        facts = await instance.observe_facts(status)
        spec_body = instance.spec.to_body()
        annotations = instance.body["metadata"].get("annotations") or {}
        interval = datetime.timedelta(seconds=self.runtime.settings.drift_interval_seconds)
        decision = decide(instance.spec, spec_body, status, facts, annotations, now, interval)
        return decision, current_inputs(spec_body, facts), facts

    def _take_announced(self, decision: Decision | None) -> bool:
        """Whether ``decision`` runs the stage the last write announced as started. If the write announced
        another stage (or none is to run now), the status goes on without that announcement."""
        announced = self.handoff.pending
        unstarted = self.handoff.take(decision)
        if unstarted is not None:
            self.status = unstarted.model_copy(update={"log_tail": self.status.log_tail})
        return announced and unstarted is None

    async def _apply(self, step: StageStep) -> None:
        """Take a step's status changes; a checkpoint is written at once (pending log lines ride along)."""
        self.status = with_changes(self.status, step.changes)
        self.handoff.follow(step.changes)
        if isinstance(step, Checkpoint):
            await self.write_status(self.status)

    async def _check_drift(self, instance: InstanceContext, decision: CheckDrift, generation: int,
                           now: datetime.datetime) -> None:
        """Run the checks the decision names. Settled, what they find lost turns back to Failed (and is repaired
        next); stalled, it is recorded and reported, and the pipeline repairs it once the stall clears."""
        findings = await check_drift(instance, now, decision.checks)
        status = with_changes(self.status, instance.take_learned())
        if decision.stall is None:
            for finding in findings:
                status = with_stage_invalidated(status, finding.stage, finding.reason, finding.message, now)
            status = with_drift_findings(status, ())
        else:
            reported = tuple(DriftFinding(stage=f.stage.name.value, reason=f.reason, message=f.message[:4096])
                             for f in findings)
            if reported and reported != status.drift_findings:
                await self._event("DriftFound", f"While stalled ({decision.stall.reason}), the drift check found: "
                                  + "; ".join(f.message for f in reported)
                                  + "; repaired once the stall is resolved", warning=True)
            status = with_drift_findings(status, reported)
        status = status.model_copy(update={"last_check_time": format_time(now)})
        following, hashes, _ = await self._decide(instance, status, now)
        await self.write_status(with_summary(status, following, hashes, generation, now))

    async def _run_stage(self, instance: InstanceContext, decision: RunStage, hashes: Mapping[str, str],
                         generation: int, secrets_version: str | None, announced: bool) -> None:
        """Run one stage. Its start is written unless the previous stage's last write ``announced`` it."""
        stage = decision.stage
        self.log.stage = stage.name.value
        if not announced:
            await self.write_status(self._started(instance, self.status, decision, hashes, generation,
                                                  secrets_version))
        await self._event("StageStarted", f"Started {stage.title.lower()}")
        clock = time.monotonic()
        try:
            message = await self._attempt(instance, stage)
        except StageError as error:
            metrics.RECONCILES.labels(result="error").inc()
            await self._finish_failed(instance, stage, error, generation)
            metrics.STAGE_DURATION.labels(stage=stage.name.value, outcome="failure").observe(
                time.monotonic() - clock)
            return
        metrics.STAGE_DURATION.labels(stage=stage.name.value, outcome="success").observe(time.monotonic() - clock)
        metrics.RECONCILES.labels(result="success").inc()
        self.log(message)
        done = self._with_made(instance, with_stage_succeeded(self.status, stage, message, self.runtime.clock()),
                               stage, succeeded=True)
        await self._finish(instance, done, generation)
        await self._event("StageSucceeded", message)

    def _started(self, instance: InstanceContext, status: DeploymentInstanceStatus, decision: RunStage,
                 hashes: Mapping[str, str], generation: int, secrets_version: str | None) -> DeploymentInstanceStatus:
        """``status`` with ``decision``'s stage running (what it makes listed as intents), summarised."""
        now = self.runtime.clock()
        started = self._with_made(instance, with_stage_started(
            status, decision.stage, decision.inputs_hash, generation, now, secrets_version=secrets_version),
            decision.stage)
        return with_summary(started, decision, hashes, generation, now)

    def _with_made(self, instance: InstanceContext, status: DeploymentInstanceStatus, stage: Stage, *,
                   succeeded: bool = False) -> DeploymentInstanceStatus:
        """``status`` with what the stage makes listed (intents as it starts or fails, confirmed once it
        succeeded), and the worker's Secret and ConfigMap: folded into the stage's own writes (see
        :mod:`o4o_operator.runner.made_items`)."""
        now = self.runtime.clock()
        try:
            made = made_by(instance, stage.name, status)
        except StageError:  # a spec the host context refuses: the stage itself fails naming the field
            made = ()
        items = with_confirmed(status.inventory, made, now) if succeeded else with_intents(status.inventory, made, now)
        items = with_worker_objects(items, instance.ref.name, now, secret_made=self._secret_made,
                                    log_saved=self._log_saved)
        return status.model_copy(update={"inventory": items})

    async def _attempt(self, instance: InstanceContext, stage: Stage) -> str:
        """Run the stage's steps, taking their changes; return its message. Whatever it learnt before failing
        (kept changes, a key trusted on first use) stays in the status."""
        try:
            async with asyncio.timeout(stage.timeout_seconds):
                steps = stage_steps(stage, instance)
                try:
                    async for step in steps:
                        await self._apply(Keep(instance.take_learned()))
                        await self._apply(step)
                        if isinstance(step, Outcome):
                            return step.message
                finally:
                    await steps.aclose()
                    self.status = with_changes(self.status, instance.take_learned())
                raise TransientError("InternalError", f"{stage.title} ended without an outcome")
        except TimeoutError as error:
            raise TransientError("StageTimedOut", f"{stage.title} took longer than {stage.timeout_seconds:.0f}s") \
                from error
        except StageError:
            raise
        except (OSError, ConnectionError) as error:
            raise TransientError("ConnectionFailed", instance.log.redactor(str(error))) from error
        except Exception as error:  # a bug must not leave the stage "Running" forever
            logger.exception("Stage %s failed unexpectedly", stage.name.value)
            raise TransientError("InternalError", instance.log.redactor(f"{type(error).__name__}: {error}")) \
                from error

    async def _finish_failed(self, instance: InstanceContext, stage: Stage, error: StageError, generation: int) -> None:
        error.message = instance.log.redactor(error.message)
        self.log(f"{stage.title} failed: {error.reason}: {error.message}")
        metrics.count_stage_failure(stage.name.value, error.reason)
        # Listed again, not confirmed: a key trusted on first use before the failure is recorded with the host.
        failed = self._with_made(instance, with_stage_failed(self.status, stage, error, instance.ref.uid,
                                                             self.runtime.clock()), stage)
        await self._finish(instance, failed, generation)
        await self._event("StageFailed", f"{stage.title}: {error.reason}: {error.message}", warning=True)

    async def _finish(self, instance: InstanceContext, status: DeploymentInstanceStatus, generation: int) -> None:
        """The stage's last status write, with the next decision already summarised; when that decision runs a
        stage, the same write starts it (announced: the next pass runs it without writing its start again,
        and takes the announcement back if it decides otherwise)."""
        now = self.runtime.clock()
        following, hashes, facts = await self._decide(instance, status, now)
        status = with_log_lines(status, self.log.take_pending())
        finished = with_summary(status, following, hashes, generation, now)
        if isinstance(following, RunStage):
            self.handoff.announce(following, finished)
            finished = self._started(instance, status, following, hashes, generation, facts.secrets_version)
        await self.write_status(finished)
        await self.save_log()


def stage_steps(stage: Stage, instance: InstanceContext) -> AsyncGenerator[StageStep]:
    """The steps of one stage: cloud stages are code; host stages run from their row of the table."""
    if stage.kind is StageKind.CLOUD:
        return CLOUD_STAGES[stage.name](instance)
    return run_host_stage(stage, instance)
