"""Lightsail object-storage buckets, through boto3: the bucket a ``lightsailBucket`` backup target names.

Owns: :class:`LightsailBuckets`: finding a bucket (``GetBuckets`` by name: its tags and URL), creating it with
tags (``CreateBucket``; the unique bucket name is the idempotency token, so a caller looks first and re-reads after
a failed create), listing its access key ids, creating an access key (``CreateBucketAccessKey``: the secret access
key is in that one answer only, and goes straight into :class:`~.aws.StaticCredentials`, never into a log or an
exception), deleting access keys and deleting the bucket with its objects (``forceDelete``). NotFound on delete
counts as done.
Must not: decide whether a bucket is ours (the runner checks the tags, with :mod:`~.ownership`), store the secret
access key anywhere, or know Kopf.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from o4o_operator.providers.aws import AwsClient, ClientSettings, CloudCallError, StaticCredentials
from o4o_operator.providers.lightsail import lightsail_tags

BUNDLE_ID = "small_1_0"
"""The smallest bucket plan (5 GB storage, 25 GB transfer a month in 2026's price list)."""


@dataclasses.dataclass(frozen=True)
class BucketFacts:
    name: str
    url: str
    """The bucket's URL (such as ``https://<name>.s3.<region>.amazonaws.com/``): its S3 endpoint derives from it."""
    tags: dict[str, str]
    arn: str | None = None


def _facts(bucket: Mapping[str, Any]) -> BucketFacts:
    return BucketFacts(name=str(bucket["name"]), url=str(bucket.get("url", "")), arn=bucket.get("arn"),
                       tags={str(t["key"]): str(t.get("value", "")) for t in bucket.get("tags", [])})


class LightsailBuckets:
    """The buckets of one Lightsail region."""

    def __init__(self, region: str, settings: ClientSettings) -> None:
        self.client = AwsClient("lightsail", region, settings)

    async def find(self, name: str) -> BucketFacts | None:
        try:
            found = await self.client.call("get_buckets", bucketName=name)
        except CloudCallError as error:
            if error.is_not_found:
                return None
            raise
        buckets = found.get("buckets") or []
        return _facts(buckets[0]) if buckets else None

    async def create(self, name: str, tags: Mapping[str, str]) -> BucketFacts:
        """Create the bucket; after a failure, the bucket if it exists after all (the call may have landed)."""
        try:
            made = await self.client.call("create_bucket", bucketName=name, bundleId=BUNDLE_ID,
                                          tags=lightsail_tags(tags))
        except CloudCallError:
            found = await self.find(name)
            if found is None:
                raise
            return found
        return _facts(made["bucket"])

    async def access_key_ids(self, name: str) -> list[str]:
        listed = await self.client.call("get_bucket_access_keys", bucketName=name)
        return [str(key["accessKeyId"]) for key in listed.get("accessKeys", [])]

    async def create_access_key(self, name: str) -> StaticCredentials:
        """A new access key of the bucket; its secret is shown this once (keep it, or it is lost)."""
        made = await self.client.call("create_bucket_access_key", bucketName=name)
        key = made["accessKey"]
        return StaticCredentials(access_key_id=str(key["accessKeyId"]), secret_access_key=str(key["secretAccessKey"]))

    async def delete_access_key(self, name: str, access_key_id: str) -> None:
        try:
            await self.client.call("delete_bucket_access_key", bucketName=name, accessKeyId=access_key_id)
        except CloudCallError as error:
            if not error.is_not_found:
                raise

    async def delete(self, name: str) -> None:
        """Delete the bucket, its objects and its access keys (``forceDelete``); gone already counts as done."""
        try:
            await self.client.call("delete_bucket", bucketName=name, forceDelete=True)
        except CloudCallError as error:
            if not error.is_not_found:
                raise
