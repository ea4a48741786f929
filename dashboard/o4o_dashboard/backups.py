"""The backups panel of an instance's page: its latest backups, the last request and the schedule.

Owns: :func:`backups_view`, from ``status.database`` (``backups``, ``backupRequest``, ``backupSchedule``,
``nextScheduledBackup``, ``lastScheduledBackup``) to a :class:`BackupsView`. It shows ids, times, sizes, the
release's commit, the PostgreSQL version, why each backup was taken and how requests went; status holds nothing
secret, and this allow-list passes on nothing else (no object key, no checksum). Purely computational: no I/O.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from o4o_dashboard import bodies
from o4o_dashboard.views import iso

BACKUPS_SHOWN = 10


@dataclasses.dataclass(frozen=True, slots=True)
class BackupView:
    id: str
    time: datetime.datetime | None
    size: str
    """The dump and the uploads archive together, human-readable (``1.2 MiB``)."""
    uploads_size: str
    """The uploads archive's part of it (``""``: a backup of the database only)."""
    commit: str
    """The release's commit, shortened to 12 hex digits."""
    postgres_version: str
    """``14.13`` from ``server_version_num`` 140013."""
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class OutcomeView:
    """The last on-request or scheduled backup: its outcome, when, which backup, and why it failed."""

    label: str
    outcome: str
    time: datetime.datetime | None
    backup_id: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class BackupsView:
    backups: tuple[BackupView, ...]
    outcomes: tuple[OutcomeView, ...]
    schedule: str
    next_scheduled: datetime.datetime | None

    @property
    def empty(self) -> bool:
        return not (self.backups or self.outcomes or self.schedule)

    def to_json(self) -> dict[str, Any]:
        return {
            "backups": [{"id": b.id, "time": iso(b.time), "size": b.size, "uploadsSize": b.uploads_size,
                         "commit": b.commit, "postgresVersion": b.postgres_version, "reason": b.reason}
                        for b in self.backups],
            "outcomes": [{"label": o.label, "outcome": o.outcome, "time": iso(o.time), "backupId": o.backup_id,
                          "message": o.message} for o in self.outcomes],
            "schedule": self.schedule, "nextScheduledBackup": iso(self.next_scheduled),
        }


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable: GiB ends the loop


def postgres_version(number: str) -> str:
    """``server_version_num`` as people write it: 140013 -> 14.13 (10 and later), 90624 -> 9.6.24."""
    if not number.isdigit():
        return number
    value = int(number)
    if value >= 100000:
        return f"{value // 10000}.{value % 10000}"
    return f"{value // 10000}.{value // 100 % 100}.{value % 100}"


def _outcome(label: str, entry: Mapping[str, Any], request_id: str = "") -> OutcomeView | None:
    if not entry:
        return None
    return OutcomeView(label=f"{label} {request_id}".strip(), outcome=bodies.text(entry, "outcome"),
                       time=bodies.timestamp(entry, "time"), backup_id=bodies.text(entry, "backupId"),
                       message=bodies.text(entry, "message"))


def backups_view(status: Mapping[str, Any]) -> BackupsView:
    database = bodies.mapping(status, "database")
    backups = tuple(
        BackupView(id=bodies.text(entry, "id"), time=bodies.timestamp(entry, "time"),
                   size=format_size(bodies.integer(entry, "size") + bodies.integer(entry, "uploads", "size")),
                   uploads_size=format_size(bodies.integer(entry, "uploads", "size")) if bodies.mapping(
                       entry, "uploads") else "",
                   commit=bodies.text(entry, "commit")[:12],
                   postgres_version=postgres_version(bodies.text(entry, "postgresVersion")),
                   reason=bodies.text(entry, "reason") or "migration")
        for entry in bodies.mappings(database, "backups")[:BACKUPS_SHOWN])
    request = bodies.mapping(database, "backupRequest")
    outcomes = tuple(outcome for outcome in (
        _outcome("Request", request, bodies.text(request, "id")),
        _outcome("Scheduled", bodies.mapping(database, "lastScheduledBackup"))) if outcome is not None)
    return BackupsView(backups=backups, outcomes=outcomes, schedule=bodies.text(database, "backupSchedule"),
                       next_scheduled=bodies.timestamp(database, "nextScheduledBackup"))
