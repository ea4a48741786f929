"""Scheduled backups into a Lightsail bucket the operator makes, in the local world.

The operator creates the bucket through the local Lightsail (which makes it in the real S3 server), keeps the
bucket's access key in its own Secret, and backs up before the first migration run. The test world's operator
runs on a clock the test moves (``O4O_TEST_CLOCK_FILE``, honoured only by ``testing/operator_main``), so the
schedule's window comes without waiting for it: the backup fires once, and windows missed meanwhile take one
catch-up backup. Deleting the instance deletes the bucket, its objects and the key's Secret.

Another instance's Lightsail bucket is a clone's source: the operator reads it with the key in the source's own
Secret and hands the clone's host a presigned URL only; a backup retention pruned (its record left status with it)
stalls the clone ``BackupNotFound`` until its spec names another.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import dump, module_namespaces, wait_for

from o4o_operator.pipeline.backup_buckets import bucket_name, key_secret_name
from o4o_operator.pipeline.restore import CLONE_GRANT_ANNOTATION
from o4o_operator.rendering.env_values import database_identifier
from o4o_operator.rendering.host_context import instance_user
from o4o_operator.testing import ControlPlane
from o4o_operator.testing.lightsail_buckets import S3ServerBuckets
from o4o_operator.testing.s3server import S3Server
from o4o_operator.testing.world import LocalWorld

DELETION_TIMEOUT = 150


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="module")
def clock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clock") / "offset-seconds"
    path.write_text("0")
    return path


@pytest.fixture(scope="module")
def world(control_plane: ControlPlane, s3: S3Server, clock_file: Path) -> Iterator[LocalWorld]:
    """This module's own world: its operator reads the clock file, its Lightsail keeps buckets in ``s3``."""
    with LocalWorld(control_plane, namespaces=module_namespaces(__name__),
                    operator_env={"O4O_TEST_CLOCK_FILE": str(clock_file)}) as local_world:
        local_world.lightsail.hold_buckets_in(S3ServerBuckets(s3))
        yield local_world


def _move_clock_to(clock_file: Path, moment: datetime.datetime) -> None:
    offset = (moment - datetime.datetime.now(datetime.UTC)).total_seconds()
    clock_file.write_text(f"{offset:.3f}")


