"""Scheduled backups (``spec.database.backup.schedule``): when the next one is due, and whether it is due now.

Owns: :func:`plan`, the one decision: from the schedule, what status recorded (the schedule the recorded next
time was computed from, that time, and when the last scheduled backup ran) and now, the next due time and
whether a backup is due. A window missed while the operator was down (or the instance was busy) takes exactly one
catch-up backup, however many windows passed: after it, the next time is computed from *now*, not from the
missed window. A changed schedule recomputes the next time from the last scheduled backup (or now), so a schedule
edit neither fires at once nor loses a window that the new schedule already passed since the last backup.
Must not: read a clock (the caller passes ``now``), take backups, or write status (the runner does).
"""

from __future__ import annotations

import dataclasses
import datetime

from o4o_operator.models_cron import parse


@dataclasses.dataclass(frozen=True)
class SchedulePlan:
    next_at: datetime.datetime
    """When the next scheduled backup is due (recorded as ``status.database.nextScheduledBackup``)."""
    due: bool
    """A backup is due now; once taken, the next time is :func:`after_backup`'s."""


def parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def plan(schedule: str, recorded_schedule: str | None, recorded_next: str | None, last_scheduled: str | None,
         now: datetime.datetime) -> SchedulePlan:
    """The next due time and whether it has come. ``recorded_next`` counts only if it was computed from this
    same ``schedule``; else the next time follows the last scheduled backup, or, with none, now (a new schedule
    waits for its first window rather than firing at once)."""
    cron = parse(schedule)
    recorded = parse_time(recorded_next) if recorded_schedule == schedule else None
    if recorded is None:
        recorded = cron.next_after(parse_time(last_scheduled) or now)
    return SchedulePlan(next_at=recorded, due=recorded <= now)


def after_backup(schedule: str, now: datetime.datetime) -> datetime.datetime:
    """The next due time once a scheduled backup ran (or failed) at ``now``: the first window after now, so the
    windows missed before it are not each caught up."""
    return parse(schedule).next_after(now)
