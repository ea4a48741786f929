"""The Lightsail bucket as a backup target (runner/backup_bucket.py), with a fake bucket API and fake Secrets: made
with our tags and recorded in the inventory (``Pending`` in a written checkpoint before ``CreateBucket``, so a crash
between the two leaks nothing; ``Present`` once made), its access key kept in the operator-owned Secret and reused,
a key the Secret lost replaced, and someone else's bucket or Secret refused naming what to change. The real
Lightsail API (local, on botocore's model) is tests/providers/test_lightsail_buckets.py's; e2e runs it all."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from stage_fakes import (
    FakeKube,
    RecordingConnector,
    RecordingSession,
    make_context,
    make_runtime,
    spec_body,
    static_resolver,
)

from o4o_operator.errors import InvalidSpecError
from o4o_operator.models import DeploymentInstanceStatus
from o4o_operator.models_inventory import ItemKind, ItemState
from o4o_operator.pipeline.ambient_grants import AmbientGrants
from o4o_operator.providers.aws import StaticCredentials
from o4o_operator.providers.lightsail_buckets import BucketFacts
from o4o_operator.runner import backup_bucket
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.testing.stage_driver import StageDriver

TARGET = {"lightsailBucket": {"name": "shop-backups", "region": "eu-west-2"}}
SPEC = spec_body(database={"backup": {"target": TARGET}})
SECRET = "s3cr3t-bucket-key-value"


class FakeBuckets:
    buckets: dict[str, BucketFacts] = {}
    keys: dict[str, list[str]] = {}
    made = 0

    def __init__(self, region: str, settings: Any) -> None:
        self.region = region

    async def find(self, name: str) -> BucketFacts | None:
        return self.buckets.get(name)

    async def create(self, name: str, tags: dict[str, str]) -> BucketFacts:
        self.buckets[name] = BucketFacts(name, f"https://{name}.s3.{self.region}.amazonaws.com/", dict(tags),
                                         f"arn:aws:lightsail:{self.region}:1:Bucket/{name}")
        return self.buckets[name]

    async def access_key_ids(self, name: str) -> list[str]:
        return list(self.keys.get(name, []))

    async def create_access_key(self, name: str) -> StaticCredentials:
        type(self).made += 1
        key_id = f"AKIAFAKE{type(self).made:012d}"
        self.keys.setdefault(name, []).append(key_id)
        return StaticCredentials(key_id, f"{SECRET}-{type(self).made}")

    async def delete_access_key(self, name: str, access_key_id: str) -> None:
        self.keys[name].remove(access_key_id)

    deleted: list[str] = []

    async def delete(self, name: str) -> None:
        self.deleted.append(name)


@pytest.fixture(autouse=True)
def buckets(monkeypatch: pytest.MonkeyPatch) -> type[FakeBuckets]:
    FakeBuckets.buckets, FakeBuckets.keys, FakeBuckets.made, FakeBuckets.deleted = {}, {}, 0, []
    monkeypatch.setattr(backup_bucket, "LightsailBuckets", FakeBuckets)
    return FakeBuckets


GRANTS = AmbientGrants.parse("team=example.com", "O4O_AMBIENT_GRANTS")


def _driver(kube: FakeKube, *, granted: bool = True, status: DeploymentInstanceStatus | None = None) -> StageDriver:
    runtime = make_runtime(kube, RecordingConnector(RecordingSession({})), static_resolver({}))
    if granted:  # the namespace may use the operator's own identity (an existing host has no credentials)
        runtime.settings = dataclasses.replace(runtime.settings, ambient_grants=GRANTS)
    return make_context(runtime, SPEC, status or DeploymentInstanceStatus())


def _instance(kube: FakeKube, *, granted: bool = True) -> InstanceContext:
    return _driver(kube, granted=granted).instance


async def _target(instance: InstanceContext) -> Any:
    spec = instance.spec.database.backup
    assert spec is not None and spec.target.lightsail_bucket is not None
    return await backup_bucket.storage_target(instance, spec.target.lightsail_bucket)


async def test_the_bucket_is_made_ours_recorded_and_its_key_kept_in_the_owned_secret(
        buckets: type[FakeBuckets]) -> None:
    kube = FakeKube()
    instance = _instance(kube)
    target = await _target(instance)
    assert (target.endpoint, target.bucket, target.region) == ("https://s3.eu-west-2.amazonaws.com",
                                                               "shop-backups", "eu-west-2")
    assert buckets.buckets["shop-backups"].tags["o4o.io/uid"] == "uid-1"
    [item] = instance.take_learned()["inventory"]
    assert (item.kind, item.name, item.state, item.value) == (
        ItemKind.BUCKET, "shop-backups", ItemState.PRESENT, "https://shop-backups.s3.eu-west-2.amazonaws.com/")
    assert item.access is not None and item.access.region == "eu-west-2"
    stored = kube.secrets["shop-backup-bucket"]
    assert stored == {"bucket": "shop-backups", "accessKeyId": target.credentials.access_key_id,
                      "secretAccessKey": f"{SECRET}-1"} and kube.owners["shop-backup-bucket"] == "uid-1"
    assert SECRET not in instance.log.full_text and SECRET not in repr(target)

    # The next backup reuses the key; one the Secret no longer holds is useless: deleted, and a new one made.
    again = await _target(_instance(kube))
    assert again.credentials == target.credentials and buckets.made == 1
    kube.secrets["shop-backup-bucket"] = {**stored, "secretAccessKey": ""}
    replaced = await _target(_instance(kube))
    assert buckets.made == 2 and buckets.keys["shop-backups"] == [replaced.credentials.access_key_id]
    assert kube.secrets["shop-backup-bucket"]["secretAccessKey"] == f"{SECRET}-2"


async def test_the_bucket_is_listed_pending_in_a_written_checkpoint_before_it_is_made(
        buckets: type[FakeBuckets], monkeypatch: pytest.MonkeyPatch) -> None:
    driver = _driver(FakeKube())
    written_before_create: list[DeploymentInstanceStatus] = []
    create = FakeBuckets.create

    async def recording_create(self: FakeBuckets, name: str, tags: dict[str, str]) -> BucketFacts:
        written_before_create.extend(driver.checkpoints)
        return await create(self, name, tags)

    monkeypatch.setattr(FakeBuckets, "create", recording_create)
    await _target(driver.instance)
    [written] = written_before_create
    [intent] = written.inventory
    assert (intent.kind, intent.name, intent.state) == (ItemKind.BUCKET, "shop-backups", ItemState.PENDING)
    assert intent.access is not None and intent.access.region == "eu-west-2"  # teardown can reach it from this
    [made] = driver.status.inventory
    assert (made.name, made.state, made.cloud_id) == ("shop-backups", ItemState.PRESENT,
                                                      "arn:aws:lightsail:eu-west-2:1:Bucket/shop-backups")

    # After a crash between CreateBucket and the next write: the next backup finds the bucket by name and
    # confirms the intent, making nothing and writing no intent again.
    after_crash = _driver(FakeKube(), status=written)
    await _target(after_crash.instance)
    assert after_crash.checkpoints == [] and len(buckets.buckets) == 1
    [confirmed] = after_crash.status.inventory
    assert (confirmed.state, confirmed.value) == (ItemState.PRESENT, buckets.buckets["shop-backups"].url)


async def test_the_worker_writes_the_buckets_intent_to_the_api_before_create_bucket(
        buckets: type[FakeBuckets], monkeypatch: pytest.MonkeyPatch) -> None:
    from test_backup_requests import _worker

    from o4o_operator.models_database import BackupRequestStatus, LightsailBucketTarget
    from o4o_operator.runner import backup_step

    worker, body = await _worker(stalled=False, request="r-1")
    worker.runtime.settings = dataclasses.replace(worker.runtime.settings, ambient_grants=GRANTS)
    kube = worker.runtime.kube
    assert isinstance(kube, FakeKube)
    patched_before_create: list[dict[str, Any]] = []
    create = FakeBuckets.create

    async def recording_create(self: FakeBuckets, name: str, tags: dict[str, str]) -> BucketFacts:
        patched_before_create.extend(kube.status_patches)
        return await create(self, name, tags)

    async def backup_into_a_bucket(instance: InstanceContext, request_id: str) -> dict[str, Any]:
        await backup_bucket.storage_target(instance, LightsailBucketTarget(name="shop-backups", region="eu-west-2"))
        return {"database.backup_request": BackupRequestStatus(id=request_id, outcome="Succeeded",
                                                                time="2026-01-01T00:00:00Z", backup_id="b")}

    monkeypatch.setattr(FakeBuckets, "create", recording_create)
    monkeypatch.setattr(backup_step, "run_requested", backup_into_a_bucket)
    await worker.step(body)
    listed = [item for patch in patched_before_create for item in patch.get("inventory") or []
              if item.get("kind") == "Bucket"]
    assert [(item["name"], item["state"]) for item in listed] == [("shop-backups", "Pending")]
    [made] = [item for item in worker.status.inventory if item.kind is ItemKind.BUCKET]
    assert made.state is ItemState.PRESENT


async def test_someone_elses_bucket_or_secret_is_refused_naming_what_to_change(buckets: type[FakeBuckets]) -> None:
    buckets.buckets["shop-backups"] = BucketFacts("shop-backups", "https://x/", {"o4o.io/uid": "another-uid"})
    with pytest.raises(InvalidSpecError) as caught:
        await _target(_instance(FakeKube()))
    assert caught.value.reason == "BucketNotOurs"
    assert caught.value.message.startswith("spec.database.backup.target.lightsailBucket:")

    buckets.buckets.clear()
    kube = FakeKube({"shop-backup-bucket": {"note": "mine"}})
    with pytest.raises(InvalidSpecError) as caught:
        await _target(_instance(kube))
    assert caught.value.reason == "SecretNameTaken" and kube.secrets["shop-backup-bucket"] == {"note": "mine"}


def _body_with_bucket(policy: str, state: ItemState = ItemState.PRESENT) -> dict[str, Any]:
    from stage_fakes import instance_body

    from o4o_operator.models_inventory import CloudAccess, InventoryItem

    item = InventoryItem(kind=ItemKind.BUCKET, name="shop-backups", state=state,
                         access=CloudAccess(region="eu-west-2"), value="https://shop-backups.s3.eu-west-2.x/")
    body = instance_body({**SPEC, "deletionPolicy": policy},
                         DeploymentInstanceStatus(inventory=(item,)).to_body())
    body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return body


@pytest.mark.parametrize("policy", ["Delete", "Retain"])
async def test_teardown_deletes_the_bucket_and_its_secret_unless_retained(buckets: type[FakeBuckets],
                                                                          policy: str) -> None:
    from o4o_operator.runner.teardown import teardown

    deleted = buckets.deleted
    buckets.buckets["shop-backups"] = BucketFacts("shop-backups", "https://x/", {"o4o.io/uid": "uid-1"})
    kube = FakeKube({"ssh-key": {"ssh-privatekey": "k"}, "shop-backup-bucket": {"secretAccessKey": SECRET}})
    kube.owners["shop-backup-bucket"] = "uid-1"
    runtime = make_runtime(kube, RecordingConnector(RecordingSession({})), static_resolver({}))
    message = await teardown(runtime, _body_with_bucket(policy))
    if policy == "Delete":
        assert deleted == ["shop-backups"] and "bucket shop-backups" in message
        assert "shop-backup-bucket" not in kube.secrets
    else:
        assert deleted == [] and kube.secrets["shop-backup-bucket"] == {"secretAccessKey": SECRET}
        assert "shop-backup-bucket" not in kube.owners  # released: no garbage collector takes it


@pytest.mark.parametrize("made", [True, False])
async def test_teardown_deletes_a_pending_bucket_if_it_exists(buckets: type[FakeBuckets], made: bool) -> None:
    """The intent of a bucket whose CreateBucket may have landed before a crash: deleted if it is there (and
    ours), and nothing else to do if it is not."""
    from o4o_operator.runner.teardown import teardown

    if made:
        buckets.buckets["shop-backups"] = BucketFacts("shop-backups", "https://x/", {"o4o.io/uid": "uid-1"})
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), static_resolver({}))
    message = await teardown(runtime, _body_with_bucket("Delete", ItemState.PENDING))
    assert buckets.deleted == (["shop-backups"] if made else [])
    assert ("bucket shop-backups" in message) is made


async def test_teardown_leaves_a_bucket_that_is_no_longer_ours(buckets: type[FakeBuckets]) -> None:
    from o4o_operator.runner.teardown import teardown

    deleted = buckets.deleted
    buckets.buckets["shop-backups"] = BucketFacts("shop-backups", "https://x/", {"o4o.io/uid": "someone-else"})
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), static_resolver({}))
    message = await teardown(runtime, _body_with_bucket("Delete"))
    assert deleted == [] and "nothing of bucket shop-backups, which is not ours" in message


async def test_the_operators_own_identity_makes_no_bucket_for_a_namespace_not_granted_it(
        buckets: type[FakeBuckets]) -> None:
    """An existing host has no Lightsail credentials of its own: the bucket would be made with the operator's
    identity, which ``O4O_AMBIENT_GRANTS`` (none by default) must allow first."""
    instance = _instance(FakeKube(), granted=False)
    with pytest.raises(InvalidSpecError) as caught:
        await _target(instance)
    assert caught.value.reason == "AmbientIdentityNotGranted" and buckets.buckets == {}
    assert caught.value.message.startswith("spec.database.backup.target.lightsailBucket:")
