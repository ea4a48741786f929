"""The backups an instance takes between stages' work: one asked for by annotation, else one its schedule is due.

Owns: deciding, for a pass whose decision left the instance settled (``Settle``, or a drift check of an
instance not stalled), whether the requested or the scheduled backup runs now, running it, and what the
worker must record and announce. Must not write status or post Events itself (the worker does), nor decide
anything the pure ``pipeline.backups`` and ``runner.scheduled_backup`` rules decide.
"""

from __future__ import annotations

import dataclasses
import datetime

from o4o_operator.models import DeploymentInstanceStatus
from o4o_operator.pipeline import backups
from o4o_operator.pipeline.decisions import CheckDrift, Decision, Settle
from o4o_operator.pipeline.transitions import with_changes
from o4o_operator.runner import backup_step, scheduled_backup
from o4o_operator.runner.instance import InstanceContext


@dataclasses.dataclass(frozen=True)
class BackupTaken:
    """An Event for a backup that ran (``BackupTaken`` or ``BackupFailed``)."""

    reason: str
    message: str
    warning: bool


def _settled(decision: Decision) -> bool:
    return isinstance(decision, Settle) or (isinstance(decision, CheckDrift) and decision.stall is None)


async def take(instance: InstanceContext, decision: Decision, status: DeploymentInstanceStatus,
               now: datetime.datetime) -> tuple[DeploymentInstanceStatus, BackupTaken | None]:
    """The status to keep, and the Event when a backup ran (then the status must be written at once). Without
    a backup the status may still carry the next scheduled time, to be written with the pass's summary."""
    if not _settled(decision):
        return status, None
    request = backups.pending_request(instance.spec.database.backup is not None,
                                      instance.body["metadata"].get("annotations") or {},
                                      status.database.backup_request.id if status.database.backup_request else None)
    if request is not None:
        changes = await backup_step.run_requested(instance, request)
        status = with_changes(with_changes(status, instance.take_learned()), changes)
        requested = changes["database.backup_request"]
        return status, _event(requested.outcome, f"Backup request {request}: "
                                                 f"{requested.backup_id or requested.message}")
    is_due, changes = scheduled_backup.due(instance, status, now)
    status = with_changes(status, changes)
    if not is_due:
        return status, None
    changes = await scheduled_backup.run(instance, now)
    status = with_changes(with_changes(status, instance.take_learned()), changes)
    scheduled = status.database.last_scheduled_backup
    assert scheduled is not None
    return status, _event(scheduled.outcome, f"Scheduled backup: {scheduled.backup_id or scheduled.message}")


def _event(outcome: str, message: str) -> BackupTaken:
    succeeded = outcome == "Succeeded"
    return BackupTaken("BackupTaken" if succeeded else "BackupFailed", message, warning=not succeeded)
