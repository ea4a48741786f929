"""A Lightsail bucket as a backup target (``spec.database.backup.target.lightsailBucket``): names and endpoints.

Owns: the bucket's default name (:func:`bucket_name`: readable, unique per instance through its uid, within
Lightsail's 54 characters), the name of the operator-owned Secret holding the bucket's access key
(:func:`key_secret_name`) and its keys, and the S3 endpoint a bucket's URL implies (:func:`s3_endpoint`: AWS's
virtual-hosted ``https://<bucket>.s3.<region>.amazonaws.com/`` or a path-style ``<endpoint>/<bucket>/``).
Must not: call Lightsail or S3, or name anything secret (the Secret's *name* only).
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse

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
