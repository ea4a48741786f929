"""Restores and clones (``spec.database.restore``, bootstrap mode ``restore``): the operator's half.

Owns: before configure's script, finding the dump a restore reads (this instance's own backup, another
instance's, or a template dump in the instance's own target), asking ``pipeline/restore.py`` whether it may
(the grant, the PostgreSQL major version) and making the presigned GET URL for exactly that object, which reaches
the script as the secret ``O4O_RESTORE_GET_URL``, and one for the uploads taken with it when the backup has them
(``O4O_RESTORE_UPLOADS_GET_URL``; a backup made before uploads were backed up restores the database only)
(:func:`prepare`); after it, the restore's record in
``status.database.restore`` (:func:`record`). A source instance's bucket credentials are read from its Secret in
its own namespace (its ``s3`` target's credentials Secret, or the operator-owned ``<source>-backup-bucket`` of the
Lightsail bucket the operator made for it), redacted like every Secret, and never leave the operator.
Must not: decide (``pipeline/restore.py`` does), log or return a presigned URL, or touch an object outside the
prefix of the instance whose backup it reads (``providers/storage.py`` refuses to).
"""

from __future__ import annotations

import dataclasses
import posixpath
from typing import Any

from o4o_operator.errors import InvalidSpecError, TransientError
from o4o_operator.models import DeploymentInstanceSpec
from o4o_operator.models_database import (
    BACKUP_CREDENTIALS_FIELD,
    BOOTSTRAP_RESTORE_FIELD,
    CLONE_BACKUP_FIELD,
    CLONE_INSTANCE_FIELD,
    CLONE_TEMPLATE_FIELD,
    LATEST_BACKUP,
    RESTORE_BACKUP_FIELD,
    BackupRecord,
    DatabaseBackupSpec,
    DatabaseRestoreSpec,
)
from o4o_operator.pipeline import backups, restore
from o4o_operator.pipeline.transitions import status_from_body
from o4o_operator.providers.aws import CloudCallError, StaticCredentials
from o4o_operator.providers.storage import ObjectStore, StorageTarget
from o4o_operator.rendering import HostContext
from o4o_operator.runner import backup_bucket, backup_step
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.secret_cache import SecretCache

GET_URL_VARIABLE = "O4O_RESTORE_GET_URL"
UPLOADS_GET_URL_VARIABLE = "O4O_RESTORE_UPLOADS_GET_URL"


async def prepare(instance: InstanceContext, host: HostContext) -> tuple[HostContext, dict[str, str]]:
    """The host context naming what configure restores (if anything), and the secret holding its download URL."""
    if host.bootstrap_mode == "restore":
        source = instance.spec.database.bootstrap.restore
        assert source is not None, "the model requires restore with mode restore"
        record, store, where = await _clone_source(instance, source)
        kind, field = "clone", BOOTSTRAP_RESTORE_FIELD
    else:
        wanted = restore.pending_restore(instance.spec.database, instance.status.database.restore)
        if wanted is None:
            return host, {}
        restore.refuse_unrestorable(instance.spec.database)
        assert instance.spec.database.backup is not None
        store = await backup_step.object_store(instance, instance.spec.database.backup)
        where = f"{instance.ref.namespace}/{instance.ref.name}"
        record = await _backup_record(store, instance.status.database.backups, wanted, RESTORE_BACKUP_FIELD,
                                      f"instance {where}")
        kind, field = "in-place", RESTORE_BACKUP_FIELD
    restore.check_version(field, record, host.postgres_version)
    try:
        urls = {GET_URL_VARIABLE: await store.presigned_get(record.key)}
        if record.uploads is not None:
            urls[UPLOADS_GET_URL_VARIABLE] = await store.presigned_get(record.uploads.key)
    except CloudCallError as error:
        raise TransientError("RestoreFailed", f"No download URL could be made: {error.code}: {error.message}") \
            from error
    described = f"{where} backup {record.id}" if record.id else f"template {record.key}"
    uploads = f"uploads {record.uploads.size} bytes" if record.uploads else "no uploads"
    instance.log(f"Restoring {described} ({kind}; {record.size} bytes, PostgreSQL {record.postgres_version or '?'}; "
                 f"{uploads})")
    return dataclasses.replace(host, restore_kind=kind, restore_id=record.id or "template",
                               restore_sha256=record.sha256,
                               restore_uploads_sha256=record.uploads.sha256 if record.uploads else "",
                               restore_source=described), urls


