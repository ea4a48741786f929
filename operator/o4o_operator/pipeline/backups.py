"""Database backups' names, records and retention (``spec.database.backup``): the decisions, no I/O.

Owns: the object layout (every backup of an instance under ``<prefix>/<namespace>/<name>/<uid>/``: the dump
``<id>.dump`` and the uploads ``<id>.uploads.tar.gz`` beside it, ids that sort by time), the backup's record parsed
from the configure script's results (:func:`record_from_results`), the objects' metadata (:func:`object_metadata`,
:func:`uploads_metadata`), the bounded list ``status.database.backups`` keeps (:func:`with_record`), and
:func:`backups_to_prune`: which of the objects listed under the instance's own prefix retention deletes (a
backup's uploads go with its dump).
Must not: list, read or delete objects (``providers/storage.py`` does, the runner decides when), or name
anything secret: keys and records hold ids, times, sizes, checksums and versions only.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable, Mapping

from o4o_operator.errors import TransientError
from o4o_operator.models_database import (
    BACKUPS_KEPT_IN_STATUS,
    BackupRecord,
    BackupRetention,
    UploadsArchiveRecord,
)

DUMP_SUFFIX = ".dump"
UPLOADS_SUFFIX = ".uploads.tar.gz"
"""The instance's uploads (``shared/uploads``) at the time of the dump, a tar (gzip) object beside it."""
ID_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7,12}$")
"""``<UTC time>-<commit's first 12 hex digits>``: ids sort by time, and name the release they protect."""
BACKUP_REQUEST_ANNOTATION = "deploy.o4o.io/backup-request"
"""Its value is a request id: a backup is taken once per id (``status.database.backupRequest`` records it)."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
RESULT_KEYS = ("backupSize", "backupSha256", "backupPostgresVersion")
"""What the configure script reports of a backup it made (``backupMigrationHead`` too, when there is one)."""
UPLOADS_RESULT_KEYS = ("backupUploadsSize", "backupUploadsSha256")
"""What it reports of the uploads it took with the dump (absent from a record a host wrote before uploads were
backed up: such a backup holds the database only)."""


def instance_prefix(prefix: str, namespace: str, name: str, uid: str) -> str:
    """The only place this instance's backups live, and the only place its retention ever deletes from."""
    if not (namespace and name and uid):
        raise ValueError("an instance prefix needs the namespace, the name and the uid")
    return f"{prefix.strip('/')}/{namespace}/{name}/{uid}/"


def backup_id(moment: datetime.datetime, commit: str) -> str:
    """The id of a backup begun at ``moment`` before release ``commit`` migrates."""
    stamp = moment.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    identifier = f"{stamp}-{commit[:12].lower()}"
    if not ID_PATTERN.fullmatch(identifier):
        raise ValueError(f"commit {commit!r} does not make a backup id")
    return identifier


def object_key(own_prefix: str, identifier: str) -> str:
    return f"{own_prefix}{identifier}{DUMP_SUFFIX}"


def uploads_key(dump_key: str) -> str:
    """The key of the uploads taken with the dump at ``dump_key`` (``<id>.dump`` -> ``<id>.uploads.tar.gz``)."""
    if not dump_key.endswith(DUMP_SUFFIX):
        raise ValueError(f"{dump_key!r} is not a dump's key")
    return dump_key[:-len(DUMP_SUFFIX)] + UPLOADS_SUFFIX


def id_of_key(own_prefix: str, key: str, suffix: str = DUMP_SUFFIX) -> str | None:
    """The backup id a key names, when it is one of ours: directly under ``own_prefix``, ``<id><suffix>`` (the
    dump's, unless ``suffix`` says :data:`UPLOADS_SUFFIX`)."""
    if not key.startswith(own_prefix) or not key.endswith(suffix):
        return None
    identifier = key[len(own_prefix):-len(suffix)]
    return identifier if ID_PATTERN.fullmatch(identifier) else None


