"""providers/storage.py against a real S3-compatible server process (testing/s3server.py): objects under a
prefix, their metadata, presigned URLs that work for exactly one object, and a prefix nothing escapes."""

from __future__ import annotations

import datetime
import hashlib
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from o4o_operator.providers.aws import CloudCallError, StaticCredentials
from o4o_operator.providers.storage import ObjectStore, StorageTarget
from o4o_operator.testing.s3server import S3Server

BUCKET = "o4o-backups-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        server.create_bucket(BUCKET)
        yield server


def _store(s3: S3Server, prefix: str, secret: str | None = None) -> ObjectStore:
    credentials = StaticCredentials(s3.access_key_id, secret or s3.secret_access_key)
    return ObjectStore(StorageTarget(s3.endpoint, BUCKET, "us-east-1", credentials), prefix)


def _http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - the local test server
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def test_put_get_list_delete_under_the_prefix(s3: S3Server) -> None:
    store = _store(s3, "pfx/ns/a/uid-1/")
    other = _store(s3, "pfx/ns/a/uid-2/")
    await store.put("pfx/ns/a/uid-1/one.dump", b"first")
    await store.put("pfx/ns/a/uid-1/two.dump", b"second", {"sha256": "abc"})
    await other.put("pfx/ns/a/uid-2/one.dump", b"theirs")
    assert await store.get("pfx/ns/a/uid-1/one.dump") == b"first"
    assert sorted(item.key for item in await store.list()) == ["pfx/ns/a/uid-1/one.dump", "pfx/ns/a/uid-1/two.dump"]
    assert (await store.head("pfx/ns/a/uid-1/two.dump"))["Metadata"] == {"sha256": "abc"}
    await store.delete("pfx/ns/a/uid-1/one.dump")
    assert [item.key for item in await store.list()] == ["pfx/ns/a/uid-1/two.dump"]
    assert [item.key for item in await other.list()] == ["pfx/ns/a/uid-2/one.dump"]


async def test_metadata_is_replaced_in_place(s3: S3Server) -> None:
    store = _store(s3, "meta/x/")
    await store.put("meta/x/b.dump", b"payload")
    await store.set_metadata("meta/x/b.dump", {"backup-id": "20261206T120000Z-0123456789ab", "size": "7"})
    head = await store.head("meta/x/b.dump")
    assert head["Metadata"] == {"backup-id": "20261206T120000Z-0123456789ab", "size": "7"}
    assert int(head["ContentLength"]) == 7 and await store.get("meta/x/b.dump") == b"payload"


@pytest.mark.parametrize("key", ["elsewhere/x.dump", "pfx/ns/a/uid-1", "pfx/ns/a/uid-1/../uid-2/x.dump",
                                 "pfx/ns/a/uid-1/"])
async def test_a_key_outside_the_prefix_is_refused_before_any_request(s3: S3Server, key: str) -> None:
    store = _store(s3, "pfx/ns/a/uid-1/")
    for call in (store.delete(key), store.presigned_put(key), store.get(key)):
        with pytest.raises(ValueError, match="not under"):
            await call


async def test_a_presigned_put_and_get_work_for_exactly_their_object(s3: S3Server, tmp_path: Path) -> None:
    store = _store(s3, "signed/ns/n/uid/")
    body = b"PGDMP" + bytes(range(256)) * 64
    put_url = await store.presigned_put("signed/ns/n/uid/a.dump")
    assert s3.secret_access_key not in put_url
    assert _http("PUT", put_url, body)[0] == 200
    assert hashlib.sha256(await store.get("signed/ns/n/uid/a.dump")).digest() == hashlib.sha256(body).digest()
    get_url = await store.presigned_get("signed/ns/n/uid/a.dump")
    assert _http("GET", get_url) == (200, body)
    # The same signature for another key, or another method, is refused.
    assert _http("PUT", put_url.replace("/a.dump", "/b.dump"), b"x")[0] == 403
    assert _http("GET", put_url)[0] == 403
    assert [item.key for item in await store.list()] == ["signed/ns/n/uid/a.dump"]


def _wait_until_expired(url: str) -> None:
    """Until the wall clock is past the URL's own X-Amz-Date + X-Amz-Expires (the condition is time itself)."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    signed = datetime.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    expiry = signed + datetime.timedelta(seconds=int(query["X-Amz-Expires"][0]) + 1)
    while datetime.datetime.now(datetime.UTC) <= expiry:
        time.sleep(0.1)


async def test_an_expired_presigned_url_is_refused(s3: S3Server) -> None:
    store = _store(s3, "expired/")
    url = await store.presigned_put("expired/a.dump", seconds=1)
    _wait_until_expired(url)
    assert _http("PUT", url, b"late")[0] == 403


async def test_wrong_credentials_are_a_credentials_error(s3: S3Server) -> None:
    store = _store(s3, "creds/", secret="not-the-secret")
    with pytest.raises(CloudCallError) as raised:
        await store.list()
    assert raised.value.code in ("SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId")
    assert raised.value.to_stage_error().reason == "CloudCredentialsRejected"
