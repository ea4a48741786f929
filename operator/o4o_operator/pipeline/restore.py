"""Restores and clones of a database from a backup (``spec.database.restore``, bootstrap mode ``restore``).

Owns: whether an in-place restore is due (:func:`pending_restore`: once per backup id, whatever re-applies the
manifest), which backup an id or ``latest`` names (:func:`find_backup`, from the records in status or the record
an object's metadata holds: :func:`record_from_metadata`; and only while its object is still in the bucket:
:func:`stored_backup`), whether a namespace may clone another's instance (the
grant: :data:`CLONE_GRANT_ANNOTATION` on the source, :func:`clone_granted`), what of a source instance a clone
waits on (:func:`clone_source_state`: a stalled clone runs again when it changes), whether a dump's PostgreSQL major
version matches the server's (:func:`check_version`), and the status a finished restore records
(:func:`restore_from_results`). The refusals are :class:`InvalidSpecError`\\ s naming the field to change.
Purely computational: no I/O (``runner/restore_step.py`` reads the source instance and the bucket).
Must not: name anything secret. Records hold ids, keys, times, checksums and versions only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from o4o_operator.errors import InvalidSpecError, TransientError
from o4o_operator.models_database import (
    BACKUP_ID_PATTERN,
    LATEST_BACKUP,
    RESTORE_FIELD,
    BackupRecord,
    DatabaseSpec,
    RestoreStatus,
    UploadsArchiveRecord,
)
from o4o_operator.pipeline.backups import DUMP_SUFFIX, uploads_key

CLONE_GRANT_ANNOTATION = "deploy.o4o.io/clone-namespaces"
"""On a source instance: the namespaces (comma-separated, or ``*`` for any) whose instances may clone it. The
source's own namespace never needs it. Granting is the source owner's act, as a ReferenceGrant is in Gateway API."""
RESULT_KEYS = ("restoredBackup", "restoreStartedAt", "restoreFinishedAt")
"""What the configure script reports of the in-place restore the host has recorded (``restorePreBackup`` too)."""
_VERSION_NUM = re.compile(r"^[0-9]{5,6}$")


def pending_restore(spec: DatabaseSpec, done: RestoreStatus | None) -> str | None:
    """The backup id to restore in place now: ``spec.database.restore.backup`` unless status records it done.
    Re-applying the same manifest therefore restores nothing; a new id restores once more."""
    wanted = spec.restore
    if wanted is None or (done is not None and done.backup == wanted.backup):
        return None
    return wanted.backup


def refuse_unrestorable(spec: DatabaseSpec) -> None:
    """An in-place restore needs the instance's backup target (where its backups are) and a local database (the
    operator drops and creates again only a database it made; an external one is never dropped)."""
    if spec.backup is None:
        raise InvalidSpecError(RESTORE_FIELD, "an in-place restore reads this instance's backups from "
                               "spec.database.backup.target, which is not set", reason="RestoreUnavailable")
    if not spec.local:
        raise InvalidSpecError(RESTORE_FIELD, "an in-place restore drops and creates again the database the "
                               "operator made on the server; an external database (spec.database.external) is "
                               "never dropped, so restore it with its owner's tools", reason="RestoreUnavailable")


def find_backup(records: Iterable[BackupRecord], wanted: str) -> BackupRecord | None:
    """The record of backup ``wanted`` (an id, or ``latest``: the newest) among ``records``."""
    ordered = newest_first(records)
    if wanted == LATEST_BACKUP:
        return ordered[0] if ordered else None
    return next((record for record in ordered if record.id == wanted), None)


def newest_first(records: Iterable[BackupRecord]) -> list[BackupRecord]:
    """The records as ``latest`` tries them: the newest first (ids begin with their UTC time). ``latest`` is the
    newest whose object is still in the bucket, so a newest one deleted by hand is passed over."""
    return sorted(records, key=lambda record: record.id, reverse=True)


def unknown_backup(field: str, wanted: str, where: str) -> InvalidSpecError:
    return InvalidSpecError(field, f"no backup {wanted} of {where} was found (neither in its "
                            "status.database.backups nor as an object under its prefix)", reason="BackupNotFound")


def stored_backup(field: str, wanted: str, where: str, listed: BackupRecord | None, key: str,
                  head: Mapping[str, Any] | None) -> BackupRecord:
    """The backup a restore reads: ``listed`` (its record in status) or the record the object's own metadata holds,
    and only while the object ``key`` exists (``head``: the bucket's HEAD answer for it; None: no such object).
    ``status.database.backups`` keeps the newest 10 records and retention may keep fewer objects, so a record in
    status may name a pruned backup: that stalls ``BackupNotFound`` naming ``field`` and the id, as an id never
    taken does (a download would fail at every retry); changing ``field`` clears the stall."""
    if head is None:
        if listed is not None:
            raise InvalidSpecError(field, f"backup {listed.id} of {where} is listed in its status.database.backups "
                                   f"but its object {key} is no longer in the bucket (retention pruned it, or it "
                                   "was deleted): name another backup", reason="BackupNotFound")
        raise unknown_backup(field, wanted, where)
    if listed is not None:
        return listed
    found = record_from_metadata(key, head.get("Metadata") or {}, int(head.get("ContentLength", 0)))
    if found.id != wanted or not found.sha256:
        raise unknown_backup(field, wanted, where)
    return found


def record_from_metadata(key: str, metadata: Mapping[str, str], size: int,
                         sha256: str | None = None) -> BackupRecord:
    """A record from an object's user metadata (the backup step writes it; a template dump may carry some of it).
    ``sha256`` given (a template's spec) wins over the metadata's. Uploads taken with the dump are named by its
    ``uploads-*`` metadata, beside it; a dump without them (made before uploads were backed up) has none."""
    identifier = metadata.get("backup-id", "")
    uploads_size, uploads_sha256 = metadata.get("uploads-size", ""), metadata.get("uploads-sha256", "")
    uploads = None
    if uploads_size.isdigit() and re.fullmatch(r"[0-9a-f]{64}", uploads_sha256) and key.endswith(DUMP_SUFFIX):
        uploads = UploadsArchiveRecord(key=uploads_key(key), size=int(uploads_size), sha256=uploads_sha256)
    return BackupRecord(id=identifier if re.fullmatch(BACKUP_ID_PATTERN, identifier) else "",
                        time=metadata.get("time", ""), size=size,
                        sha256=sha256 or metadata.get("sha256", ""),
                        postgres_version=metadata.get("postgres-version", ""), commit=metadata.get("commit", ""),
                        migration_head=metadata.get("migration-head") or None, key=key,
                        reason=metadata.get("reason", "template"), uploads=uploads)


def clone_granted(clone_namespace: str, source_namespace: str, source_annotations: Mapping[str, str]) -> bool:
    """Whether an instance in ``clone_namespace`` may clone the source: the same namespace, or one the source's
    :data:`CLONE_GRANT_ANNOTATION` lists (``*``: any)."""
    if clone_namespace == source_namespace:
        return True
    granted = {part.strip() for part in source_annotations.get(CLONE_GRANT_ANNOTATION, "").split(",")}
    return clone_namespace in granted or "*" in granted


def clone_source_state(source: Mapping[str, Any] | None) -> str:
    """What of a clone's source instance decides whether the clone can go on: whether it exists (its uid), its
    grant annotation, whether it is backed up and the ids of its backups. Not the rest of its status (conditions,
    progress, the log), which changes all the time: a clone stalled on its source runs again when this does."""
    if source is None:
        return "missing"
    metadata, spec = source.get("metadata") or {}, source.get("spec") or {}
    database = (source.get("status") or {}).get("database") or {}
    backups = ",".join(str(record.get("id", "")) for record in database.get("backups") or [])
    grant = (metadata.get("annotations") or {}).get(CLONE_GRANT_ANNOTATION, "")
    backed_up = (spec.get("database") or {}).get("backup") is not None
    return f"{metadata.get('uid', '')}|{grant}|{backed_up}|{backups}"


def major_version(version_num: str) -> str:
    """``server_version_num`` to its major version: 140013 -> 14, 90624 -> 9.6."""
    if not _VERSION_NUM.fullmatch(version_num):
        raise ValueError(f"{version_num!r} is not a server_version_num")
    number = int(version_num)
    if number >= 100000:
        return str(number // 10000)
    return f"{number // 10000}.{number // 100 % 100}"


def check_version(field: str, record: BackupRecord, server_version: str) -> None:
    """A dump restores into the same PostgreSQL major version only (``pg_restore`` may refuse a newer archive,
    and an older server lacks what a newer one dumped): a mismatch stalls naming both. A dump that does not say
    its version (a template without metadata) is not checked; a server that did not say is transient."""
    if not record.postgres_version:
        return
    if not _VERSION_NUM.fullmatch(server_version):
        raise TransientError("DatabaseUnavailable", "The server's PostgreSQL version could not be read "
                             f"({server_version!r}); nothing was restored")
    dumped, serving = major_version(record.postgres_version), major_version(server_version)
    if dumped != serving:
        name = record.id or record.key
        raise InvalidSpecError(field, f"backup {name} was dumped by PostgreSQL {dumped} "
                               f"(server_version_num {record.postgres_version}) and this server runs PostgreSQL "
                               f"{serving} ({server_version}): restore a backup of the same major version",
                               reason="PostgresVersionMismatch")


def restore_from_results(results: Mapping[str, str], wanted: str) -> RestoreStatus | None:
    """The in-place restore the host records (reported by every configure run), when it is ``wanted``'s."""
    if results.get("restoredBackup") != wanted:
        return None
    return RestoreStatus(backup=wanted, started_at=results.get("restoreStartedAt") or None,
                         finished_at=results.get("restoreFinishedAt") or None, outcome="Succeeded",
                         pre_restore_backup=results.get("restorePreBackup") or None)

