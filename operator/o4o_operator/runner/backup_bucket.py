"""A Lightsail bucket the operator makes for an instance's backups (``spec.database.backup.target.lightsailBucket``).

Owns: making sure the bucket exists and is this instance's (with the instance's Lightsail credentials, or the
operator's own identity only where ``O4O_AMBIENT_GRANTS`` grants the namespace; ``GetBuckets`` first;
``CreateBucket`` with the ownership tags; a bucket of that name without our uid tag stalls naming the field),
recording it in ``status.inventory`` (kind ``Bucket``, with the region and credentials Secret *name* to reach it
again: ``Pending``, written through :meth:`~o4o_operator.runner.instance.InstanceContext.checkpoint` before
``CreateBucket``, then ``Present`` with its URL and ARN), keeping the bucket's access key in the operator-owned
Secret ``<name>-backup-bucket`` (the secret access key is returned once, by ``CreateBucketAccessKey``: it goes from
that answer into the Secret and the S3 client, nowhere else; keys the Secret does not hold are lost and deleted
before a new one is made, as a bucket has at most two), and the
:class:`~o4o_operator.providers.storage.StorageTarget` the backups then use; and, on teardown, deleting the recorded
buckets (with their objects and keys) that are still ours (:func:`delete_buckets`). For a clone, the
:class:`~o4o_operator.providers.storage.StorageTarget` of its source's bucket, read with the key the source's own
Secret holds (:func:`source_storage_target`: no cloud call, and nothing of the key leaves the operator).
Must not: log, return in a message or put in status any part of the secret access key, touch a bucket that
is not tagged with this instance's uid, or make or change anything of a clone's source.
"""

from __future__ import annotations

import contextlib

from o4o_operator.errors import InvalidSpecError, TransientError
from o4o_operator.kubeapi import SecretData
from o4o_operator.models_database import CLONE_INSTANCE_FIELD, LIGHTSAIL_BUCKET_FIELD, LightsailBucketTarget
from o4o_operator.models_inventory import Inventory, ItemKind, ItemState, items_of, without_item
from o4o_operator.pipeline import backup_buckets
from o4o_operator.pipeline.ambient_grants import provider_refusal
from o4o_operator.providers.aws import StaticCredentials
from o4o_operator.providers.lightsail_buckets import BucketFacts, LightsailBuckets
from o4o_operator.providers.ownership import is_ours, ownership_tags
from o4o_operator.providers.storage import StorageTarget
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.inventory import InventoryRecord, access_for
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.teardown_items import cloud_settings


def target_bucket_name(instance: InstanceContext, target: LightsailBucketTarget) -> str:
    return target.name or backup_buckets.bucket_name(instance.ref.namespace, instance.ref.name, instance.ref.uid)


async def storage_target(instance: InstanceContext, target: LightsailBucketTarget) -> StorageTarget:
    """The bucket (made if missing, recorded in the inventory) and its access key, ready for the S3 client."""
    name = target_bucket_name(instance, target)
    lightsail = instance.spec.provider.lightsail
    refusal = provider_refusal(instance.runtime.settings.ambient_grants, instance.ref.namespace,
                               has_credentials=lightsail is not None and lightsail.credentials_secret_ref is not None)
    if refusal is not None:  # the operator's own identity would make the bucket: only where it is granted
        raise InvalidSpecError(LIGHTSAIL_BUCKET_FIELD, f"no Lightsail credentials to make the bucket with: "
                               f"{refusal.message}", reason=refusal.reason)
    buckets = LightsailBuckets(target.region, await instance.client_settings())
    found = await buckets.find(name)
    if found is None:
        # The intent first, written: after a crash between CreateBucket and the next write, teardown still
        # knows the bucket may exist (and deletes it if it does), and the next backup finds it by name.
        intent = _inventory(instance, target)
        if intent.intent(ItemKind.BUCKET, name):
            await instance.checkpoint({"inventory": intent.items})
        found = await buckets.create(name, ownership_tags(instance.ref.namespace, instance.ref.name,
                                                          instance.ref.uid))
    if not is_ours(found.tags, instance.ref.uid):
        raise InvalidSpecError(LIGHTSAIL_BUCKET_FIELD, f"bucket {name} exists and is not this instance's (no "
                               "o4o.io/uid tag of it): name another bucket", reason="BucketNotOurs")
    _record(instance, target, found)
    credentials = await _access_key(instance, buckets, name)
    try:
        endpoint = backup_buckets.s3_endpoint(found.url, name)
    except ValueError as error:
        raise TransientError("BucketUnreachable", f"{LIGHTSAIL_BUCKET_FIELD}: {error}") from error
    return StorageTarget(endpoint, name, target.region, credentials)