def record(instance: InstanceContext, results: dict[str, str]) -> dict[str, Any]:
    """``status.database.restore`` once the host reports the wanted backup restored (configure then passed its
    health gate: this is only recorded with the stage's success)."""
    wanted = instance.spec.database.restore
    if wanted is None:
        return {}
    done = restore.restore_from_results(results, wanted.backup)
    return {} if done is None else {"database.restore": done}


async def _backup_record(store: ObjectStore, records: tuple[BackupRecord, ...], wanted: str, field: str,
                         where: str) -> BackupRecord:
    """The record in status (else the object's own metadata: an older backup retention still keeps), while the
    object is still in the bucket (``pipeline/restore.py`` decides; a pruned one stalls ``BackupNotFound``).
    ``latest`` is the newest backup whose object is still there: the records in status, newest first, then the
    newest object under the prefix; with none left it stalls naming the newest record (or none)."""
    try:
        if wanted == LATEST_BACKUP:
            return await _latest_record(store, records, field, where)
        listed = restore.find_backup(records, wanted)
        key = listed.key if listed is not None else backups.object_key(store.prefix, wanted)
        head = await _head_or_none(store, key)
    except CloudCallError as error:
        raise TransientError("RestoreFailed", f"The backup could not be looked up: {error.code}: {error.message}") \
            from error
    return restore.stored_backup(field, wanted, where, listed, key, head)


async def _latest_record(store: ObjectStore, records: tuple[BackupRecord, ...], field: str,
                         where: str) -> BackupRecord:
    """``latest``: the newest record in status whose object is still in the bucket, else the newest object under
    the prefix; with neither, the newest record (which stalls as pruned), else ``BackupNotFound``."""
    records_newest_first = restore.newest_first(records)
    for record in records_newest_first:
        head = await _head_or_none(store, record.key)
        if head is not None:
            return restore.stored_backup(field, record.id, where, record, record.key, head)
    ids = [i for item in await store.list() if (i := backups.id_of_key(store.prefix, item.key))]
    if ids:
        newest = max(ids)
        key = backups.object_key(store.prefix, newest)
        return restore.stored_backup(field, newest, where, None, key, await _head_or_none(store, key))
    if records_newest_first:  # every record's object is gone: say so of the newest
        newest_record = records_newest_first[0]
        return restore.stored_backup(field, newest_record.id, where, newest_record, newest_record.key, None)
    raise restore.unknown_backup(field, LATEST_BACKUP, where)


async def _head_or_none(store: ObjectStore, key: str) -> dict[str, Any] | None:
    try:
        return await store.head(key)
    except CloudCallError as error:
        if error.http_status == 404 or error.code in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


async def _clone_source(instance: InstanceContext,
                        source: DatabaseRestoreSpec) -> tuple[BackupRecord, ObjectStore, str]:
    if source.template is not None:
        return await _template(instance, source)
    assert source.instance is not None
    namespace = source.instance.namespace or instance.ref.namespace
    where = f"{namespace}/{source.instance.name}"
    body = await instance.runtime.kube.get_instance(namespace, source.instance.name)
    if body is None:
        raise InvalidSpecError(CLONE_INSTANCE_FIELD, f"instance {where} does not exist", reason="CloneSourceNotFound")
    if not restore.clone_granted(instance.ref.namespace, namespace, body["metadata"].get("annotations") or {}):
        raise InvalidSpecError(CLONE_INSTANCE_FIELD, f"instance {where} does not let namespace "
                               f"{instance.ref.namespace} clone it: its owner grants that with the annotation "
                               f"{restore.CLONE_GRANT_ANNOTATION}={instance.ref.namespace}", reason="CloneNotGranted")
    spec = DeploymentInstanceSpec.model_validate(body.get("spec") or {}).database.backup
    if spec is None:
        raise InvalidSpecError(CLONE_INSTANCE_FIELD, f"instance {where} has no spec.database.backup, so it has no "
                               "backups to clone", reason="BackupNotFound")
    store = await _source_store(instance, namespace, source.instance.name, body, spec)
    found = await _backup_record(store, status_from_body(body.get("status")).database.backups, source.backup,
                                 CLONE_BACKUP_FIELD, f"instance {where}")
    return found, store, where


