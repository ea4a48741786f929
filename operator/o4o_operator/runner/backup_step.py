"""Database backups (``spec.database.backup``): the operator's half, around the host scripts'.

Owns: before the script, naming the backup (``pipeline/backups.py``) and making the presigned PUT URLs for its
two objects, the dump and the uploads beside it, which reach the script as the secrets ``O4O_BACKUP_PUT_URL``
and ``O4O_BACKUP_UPLOADS_PUT_URL`` (:func:`prepare`); after it, checking the objects the host uploaded (they
exist, with the sizes the host reported), writing the record into their metadata, adding it to
``status.database.backups`` and the backup gauges, and pruning by retention under this instance's own prefix
only (:func:`record`); and a backup outside a migration run (:func:`take_now`), on request
(:func:`run_requested`) or on schedule (``runner/scheduled_backup.py``). The bucket's
credentials come from the target's Secret and stay in the operator.
Must not: decide what retention deletes (``pipeline/backups.py`` does), log or return a presigned URL, or touch
an object outside the instance's prefix (``providers/storage.py`` refuses to).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import asyncssh

from o4o_operator import metrics
from o4o_operator.errors import StageError, TransientError
from o4o_operator.models_database import (
    BACKUP_CREDENTIALS_FIELD,
    BackupRecord,
    BackupRequestStatus,
    DatabaseBackupSpec,
)
from o4o_operator.pipeline import backups
from o4o_operator.pipeline.decisions import format_time
from o4o_operator.providers.aws import CloudCallError, StaticCredentials
from o4o_operator.providers.storage import ObjectStore, StorageTarget
from o4o_operator.rendering import HostContext, render
from o4o_operator.runner import backup_bucket
from o4o_operator.runner.generated_secret import database_script_env
from o4o_operator.runner.instance import InstanceContext

PUT_URL_VARIABLE = "O4O_BACKUP_PUT_URL"
UPLOADS_PUT_URL_VARIABLE = "O4O_BACKUP_UPLOADS_PUT_URL"


async def object_store(instance: InstanceContext, spec: DatabaseBackupSpec) -> ObjectStore:
    """The target's bucket, confined to this instance's own prefix: an S3 endpoint with the credentials Secret,
    or the Lightsail bucket the operator makes (``runner/backup_bucket.py``)."""
    s3, lightsail_bucket = spec.target.s3, spec.target.lightsail_bucket
    if lightsail_bucket is not None:
        try:
            target = await backup_bucket.storage_target(instance, lightsail_bucket)
        except CloudCallError as error:
            raise error.to_stage_error() from error
        prefix = lightsail_bucket.prefix
    else:
        assert s3 is not None, "the model allows exactly one target"
        ref = s3.credentials_secret_ref
        credentials = StaticCredentials(
            access_key_id=await instance.secret_value(ref.name, ref.access_key_id_key, BACKUP_CREDENTIALS_FIELD),
            secret_access_key=await instance.secret_value(ref.name, ref.secret_access_key_key,
                                                          BACKUP_CREDENTIALS_FIELD))
        target, prefix = StorageTarget(s3.endpoint, s3.bucket, s3.region, credentials), s3.prefix
    own = backups.instance_prefix(prefix, instance.ref.namespace, instance.ref.name, instance.ref.uid)
    return ObjectStore(target, own)


async def prepare(instance: InstanceContext, host: HostContext) -> tuple[HostContext, dict[str, str]]:
    """The host context naming this run's backup, and the secret environment holding its two upload URLs."""
    spec = instance.spec.database.backup
    if spec is None or not host.commit:
        return host, {}
    store = await object_store(instance, spec)
    identifier = backups.backup_id(instance.runtime.clock(), host.commit)
    key = backups.object_key(store.prefix, identifier)
    urls = {PUT_URL_VARIABLE: await store.presigned_put(key),
            UPLOADS_PUT_URL_VARIABLE: await store.presigned_put(backups.uploads_key(key))}
    return dataclasses.replace(host, backup_id=identifier), urls


