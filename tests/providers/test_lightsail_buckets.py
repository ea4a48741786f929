"""Lightsail buckets: the local endpoint's CreateBucket, GetBuckets, DeleteBucket and access keys (on botocore's
model), with the objects really held by the test world's S3 server; and providers/lightsail_buckets.py on them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from o4o_operator.pipeline.backup_buckets import s3_endpoint
from o4o_operator.providers.aws import ClientSettings, StaticCredentials
from o4o_operator.providers.lightsail_buckets import LightsailBuckets
from o4o_operator.testing import LocalLightsail
from o4o_operator.testing.lightsail_buckets import S3ServerBuckets
from o4o_operator.testing.s3server import S3Server

REGION = "eu-west-2"
TAGS = [{"key": "o4o.io/uid", "value": "uid-1"}]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def local(s3: S3Server) -> Iterator[LocalLightsail]:
    with LocalLightsail() as lightsail:
        lightsail.hold_buckets_in(S3ServerBuckets(s3))
        yield lightsail
        assert lightsail.protocol_errors == []


CLIENTS: list[Any] = []
"""Every client a test made, closed after it (their kept-alive sockets would warn in another test)."""


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while CLIENTS:
        CLIENTS.pop().close()


def _kept(client: Any) -> Any:
    CLIENTS.append(client)
    return client


def _lightsail(local: LocalLightsail) -> Any:
    return _kept(boto3.client("lightsail", region_name=REGION, endpoint_url=local.endpoint_url,
                        aws_access_key_id="AKIAO4OLOCALTESTKEY1", aws_secret_access_key="local-secret"))


def _s3_with(endpoint: str, key: dict[str, str]) -> Any:
    return _kept(boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              config=botocore.config.Config(s3={"addressing_style": "path"}),
                              aws_access_key_id=key["accessKeyId"], aws_secret_access_key=key["secretAccessKey"]))


def _code(caught: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(caught.value.response["Error"]["Code"])


def test_a_bucket_is_made_in_the_s3_server_and_its_access_key_writes_there(local: LocalLightsail,
                                                                            s3: S3Server) -> None:
    lightsail = _lightsail(local)
    made = lightsail.create_bucket(bucketName="shop-backups-1", bundleId="small_1_0", tags=TAGS)["bucket"]
    assert made["tags"] == TAGS and made["url"] == f"{s3.endpoint}/shop-backups-1/"
    [listed] = lightsail.get_buckets(bucketName="shop-backups-1")["buckets"]
    assert listed["name"] == "shop-backups-1" and listed["url"] == made["url"]
    key = lightsail.create_bucket_access_key(bucketName="shop-backups-1")["accessKey"]
    assert key["status"] == "Active" and key["secretAccessKey"]
    # The secret is shown once: the listing has the id only.
    [shown] = lightsail.get_bucket_access_keys(bucketName="shop-backups-1")["accessKeys"]
    assert shown["accessKeyId"] == key["accessKeyId"] and "secretAccessKey" not in shown
    bucket_s3 = _s3_with(s3_endpoint(made["url"], "shop-backups-1"), key)
    bucket_s3.put_object(Bucket="shop-backups-1", Key="o4o/one.dump", Body=b"PGDMP")
    assert s3.keys("shop-backups-1") == ["o4o/one.dump"]

    # Objects and keys: refused without forceDelete; with it, the bucket is gone from the S3 server too.
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        lightsail.delete_bucket(bucketName="shop-backups-1")
    assert _code(caught) == "InvalidInputException"
    lightsail.delete_bucket(bucketName="shop-backups-1", forceDelete=True)
    assert "shop-backups-1" not in [b["Name"] for b in s3.client().list_buckets()["Buckets"]]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        lightsail.get_buckets(bucketName="shop-backups-1")
    assert _code(caught) == "NotFoundException"


def test_a_buckets_key_reaches_that_bucket_only_and_dies_with_the_bucket(local: LocalLightsail,
                                                                          s3: S3Server) -> None:
    lightsail = _lightsail(local)
    urls = {name: lightsail.create_bucket(bucketName=name, bundleId="small_1_0")["bucket"]["url"]
            for name in ("tenant-a", "tenant-b")}
    key_a = lightsail.create_bucket_access_key(bucketName="tenant-a")["accessKey"]
    key_b = lightsail.create_bucket_access_key(bucketName="tenant-b")["accessKey"]
    assert key_a["accessKeyId"] != key_b["accessKeyId"]
    as_a = _s3_with(s3_endpoint(urls["tenant-a"], "tenant-a"), key_a)
    as_b = _s3_with(s3_endpoint(urls["tenant-b"], "tenant-b"), key_b)
    as_b.put_object(Bucket="tenant-b", Key="b.dump", Body=b"theirs")
    as_a.put_object(Bucket="tenant-a", Key="a.dump", Body=b"ours")
    for call in (lambda: as_a.get_object(Bucket="tenant-b", Key="b.dump"),
                 lambda: as_a.put_object(Bucket="tenant-b", Key="b.dump", Body=b"overwritten"),
                 lambda: as_a.list_objects_v2(Bucket="tenant-b")):
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            call()
        assert _code(caught) == "AccessDenied"
    assert s3.client().get_object(Bucket="tenant-b", Key="b.dump")["Body"].read() == b"theirs"
    lightsail.delete_bucket_access_key(bucketName="tenant-a", accessKeyId=key_a["accessKeyId"])
    with pytest.raises(botocore.exceptions.ClientError):
        as_a.get_object(Bucket="tenant-a", Key="a.dump")
    for name in urls:
        lightsail.delete_bucket(bucketName=name, forceDelete=True)


def test_names_are_unique_and_a_bucket_has_at_most_two_keys(local: LocalLightsail) -> None:
    lightsail = _lightsail(local)
    lightsail.create_bucket(bucketName="twice", bundleId="small_1_0")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        lightsail.create_bucket(bucketName="twice", bundleId="small_1_0")
    assert _code(caught) == "InvalidInputException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        lightsail.create_bucket(bucketName="Not_A_Bucket", bundleId="small_1_0")  # botocore refuses it too
    lightsail.create_bucket_access_key(bucketName="twice")
    lightsail.create_bucket_access_key(bucketName="twice")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        lightsail.create_bucket_access_key(bucketName="twice")
    assert _code(caught) == "InvalidInputException"
    lightsail.delete_bucket(bucketName="twice", forceDelete=True)


async def test_the_provider_finds_creates_keys_and_deletes(local: LocalLightsail) -> None:
    settings = ClientSettings(endpoint_url=local.endpoint_url, max_attempts=2,
                              credentials=StaticCredentials("AKIAO4OLOCALTESTKEY1", "local-secret"))
    buckets = LightsailBuckets(REGION, settings)
    assert await buckets.find("prov-bucket") is None
    made = await buckets.create("prov-bucket", {"o4o.io/uid": "uid-9"})
    assert made.tags == {"o4o.io/uid": "uid-9"}
    again = await buckets.create("prov-bucket", {"o4o.io/uid": "uid-9"})  # exists: the re-read answers
    assert again.name == "prov-bucket"
    credentials = await buckets.create_access_key("prov-bucket")
    assert credentials.secret_access_key not in repr(credentials)
    assert await buckets.access_key_ids("prov-bucket") == [credentials.access_key_id]
    await buckets.delete_access_key("prov-bucket", credentials.access_key_id)
    assert await buckets.access_key_ids("prov-bucket") == []
    await buckets.delete("prov-bucket")
    await buckets.delete("prov-bucket")  # gone already: done
    assert await buckets.find("prov-bucket") is None