async def _source_store(instance: InstanceContext, namespace: str, name: str, body: dict[str, Any],
                        spec: DatabaseBackupSpec) -> ObjectStore:
    """The source instance's target, confined to the source's own prefix: an S3 endpoint with its credentials
    Secret, or the Lightsail bucket the operator made for it with the key its operator-owned Secret holds (both
    read from the source's own namespace, by the operator only)."""
    uid = body["metadata"]["uid"]
    s3, lightsail_bucket = spec.target.s3, spec.target.lightsail_bucket
    if lightsail_bucket is not None:
        inventory = status_from_body(body.get("status")).inventory
        target = await backup_bucket.source_storage_target(instance, namespace, name, uid, lightsail_bucket,
                                                           inventory)
        return ObjectStore(target, backups.instance_prefix(lightsail_bucket.prefix, namespace, name, uid))
    assert s3 is not None, "the model allows exactly one target"
    ref = s3.credentials_secret_ref
    secrets = SecretCache(instance.runtime, namespace, instance.log.redactor)
    field = f"{BACKUP_CREDENTIALS_FIELD} of {namespace}/{name}"
    credentials = StaticCredentials(access_key_id=await secrets.value(ref.name, ref.access_key_id_key, field),
                                    secret_access_key=await secrets.value(ref.name, ref.secret_access_key_key, field))
    prefix = backups.instance_prefix(s3.prefix, namespace, name, uid)
    return ObjectStore(StorageTarget(s3.endpoint, s3.bucket, s3.region, credentials), prefix)


async def _template(instance: InstanceContext, source: DatabaseRestoreSpec) -> tuple[BackupRecord, ObjectStore, str]:
    template = source.template
    assert template is not None
    target = instance.spec.database.backup
    if target is None:
        raise InvalidSpecError(CLONE_TEMPLATE_FIELD, "a template dump is read from this instance's "
                               "spec.database.backup.target, which is not set", reason="RestoreUnavailable")
    s3 = target.target.s3
    if s3 is None:
        assert target.target.lightsail_bucket is not None, "the model allows exactly one target"
        try:
            storage = await backup_bucket.storage_target(instance, target.target.lightsail_bucket)
        except CloudCallError as error:
            raise error.to_stage_error() from error
    else:
        ref = s3.credentials_secret_ref
        storage = StorageTarget(s3.endpoint, s3.bucket, s3.region, StaticCredentials(
            access_key_id=await instance.secret_value(ref.name, ref.access_key_id_key, BACKUP_CREDENTIALS_FIELD),
            secret_access_key=await instance.secret_value(ref.name, ref.secret_access_key_key,
                                                          BACKUP_CREDENTIALS_FIELD)))
    store = ObjectStore(storage, posixpath.dirname(template.key) + "/")
    try:
        head = await store.head(template.key)
    except CloudCallError as error:
        if error.http_status == 404 or error.code in ("404", "NoSuchKey", "NotFound"):
            raise InvalidSpecError(CLONE_TEMPLATE_FIELD + ".key", f"no object {template.key} in bucket "
                                   f"{storage.bucket}", reason="BackupNotFound") from error
        raise TransientError("RestoreFailed", f"The template could not be looked up: {error.code}: "
                             f"{error.message}") from error
    found = restore.record_from_metadata(template.key, head.get("Metadata") or {}, int(head.get("ContentLength", 0)),
                                         template.sha256)
    if not found.sha256:
        raise InvalidSpecError(CLONE_TEMPLATE_FIELD + ".sha256", f"object {template.key} has no sha256 metadata: "
                               "give the dump's SHA-256 here, so that it is checked before it is restored")
    return found.model_copy(update={"id": ""}), store, f"bucket {storage.bucket}"
