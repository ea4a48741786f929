"""A Lightsail bucket as a backup target (``spec.database.backup.target.lightsailBucket``): names and endpoints.

Owns: the bucket's default name (:func:`bucket_name`: readable, unique per instance through its uid, within
Lightsail's 54 characters), the name of the operator-owned Secret holding the bucket's access key
(:func:`key_secret_name`) and its keys, the S3 endpoint a bucket's URL implies (:func:`s3_endpoint`: AWS's
virtual-hosted ``https://<bucket>.s3.<region>.amazonaws.com/`` or a path-style ``<endpoint>/<bucket>/``), and
whether a clone may read another instance's bucket with the key that instance's Secret holds
(:func:`source_bucket`).
Must not: call Lightsail or S3, or name anything secret (the Secret's *name* only).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import urllib.parse
from collections.abc import Iterable, Mapping

from o4o_operator.errors import InvalidSpecError, TransientError
from o4o_operator.models_inventory import InventoryItem, ItemKind, ItemState, find_item

MAX_BUCKET_NAME = 54
KEY_SECRET_SUFFIX = "-backup-bucket"  # noqa: S105 - a name suffix, not a secret
ACCESS_KEY_ID_KEY = "accessKeyId"
SECRET_ACCESS_KEY_KEY = "secretAccessKey"  # noqa: S105 - a key name, not a secret
BUCKET_KEY = "bucket"
"""Beside the key pair: the bucket it belongs to (a key of another bucket is not used)."""


def bucket_name(namespace: str, name: str, uid: str) -> str:
    """``o4o-<namespace>-<name>`` shortened, then ``-<10 hex of the uid's hash>``: a new instance of the same name
    (another uid) gets another bucket, and a retained one is never taken over."""
    digest = hashlib.sha256(uid.encode()).hexdigest()[:10]
    readable = re.sub(r"[^a-z0-9-]+", "-", f"o4o-{namespace}-{name}".lower())
    readable = re.sub(r"-+", "-", readable)[:MAX_BUCKET_NAME - len(digest) - 1].strip("-")
    return f"{readable}-{digest}"


def key_secret_name(instance_name: str) -> str:
    """The operator-owned Secret holding the bucket's access key: ``<metadata.name>-backup-bucket``."""
    return instance_name + KEY_SECRET_SUFFIX


def s3_endpoint(url: str, bucket: str) -> str:
    """The S3 endpoint (scheme, host, port) of a bucket whose URL is ``url``; ``ValueError`` if it names another
    bucket or none."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.netloc
    if parsed.scheme not in ("http", "https") or not host:
        raise ValueError(f"the bucket's URL {url!r} is not an http(s) URL")
    if host.startswith(bucket + "."):
        return f"{parsed.scheme}://{host[len(bucket) + 1:]}"
    if parsed.path.strip("/").split("/")[0] == bucket:
        return f"{parsed.scheme}://{host}"
    raise ValueError(f"the bucket's URL {url!r} does not name bucket {bucket!r}")


@dataclasses.dataclass(frozen=True)
class SourceBucket:
    """The bucket a clone reads its source's backups from: its name and S3 endpoint."""

    name: str
    endpoint: str


def source_bucket(field: str, where: str, expected: str, inventory: Iterable[InventoryItem], secret_name: str,
                  secret: Mapping[str, str] | None, secret_owner: str | None, source_uid: str) -> SourceBucket:
    """The Lightsail bucket the operator made for a clone's source instance (``where``): the bucket ``expected``
    as the source's ``status.inventory`` lists it made (its URL gives the endpoint), read with the access key of
    the source's operator-owned Secret ``secret_name``, only when that Secret is the operator's for that very
    instance (``secret_owner``: its owner's uid) and holds that bucket's key. A bucket not made yet has no backups
    (``BackupNotFound``); a Secret that does not hold its key is ``RestoreUnavailable`` (the source's next backup
    makes one). Never names a value of the Secret."""
    item = find_item(inventory, ItemKind.BUCKET, expected)
    if item is None or item.state is not ItemState.PRESENT or not item.value:
        raise InvalidSpecError(field, f"instance {where} has made no backup bucket yet ({expected} is not listed "
                               "made in its status.inventory), so it has no backups to clone",
                               reason="BackupNotFound")
    held = secret or {}
    if secret_owner != source_uid or held.get(BUCKET_KEY) != expected or not held.get(ACCESS_KEY_ID_KEY) \
            or not held.get(SECRET_ACCESS_KEY_KEY):
        raise InvalidSpecError(field, f"the Secret {secret_name} of instance {where} does not hold the access key "
                               f"of its backup bucket {expected} (the operator keeps it there for that instance, "
                               "and makes a new one at its next backup); then change this spec to look again",
                               reason="RestoreUnavailable")
    try:
        endpoint = s3_endpoint(item.value, expected)
    except ValueError as error:
        raise TransientError("BucketUnreachable", f"{field}: {error}") from error
    return SourceBucket(expected, endpoint)
