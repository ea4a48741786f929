"""Object storage for backups: an S3-compatible bucket, spoken to with boto3's S3 client.

Owns: :class:`ObjectStore`, bound to one bucket and one key prefix: put, get, head, list, delete and the
object's metadata (set by copying the object onto itself), and presigned PUT and GET URLs for exactly one key,
which is all a server ever gets (it never sees the bucket's credentials). Every key it touches must lie under
its prefix: a key outside raises ``ValueError`` before any request, so that retention cannot reach another
instance's objects whatever it is handed.
Must not: decide which objects to keep (``pipeline/backups.py`` does), log a presigned URL (it is a bearer
credential for its object until it expires), or let boto3's exceptions out (:class:`~.aws.CloudCallError`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from typing import Any

from o4o_operator.pipeline.backups import StoredObject
from o4o_operator.providers.aws import AwsClient, ClientSettings, StaticCredentials, shared_pool

PRESIGNED_SECONDS = 900
"""How long a presigned URL stays valid: the dump and its upload must begin within it."""


@dataclasses.dataclass(frozen=True)
class StorageTarget:
    endpoint: str
    bucket: str
    region: str
    credentials: StaticCredentials = dataclasses.field(repr=False)


class ObjectStore:
    """One bucket, confined to ``prefix`` (which ends with ``/``)."""

    def __init__(self, target: StorageTarget, prefix: str, *, max_attempts: int = 3) -> None:
        if not prefix.endswith("/") or prefix.startswith("/") or "//" in prefix or ".." in prefix.split("/"):
            raise ValueError(f"an object store's prefix must be a relative folder ending in '/', not {prefix!r}")
        self.bucket = target.bucket
        self.prefix = prefix
        settings = ClientSettings(max_attempts=max_attempts, endpoint_url=target.endpoint.rstrip("/"),
                                  credentials=target.credentials)
        self.client = AwsClient("s3", target.region, settings)
        self.redact = self.client.redact

    def _own(self, key: str) -> str:
        if not key.startswith(self.prefix) or len(key) == len(self.prefix) or ".." in key.split("/"):
            raise ValueError(f"key {key!r} is not under this store's prefix {self.prefix!r}")
        return key

    async def put(self, key: str, body: bytes, metadata: dict[str, str] | None = None) -> None:
        await self.client.call("put_object", Bucket=self.bucket, Key=self._own(key), Body=body,
                               Metadata=metadata or {})

    async def get(self, key: str) -> bytes:
        response = await self.client.call("get_object", Bucket=self.bucket, Key=self._own(key))
        stream = response["Body"]
        loop = asyncio.get_running_loop()
        data: bytes = await loop.run_in_executor(shared_pool(), stream.read)
        return data

    async def head(self, key: str) -> dict[str, Any]:
        """``ContentLength`` and ``Metadata`` (lower-case names, without ``x-amz-meta-``) among others."""
        return await self.client.call("head_object", Bucket=self.bucket, Key=self._own(key))

    async def set_metadata(self, key: str, metadata: dict[str, str]) -> None:
        """Replace the object's user metadata (a copy onto itself: S3 has no other way)."""
        own = self._own(key)
        await self.client.call("copy_object", Bucket=self.bucket, Key=own, Metadata=metadata,
                               CopySource={"Bucket": self.bucket, "Key": own}, MetadataDirective="REPLACE")

    async def list(self) -> list[StoredObject]:
        """Every object under the prefix (all pages)."""
        found: list[StoredObject] = []
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
        while True:
            page = await self.client.call("list_objects_v2", **params)
            found.extend(StoredObject(item["Key"], int(item.get("Size", 0))) for item in page.get("Contents", ())
                         if str(item["Key"]).startswith(self.prefix))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return found
            params["ContinuationToken"] = token

    async def delete(self, key: str) -> None:
        await self.client.call("delete_object", Bucket=self.bucket, Key=self._own(key))

    async def presigned_put(self, key: str, seconds: int = PRESIGNED_SECONDS) -> str:
        """A URL that lets its holder PUT this one key (and nothing else) for ``seconds``. A secret: never log it."""
        return await self._presign("put_object", self._own(key), seconds)

    async def presigned_get(self, key: str, seconds: int = PRESIGNED_SECONDS) -> str:
        """A URL that lets its holder GET this one key for ``seconds``. A secret: never log it."""
        return await self._presign("get_object", self._own(key), seconds)

    async def _presign(self, operation: str, key: str, seconds: int) -> str:
        # Signing is local (no request), but the first use builds the client, which is slow: off the loop.
        blocking = functools.partial(self._blocking_presign, operation, key, seconds)
        return await asyncio.get_running_loop().run_in_executor(shared_pool(), blocking)

    def _blocking_presign(self, operation: str, key: str, seconds: int) -> str:
        url: str = self.client.blocking_client().generate_presigned_url(
            operation, Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds)
        return url