async def record(instance: InstanceContext, commit: str, results: Mapping[str, str],
                 purpose: str = "migration") -> dict[str, Any]:
    """After a script that reports a backup: check it, record it (object metadata, status), then prune."""
    spec = instance.spec.database.backup
    identifier = results.get("backupId", "")
    if spec is None or not identifier:
        return {}
    if not backups.ID_PATTERN.fullmatch(identifier):
        raise TransientError("BackupFailed", "The configure script reported a malformed backup id")
    store = await object_store(instance, spec)
    key = backups.object_key(store.prefix, identifier)
    entry = backups.record_from_results(results, identifier, key, commit, purpose)
    try:
        await _check_size(store, key, entry.size, f"Backup {identifier}", "dumped")
        if entry.uploads is not None:
            await _check_size(store, entry.uploads.key, entry.uploads.size, f"Backup {identifier}'s uploads",
                              "archived")
            await store.set_metadata(entry.uploads.key, backups.uploads_metadata(entry))
        await store.set_metadata(key, backups.object_metadata(entry))
    except CloudCallError as error:
        raise TransientError("BackupFailed", f"Backup {identifier} could not be checked in the bucket: "
                             f"{error.code}: {error.message}") from error
    pruned = await prune(instance, store, spec)
    _observe(instance, entry, results.get("backupSeconds", ""))
    return {"database.backups": backups.with_record(instance.status.database.backups, entry, pruned=pruned)}


async def _check_size(store: ObjectStore, key: str, size: int, what: str, verb: str) -> None:
    head = await store.head(key)
    if int(head.get("ContentLength", -1)) != size:
        raise TransientError("BackupFailed", f"{what} holds {head.get('ContentLength')} bytes in the bucket, not the "
                             f"{size} the server {verb}")


def _observe(instance: InstanceContext, entry: BackupRecord, seconds: str) -> None:
    labels = {"namespace": instance.ref.namespace, "name": instance.ref.name}
    metrics.BACKUP_LAST_SUCCESS.labels(**labels).set(backups.time_of_id(entry.id).timestamp())
    metrics.BACKUP_SIZE.labels(**labels).set(entry.size + (entry.uploads.size if entry.uploads is not None else 0))
    if seconds.isdigit():
        metrics.BACKUP_DURATION.labels(**labels).set(int(seconds))


async def prune(instance: InstanceContext, store: ObjectStore, spec: DatabaseBackupSpec) -> list[str]:
    """Delete what retention no longer keeps under this instance's own prefix; a failure is logged, not fatal
    (the next backup prunes again)."""
    try:
        doomed = backups.backups_to_prune(await store.list(), store.prefix, spec.retention, instance.runtime.clock())
        for key in doomed:
            await store.delete(key)
    except CloudCallError as error:
        instance.log(f"Backup retention could not prune: {error.code}: {error.message}")
        return []
    if doomed:
        instance.log(f"Backup retention pruned {len(doomed)}: {', '.join(k.rsplit('/', 1)[1] for k in doomed)}")
    return doomed


REQUEST_TIMEOUT_SECONDS = 1800.0


async def take_now(instance: InstanceContext, purpose: str) -> tuple[str, dict[str, Any]]:
    """One backup outside a migration run (on request or on schedule): the ``backup`` host script, then
    :func:`record`. Returns the backup's id and the status changes; a failure raises its ``StageError``."""
    commit = instance.status.source.commit or ""
    host, backup_env = await prepare(instance, instance.host_context())
    if not host.backup_id:
        raise TransientError("BackupFailed", "No release is deployed yet, so there is nothing to back up")
    env, public_env = await database_script_env(instance)
    session = await instance.session()
    try:
        result = await session.run(render.render_script("backup", host), timeout=REQUEST_TIMEOUT_SECONDS,
                                   log=instance.log, env={**env, **backup_env}, public_env=public_env)
    except asyncssh.Error as error:
        raise TransientError("ConnectionLost", f"SSH session failed: {error}") from error
    return host.backup_id, await record(instance, commit, result.results, purpose=purpose)


async def run_requested(instance: InstanceContext, request_id: str) -> dict[str, Any]:
    """An on-request backup (annotation ``deploy.o4o.io/backup-request``), once for ``request_id``
    (:func:`take_now`). Its outcome, success or failure, is recorded in ``database.backup_request`` (a failure is
    not retried: a new id asks again)."""
    now = format_time(instance.runtime.clock())
    try:
        identifier, changes = await take_now(instance, "request")
    except StageError as error:
        return {"database.backup_request": BackupRequestStatus(
            id=request_id, outcome="Failed", time=now, message=f"{error.reason}: {error.message}"[:1024])}
    return {**changes, "database.backup_request": BackupRequestStatus(
        id=request_id, outcome="Succeeded", time=now, backup_id=identifier)}
