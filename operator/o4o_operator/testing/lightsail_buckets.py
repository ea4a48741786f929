"""The local Lightsail's object-storage buckets: CreateBucket, GetBuckets, DeleteBucket and their access keys.

Owns: what those operations do to the state (a bucket's record with its tags and URL, at most two access keys per
bucket as Lightsail allows, the secret access key shown only in CreateBucketAccessKey's answer, ``forceDelete``
needed for a bucket that still holds access keys or objects), and handing the bucket itself to a
:class:`BucketBackend` (:class:`MemoryBuckets` unless told otherwise): in the test world, the real S3 server
(:class:`S3ServerBuckets`), so the objects a backup writes are really held there, and each access key is a
gateway user of role ``user`` that owns its bucket: it reaches that bucket and no other, as a Lightsail bucket's
key does. (The gateway has one owner per bucket, so a bucket's second key takes it over from the first; the
operator uses one key per bucket.)
:class:`BucketOperations` is a mixin of ``LightsailState``, which holds the lock and calls these ``op_`` methods.

Must not: do I/O but through the backend, sleep, know HTTP, take the lock (``handle`` holds it), or be used apart
from ``LightsailState``.
"""

from __future__ import annotations

import dataclasses
import datetime
import secrets
from typing import Any, Protocol

from o4o_operator.testing.lightsail_errors import invalid, not_found
from o4o_operator.testing.lightsail_keypairs import checked_tags
from o4o_operator.testing.lightsail_resources import now

Params = dict[str, Any]
BUNDLES = ("small_1_0", "medium_1_0", "large_1_0")
MAX_ACCESS_KEYS = 2


class BucketBackend(Protocol):
    """Where a local bucket's objects are really held."""

    def bucket_url(self, name: str) -> str:
        """The bucket's URL as GetBuckets shows it (``<endpoint>/<bucket>/``, path style)."""

    def create_bucket(self, name: str) -> None: ...

    def delete_bucket(self, name: str) -> None:
        """Delete the bucket and every object in it."""

    def has_objects(self, name: str) -> bool: ...

    def access_key(self, name: str) -> tuple[str, str]:
        """A new (access key id, secret access key) pair that reaches bucket ``name``."""

    def delete_access_key(self, name: str, access_key_id: str) -> None: ...


class MemoryBuckets:
    """No object store behind the buckets (the default): AWS-shaped URLs, made-up keys, no objects."""

    def bucket_url(self, name: str) -> str:
        return f"https://{name}.s3.us-east-1.amazonaws.com/"

    def create_bucket(self, name: str) -> None:
        pass

    def delete_bucket(self, name: str) -> None:
        pass

    def has_objects(self, name: str) -> bool:
        return False

    def access_key(self, name: str) -> tuple[str, str]:
        return "AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)

    def delete_access_key(self, name: str, access_key_id: str) -> None:
        pass


class S3ServerBuckets:
    """Buckets in the test world's S3 server (``testing/s3server.py``); each access key is a gateway user that owns
    the bucket (the gateway has one owner per bucket: a bucket's second key takes it over from the first)."""

    def __init__(self, server: Any) -> None:
        self._server = server

    def bucket_url(self, name: str) -> str:
        return f"{self._server.endpoint}/{name}/"

    def create_bucket(self, name: str) -> None:
        self._server.create_bucket(name)

    def delete_bucket(self, name: str) -> None:
        client = self._server.client()
        for key in self._server.keys(name):
            client.delete_object(Bucket=name, Key=key)
        client.delete_bucket(Bucket=name)

    def has_objects(self, name: str) -> bool:
        return bool(self._server.keys(name))

    def access_key(self, name: str) -> tuple[str, str]:
        return self._server.bucket_user(name)  # type: ignore[no-any-return]

    def delete_access_key(self, name: str, access_key_id: str) -> None:
        self._server.delete_user(access_key_id)


@dataclasses.dataclass
class BucketRecord:
    region: str
    name: str
    bundle_id: str
    tags: dict[str, str]
    created_at: datetime.datetime
    keys: list[Params] = dataclasses.field(default_factory=list)
    """Access keys without their secrets (Lightsail shows a secret only once, when it is created)."""