def _parse(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _wake(world: LocalWorld, namespace: str, name: str, value: str) -> None:
    """A change of the object wakes its worker at once (it would otherwise sleep until the real window)."""
    world.control_plane.kubectl("annotate", "di", name, "-n", namespace, "--overwrite", f"example.com/touch={value}")


def _scheduled(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in obj["status"]["database"].get("backups", []) if r["reason"] == "schedule"]


def _objects(record: dict[str, Any]) -> list[str]:
    """A backup's two objects: its dump and the uploads beside it."""
    return sorted([record["key"], record["uploads"]["key"]])


def test_a_schedule_fires_into_a_lightsail_bucket_that_teardown_deletes(
        world: LocalWorld, namespace: str, s3: S3Server, clock_file: Path) -> None:
    name = "sched"
    world.create_secrets(namespace)
    world.apply(world.manifest(name, namespace, apps=(), database={"backup": {
        "target": {"lightsailBucket": {"prefix": "o4o"}}, "schedule": "0 3 * * *", "retention": {"count": 5}}}))
    first = wait_for(world, namespace, name, "condition=Ready", timeout=200)
    uid = first["metadata"]["uid"]
    bucket = bucket_name(namespace, name, uid)
    database = first["status"]["database"]
    [migration] = database["backups"]
    assert migration["reason"] == "migration" and migration["key"].startswith(f"o4o/{namespace}/{name}/{uid}/")
    assert sorted(s3.keys(bucket)) == _objects(migration)
    [item] = [i for i in first["status"]["inventory"] if i["kind"] == "Bucket"]
    assert item["name"] == bucket and item["state"] == "Present"
    secret = json.loads(world.control_plane.kubectl("get", "secret", key_secret_name(name), "-n", namespace,
                                                    "-o", "json").stdout)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == uid
    key_secret = base64.b64decode(secret["data"]["secretAccessKey"]).decode()
    assert key_secret != s3.secret_access_key  # the bucket's own key (a gateway user owning that bucket only)
    assert world.operator is not None
    assert key_secret not in json.dumps(first) and key_secret not in world.operator.output()
    window = _parse(database["nextScheduledBackup"])
    assert (window.hour, window.minute) == (3, 0) and database["backupSchedule"] == "0 3 * * *"

    # The window comes (the operator's clock moves past it): one scheduled backup, and the next window is a day on.
    _move_clock_to(clock_file, window + datetime.timedelta(seconds=30))
    _wake(world, namespace, name, "1")
    following = (window + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fired = wait_for(world, namespace, name, "jsonpath={.status.database.nextScheduledBackup}=" + following)
    assert fired["status"]["database"]["lastScheduledBackup"]["outcome"] == "Succeeded", dump(fired["status"])
    [scheduled] = _scheduled(fired)
    assert fired["status"]["database"]["lastScheduledBackup"]["backupId"] == scheduled["id"]
    assert sorted(s3.keys(bucket)) == sorted(_objects(migration) + _objects(scheduled))

    # Three windows pass while nothing looks (as if the operator were down): one catch-up backup, not three.
    later = window + datetime.timedelta(days=3, hours=9)
    _move_clock_to(clock_file, later)
    _wake(world, namespace, name, "2")
    after = (window + datetime.timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    caught_up = wait_for(world, namespace, name, "jsonpath={.status.database.nextScheduledBackup}=" + after)
    _wake(world, namespace, name, "3")
    caught_up = wait_for(world, namespace, name, "condition=Ready")
    assert len(_scheduled(caught_up)) == 2, dump(caught_up["status"])
    assert len(s3.keys(bucket)) == 3 * 2  # three backups, each a dump and its uploads

    # Teardown deletes the bucket with its objects, and the access key's Secret.
    world.control_plane.kubectl("delete", "di", name, "-n", namespace, f"--timeout={DELETION_TIMEOUT}s",
                                timeout=DELETION_TIMEOUT + 30)
    assert bucket not in [b["Name"] for b in s3.client().list_buckets()["Buckets"]]
    assert world.lightsail.state.handle("us-east-1", "GetBuckets", {}) == {"buckets": []}
    left = world.control_plane.kubectl("get", "secret", key_secret_name(name), "-n", namespace, check=False)
    assert left.returncode != 0 and "NotFound" in left.stderr


def _tables(world: LocalWorld, obj: dict[str, Any]) -> list[str]:
    meta = obj["metadata"]
    host = world.fleet.host_for(obj["status"]["server"]["name"])
    name = database_identifier(instance_user(meta["namespace"], meta["name"]))
    return sorted(host.shim_state()["postgres"].get("tables", {}).get(name, []))


def test_a_clone_reads_a_lightsail_bucket_source_and_a_pruned_backup_stalls_it(
        world: LocalWorld, namespace: str, s3: S3Server) -> None:
    name = "origin"
    world.create_secrets(namespace)
    world.apply(world.manifest(name, namespace, apps=(), database={"backup": {
        "target": {"lightsailBucket": {"prefix": "o4o"}}, "retention": {"count": 1}}}))
    ready = wait_for(world, namespace, name, "condition=Ready", timeout=200)
    [migration] = ready["status"]["database"]["backups"]
    bucket = bucket_name(namespace, name, ready["metadata"]["uid"])
    world.fleet.host_for(ready["status"]["server"]["name"]).edit_tables(
        database_identifier(instance_user(namespace, name)), create=("public.catalog",))
    world.control_plane.kubectl("annotate", "di", name, "-n", namespace, "deploy.o4o.io/backup-request=seed")
    seeded = wait_for(world, namespace, name, "jsonpath={.status.database.backupRequest.outcome}=Succeeded")
    seed = seeded["status"]["database"]["backupRequest"]["backupId"]
    assert [r["id"] for r in seeded["status"]["database"]["backups"]] == [seed]  # the pruned one's record left
    kept = sorted(key.rsplit("/", 1)[1] for key in s3.keys(bucket))
    assert kept == [f"{seed}.dump", f"{seed}.uploads.tar.gz"]  # retention (count 1) pruned it

    other = f"{namespace[:58]}-copy"
    world.control_plane.create_namespace(other)
    world.create_secrets(other)
    world.control_plane.kubectl("annotate", "di", name, "-n", namespace, f"{CLONE_GRANT_ANNOTATION}={other}")
    clone = world.manifest("copy", other, apps=(), database={"bootstrap": {"mode": "restore", "restore": {
        "instance": {"namespace": namespace, "name": name}, "backup": migration["id"]}}})
    world.apply(clone)
    stalled = wait_for(world, other, "copy", "condition=Stalled", timeout=300)
    condition = next(c for c in stalled["status"]["conditions"] if c["type"] == "Stalled")
    assert condition["reason"] == "BackupNotFound", dump(stalled["status"])
    assert "spec.database.bootstrap.restore.backup" in condition["message"] and migration["id"] in condition["message"]

    clone["spec"]["database"]["bootstrap"]["restore"]["backup"] = seed  # the spec changes: the stall clears
    world.apply(clone)
    copied = wait_for(world, other, "copy", "condition=Ready", timeout=300)
    assert copied["status"]["database"]["bootstrapSource"] == f"{namespace}/{name} backup {seed}"
    assert "public.catalog" in _tables(world, copied) and _tables(world, copied) == _tables(world, seeded)

    # The bucket's key stayed with the operator: not in the clone's status, nor the log, nor on its host.
    secret = json.loads(world.control_plane.kubectl("get", "secret", key_secret_name(name), "-n", namespace,
                                                    "-o", "json").stdout)
    key = base64.b64decode(secret["data"]["secretAccessKey"]).decode()
    assert world.operator is not None
    assert key not in json.dumps(copied) and key not in world.operator.output()
    host = world.fleet.host_for(copied["status"]["server"]["name"])
    assert not [c for c in host.commands() if key in " ".join(c.argv) or key in json.dumps(dict(c.env))]
