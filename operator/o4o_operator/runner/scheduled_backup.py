"""Scheduled backups (``spec.database.backup.schedule``): the runner's half of the pure schedule decision.

Owns: asking :func:`o4o_operator.pipeline.backup_schedule.plan` whether a scheduled backup is due for an
instance's status at ``now`` (:func:`due`: also the status changes that record the next due time), taking it
(:func:`run`, through :func:`o4o_operator.runner.backup_step.take_now`), and recording its outcome in
``status.database.lastScheduledBackup`` with the following due time (computed from now, so windows missed while
the operator was down take one catch-up backup). The worker calls these between stages' work (settled only), and
sleeps no longer than the next due time, as it does for the drift check.
Must not: decide when a backup is due (the pipeline does), write status (the worker does), or retry a failed
scheduled backup before the next window.
"""

from __future__ import annotations

import datetime
from typing import Any

from o4o_operator.errors import StageError
from o4o_operator.models import DeploymentInstanceStatus
from o4o_operator.models_database import ScheduledBackupStatus
from o4o_operator.pipeline import backup_schedule
from o4o_operator.pipeline.decisions import format_time
from o4o_operator.runner import backup_step
from o4o_operator.runner.instance import InstanceContext


def due(instance: InstanceContext, status: DeploymentInstanceStatus,
        now: datetime.datetime) -> tuple[bool, dict[str, Any]]:
    """Whether a scheduled backup is due, and the changes recording the next due time (none: nothing new). An
    instance without a schedule forgets the recorded next time."""
    spec = instance.spec.database.backup
    database = status.database
    if spec is None or spec.schedule is None:
        if database.next_scheduled_backup is None and database.backup_schedule is None:
            return False, {}
        return False, {"database.next_scheduled_backup": None, "database.backup_schedule": None}
    plan = backup_schedule.plan(spec.schedule, database.backup_schedule, database.next_scheduled_backup,
                                database.last_scheduled_backup.time if database.last_scheduled_backup else None, now)
    recorded = {"database.next_scheduled_backup": format_time(plan.next_at),
                "database.backup_schedule": spec.schedule}
    unchanged = (database.next_scheduled_backup, database.backup_schedule) == tuple(recorded.values())
    return plan.due, {} if unchanged else recorded


def seconds_until_due(status: DeploymentInstanceStatus, now: datetime.datetime) -> float | None:
    """How long until the recorded next scheduled backup (None: no schedule recorded)."""
    next_at = backup_schedule.parse_time(status.database.next_scheduled_backup)
    return None if next_at is None else max(0.0, (next_at - now).total_seconds())


async def run(instance: InstanceContext, now: datetime.datetime) -> dict[str, Any]:
    """Take the due backup; record its outcome and the next due time (the first window after now)."""
    spec = instance.spec.database.backup
    assert spec is not None and spec.schedule is not None, "run() only when due() said so"
    following = {"database.next_scheduled_backup": format_time(backup_schedule.after_backup(spec.schedule, now)),
                 "database.backup_schedule": spec.schedule}
    try:
        identifier, changes = await backup_step.take_now(instance, "schedule")
    except StageError as error:
        return {**following, "database.last_scheduled_backup": ScheduledBackupStatus(
            time=format_time(now), outcome="Failed", message=f"{error.reason}: {error.message}"[:1024])}
    return {**changes, **following, "database.last_scheduled_backup": ScheduledBackupStatus(
        time=format_time(now), outcome="Succeeded", backup_id=identifier)}