async def source_storage_target(instance: InstanceContext, namespace: str, name: str, uid: str,
                                target: LightsailBucketTarget, inventory: Inventory) -> StorageTarget:
    """The bucket the operator made for a clone's source instance ``namespace/name`` (uid ``uid``, its
    ``target`` and ``inventory``), with the access key that instance's operator-owned Secret holds: read by the
    operator only (the clone's host gets presigned URLs), redacted from the clone's log at once."""
    secret_name = backup_buckets.key_secret_name(name)
    held: SecretData | None = None
    try:
        held = await instance.runtime.kube.read_secret(namespace, secret_name, CLONE_INSTANCE_FIELD)
    except InvalidSpecError as error:
        if error.reason != "SecretNotFound":
            raise
    data = held.data if held is not None else {}
    if data.get(backup_buckets.SECRET_ACCESS_KEY_KEY):
        instance.log.redactor.add([data[backup_buckets.SECRET_ACCESS_KEY_KEY]])
    bucket = backup_buckets.source_bucket(
        CLONE_INSTANCE_FIELD, f"{namespace}/{name}", target.name or backup_buckets.bucket_name(namespace, name, uid),
        inventory, secret_name, data if held is not None else None, held.controller_uid if held else None, uid)
    return StorageTarget(bucket.endpoint, bucket.name, target.region, StaticCredentials(
        access_key_id=data[backup_buckets.ACCESS_KEY_ID_KEY],
        secret_access_key=data[backup_buckets.SECRET_ACCESS_KEY_KEY]))


def _inventory(instance: InstanceContext, target: LightsailBucketTarget) -> InventoryRecord:
    return InventoryRecord(instance.status.inventory, access_for(instance.spec, target.region), instance.runtime.clock)


def _record(instance: InstanceContext, target: LightsailBucketTarget, found: BucketFacts) -> None:
    record = _inventory(instance, target)
    existing = record.find(ItemKind.BUCKET, found.name)
    if existing is not None and existing.state is ItemState.PRESENT and existing.value == found.url \
            and existing.cloud_id == found.arn:
        return
    record.confirm(ItemKind.BUCKET, found.name, value=found.url, cloud_id=found.arn)
    instance.learn({"inventory": record.items})


async def _access_key(instance: InstanceContext, buckets: LightsailBuckets, bucket: str) -> StaticCredentials:
    """The key pair the operator-owned Secret holds for ``bucket`` while the bucket still lists it; else a new one,
    stored in that Secret (made, or rewritten when ours) before it is used."""
    kube, namespace = instance.runtime.kube, instance.ref.namespace
    secret_name = backup_buckets.key_secret_name(instance.ref.name)
    held = None
    with contextlib.suppress(InvalidSpecError):  # no such Secret yet
        held = await kube.read_secret(namespace, secret_name, LIGHTSAIL_BUCKET_FIELD)
    if held is not None and held.controller_uid != instance.ref.uid:
        raise InvalidSpecError("metadata.name", f"Secret {secret_name} exists and the operator did not make it for "
                               "this instance; it holds the backup bucket's access key", reason="SecretNameTaken")
    listed = await buckets.access_key_ids(bucket)
    data = held.data if held is not None else {}
    key_id = data.get(backup_buckets.ACCESS_KEY_ID_KEY, "")
    if data.get(backup_buckets.BUCKET_KEY) == bucket and key_id in listed and data.get(
            backup_buckets.SECRET_ACCESS_KEY_KEY):
        instance.log.redactor.add([data[backup_buckets.SECRET_ACCESS_KEY_KEY]])
        return StaticCredentials(access_key_id=key_id, secret_access_key=data[backup_buckets.SECRET_ACCESS_KEY_KEY])
    for lost in listed:  # their secrets are nowhere: useless, and they count against the bucket's two
        await buckets.delete_access_key(bucket, lost)
    credentials = await buckets.create_access_key(bucket)
    instance.log.redactor.add([credentials.secret_access_key])
    values = {backup_buckets.BUCKET_KEY: bucket, backup_buckets.ACCESS_KEY_ID_KEY: credentials.access_key_id,
              backup_buckets.SECRET_ACCESS_KEY_KEY: credentials.secret_access_key}
    if held is None:
        if not await kube.create_secret(namespace, secret_name, values, instance.body,
                                        {"deploy.o4o.io/instance": instance.ref.name}):
            raise TransientError("SecretContended", f"Secret {secret_name} appeared while the operator made it")
    elif not await kube.add_secret_data(namespace, secret_name, values, instance.ref.uid):
        raise TransientError("SecretContended", f"Secret {secret_name} changed owner while the operator wrote it")
    instance.log(f"Made an access key for backup bucket {bucket}, kept in Secret {secret_name}")
    return credentials


async def delete_buckets(runtime: Runtime, namespace: str, uid: str, inventory: Inventory) -> tuple[
        list[str], Inventory]:
    """Teardown: delete each recorded bucket that is still ours (its objects and keys go with it)."""
    done: list[str] = []
    left = inventory
    for item in items_of(inventory, ItemKind.BUCKET):
        access, settings = await cloud_settings(runtime, namespace, item)
        buckets = LightsailBuckets(access.region, settings)
        found = await buckets.find(item.name)
        if found is not None and not is_ours(found.tags, uid):
            done.append(f"nothing of bucket {item.name}, which is not ours")
        elif found is not None:
            await buckets.delete(item.name)
            done.append(f"bucket {item.name}")
        left = without_item(left, item)
    return done, left