class BucketOperations:
    """The bucket operations of ``LightsailState`` (which sets ``_buckets`` and ``bucket_backend``)."""

    _buckets: dict[tuple[str, str], BucketRecord]
    bucket_backend: BucketBackend

    def _operation(self, region: str, zone: str, resource: str, kind: str, operation_type: str) -> Params:
        raise NotImplementedError  # LightsailState records operations

    def _bucket(self, region: str, name: str) -> BucketRecord:
        record = self._buckets.get((region, name))
        if record is None:
            raise not_found("Bucket", name)
        return record

    def _bucket_view(self, record: BucketRecord) -> Params:
        url = self.bucket_backend.bucket_url(record.name)
        return {"resourceType": "Bucket", "name": record.name, "bundleId": record.bundle_id,
                "arn": f"arn:aws:lightsail:{record.region}:000000000000:Bucket/{record.name}",
                "createdAt": record.created_at, "url": url, "supportCode": f"local/{record.name}",
                "location": {"availabilityZone": "all", "regionName": record.region},
                "tags": [{"key": k, "value": v} for k, v in sorted(record.tags.items())],
                "objectVersioning": "NeverEnabled", "ableToUpdateBundle": True,
                "accessRules": {"getObject": "private", "allowPublicOverrides": False},
                "state": {"code": "OK"}}

    def op_CreateBucket(self, region: str, p: Params) -> Params:
        name = p["bucketName"]
        if p["bundleId"] not in BUNDLES:
            raise invalid(f"The bundle does not exist: {p['bundleId']}")
        if any(bucket_name == name for _, bucket_name in self._buckets):  # bucket names are global
            raise invalid(f"The bucket name is already in use: {name}")
        tags = checked_tags(p.get("tags", []))
        self.bucket_backend.create_bucket(name)
        record = BucketRecord(region, name, p["bundleId"], tags, now())
        self._buckets[(region, name)] = record
        return {"bucket": self._bucket_view(record),
                "operations": [self._operation(region, "all", name, "Bucket", "CreateBucket")]}

    def op_GetBuckets(self, region: str, p: Params) -> Params:
        if "bucketName" in p:
            return {"buckets": [self._bucket_view(self._bucket(region, p["bucketName"]))]}
        return {"buckets": [self._bucket_view(b) for (r, _), b in sorted(self._buckets.items()) if r == region]}

    def op_DeleteBucket(self, region: str, p: Params) -> Params:
        record = self._bucket(region, p["bucketName"])
        busy = record.keys or self.bucket_backend.has_objects(record.name)
        if busy and not p.get("forceDelete"):
            raise invalid("The bucket has access keys or objects; delete them first, or use forceDelete.")
        for key in record.keys:
            self.bucket_backend.delete_access_key(record.name, key["accessKeyId"])
        self.bucket_backend.delete_bucket(record.name)
        del self._buckets[(region, record.name)]
        return {"operations": [self._operation(region, "all", record.name, "Bucket", "DeleteBucket")]}

    def op_CreateBucketAccessKey(self, region: str, p: Params) -> Params:
        record = self._bucket(region, p["bucketName"])
        if len(record.keys) >= MAX_ACCESS_KEYS:
            raise invalid(f"A bucket can have at most {MAX_ACCESS_KEYS} access keys.")
        key_id, secret = self.bucket_backend.access_key(record.name)
        key = {"accessKeyId": key_id, "status": "Active", "createdAt": now()}
        record.keys.append(key)
        return {"accessKey": {**key, "secretAccessKey": secret},
                "operations": [self._operation(region, "all", record.name, "Bucket", "CreateBucketAccessKey")]}

    def op_GetBucketAccessKeys(self, region: str, p: Params) -> Params:
        return {"accessKeys": [dict(key) for key in self._bucket(region, p["bucketName"]).keys]}

    def op_DeleteBucketAccessKey(self, region: str, p: Params) -> Params:
        record = self._bucket(region, p["bucketName"])
        kept = [key for key in record.keys if key["accessKeyId"] != p["accessKeyId"]]
        if len(kept) == len(record.keys):
            raise not_found("AccessKey", "of bucket " + record.name)
        self.bucket_backend.delete_access_key(record.name, p["accessKeyId"])
        record.keys = kept
        return {"operations": [self._operation(region, "all", record.name, "Bucket", "DeleteBucketAccessKey")]}