def time_of_id(identifier: str) -> datetime.datetime:
    return datetime.datetime.strptime(identifier[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class StoredObject:
    """An object as a listing shows it."""

    key: str
    size: int


def backups_to_prune(objects: Iterable[StoredObject], own_prefix: str, retention: BackupRetention,
                     now: datetime.datetime) -> list[str]:
    """The keys retention deletes: beyond the newest ``count``, or older than ``max_age``; the newest backup is
    always kept. A backup is its dump (what counts) and its uploads beside it, which go with it; uploads without
    a dump older than the newest backup are what an interrupted backup left, and go too (newer ones may be a
    backup still uploading). Only this instance's own backups count or go: any other key (another instance's, a
    file someone put beside them) is neither deleted nor counted."""
    listed = list(objects)
    ours = sorted(((identifier, item.key) for item in listed
                   if (identifier := id_of_key(own_prefix, item.key)) is not None), reverse=True)
    uploads = {identifier: item.key for item in listed
               if (identifier := id_of_key(own_prefix, item.key, UPLOADS_SUFFIX)) is not None}
    max_age = retention.max_age_seconds
    doomed: list[str] = []
    for position, (identifier, key) in enumerate(ours):
        if position == 0:
            continue
        too_many = position >= retention.count
        too_old = max_age is not None and (now - time_of_id(identifier)).total_seconds() > max_age
        if too_many or too_old:
            doomed.append(key)
            if identifier in uploads:
                doomed.append(uploads[identifier])
    dumped = {identifier for identifier, _ in ours}
    newest = ours[0][0] if ours else None
    doomed.extend(key for identifier, key in sorted(uploads.items())
                  if identifier not in dumped and newest is not None and identifier < newest)
    return doomed


def pending_request(configured: bool, annotations: Mapping[str, str], handled: str | None) -> str | None:
    """The backup request id to act on now: the annotation's, when backups are configured, the id is well formed
    and it is not the one already handled (each id runs once, whatever its outcome)."""
    requested = annotations.get(BACKUP_REQUEST_ANNOTATION, "")
    if not configured or not REQUEST_ID_PATTERN.fullmatch(requested) or requested == handled:
        return None
    return requested


def record_from_results(results: Mapping[str, str], identifier: str, key: str, commit: str,
                        purpose: str = "migration") -> BackupRecord:
    """The record of the backup the configure script reports (its uploads too, when it reports them); a missing
    or malformed value is transient."""
    missing = [name for name in RESULT_KEYS if not results.get(name)]
    size, sha256 = results.get("backupSize", ""), results.get("backupSha256", "")
    if missing or not size.isdigit() or not _SHA256.fullmatch(sha256):
        raise TransientError("BackupFailed", "The configure script reported no complete backup (missing or "
                             f"malformed: {', '.join(missing) or 'backupSize or backupSha256'})")
    uploads = None
    if any(results.get(name) for name in UPLOADS_RESULT_KEYS):
        uploads_size, uploads_sha256 = results.get("backupUploadsSize", ""), results.get("backupUploadsSha256", "")
        if not uploads_size.isdigit() or not _SHA256.fullmatch(uploads_sha256):
            raise TransientError("BackupFailed", "The configure script reported no complete uploads archive "
                                 "(missing or malformed: backupUploadsSize or backupUploadsSha256)")
        uploads = UploadsArchiveRecord(key=uploads_key(key), size=int(uploads_size), sha256=uploads_sha256)
    return BackupRecord(id=identifier, time=time_of_id(identifier).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        size=int(size), sha256=sha256, postgres_version=results["backupPostgresVersion"],
                        commit=commit, migration_head=results.get("backupMigrationHead") or None, key=key,
                        reason=purpose, uploads=uploads)


def with_record(records: Iterable[BackupRecord], record: BackupRecord, limit: int = BACKUPS_KEPT_IN_STATUS, *,
                pruned: Iterable[str] = ()) -> tuple[BackupRecord, ...]:
    """The status list with ``record`` in it (replacing one of the same id), newest first, at most ``limit``,
    without the records whose dump retention just deleted (``pruned``: the deleted keys)."""
    gone = frozenset(pruned)
    kept = [existing for existing in records if existing.id != record.id and existing.key not in gone]
    return tuple(sorted([record, *kept], key=lambda item: item.id, reverse=True)[:limit])


def object_metadata(record: BackupRecord) -> dict[str, str]:
    """The object's user metadata (``x-amz-meta-*``): the record, so that a bucket alone says what it holds."""
    metadata = {"backup-id": record.id, "time": record.time, "size": str(record.size), "sha256": record.sha256,
                "postgres-version": record.postgres_version, "commit": record.commit, "reason": record.reason}
    if record.migration_head:
        metadata["migration-head"] = record.migration_head
    if record.uploads is not None:
        metadata["uploads-size"] = str(record.uploads.size)
        metadata["uploads-sha256"] = record.uploads.sha256
    return metadata


def uploads_metadata(record: BackupRecord) -> dict[str, str]:
    """The uploads object's user metadata: which backup it belongs to, and its own size and checksum."""
    assert record.uploads is not None, "only a backup with uploads has an uploads object"
    return {"backup-id": record.id, "time": record.time, "size": str(record.uploads.size),
            "sha256": record.uploads.sha256, "commit": record.commit, "reason": record.reason,
            "dump-sha256": record.sha256}
