"""Backups in the local world: each release's migration run is preceded by a backup in the real S3 server.

The operator presigns two PUTs per backup (the dump and the uploads beside it) with the target's credentials (which
stay in the operator); the sandbox host dumps as the instance's role, archives the uploads as its user and uploads
both with the real curl. The backup is recorded in status and in the objects' metadata, retention (count 1) prunes
the older one (both its objects, and its record in status) for real, and an upload that fails stops the release
with BackupFailed while the old release keeps serving, until a retry succeeds. An annotation asks for one backup
more, once per request id.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import dump, wait_for

from o4o_operator.rendering.host_context import STATE_ROOT, instance_slug
from o4o_operator.testing.fixture_repo import commit_to_branch
from o4o_operator.testing.s3server import S3Server
from o4o_operator.testing.world import LocalWorld

BUCKET = "e2e-backups"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        server.create_bucket(BUCKET)
        yield server


def _backup_spec(s3: S3Server) -> dict[str, Any]:
    return {"backup": {"target": {"s3": {"endpoint": s3.endpoint, "bucket": BUCKET, "prefix": "o4o",
                                         "credentialsSecretRef": {"name": "backup-s3"}}},
                       "retention": {"count": 1}}}


def _served_release(world: LocalWorld, obj: dict[str, Any]) -> str:
    slug = instance_slug(obj["metadata"]["namespace"], obj["metadata"]["name"])
    host = world.fleet.host_for(obj["status"]["server"]["name"])
    return Path(host.path(f"/srv/o4o/{slug}/current").readlink()).name


def _wait_for_stage_reason(world: LocalWorld, namespace: str, name: str, reason: str,
                           timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        obj = world.get(name, namespace)
        configure = next((s for s in obj.get("status", {}).get("stages", []) if s["name"] == "configure"), {})
        if configure.get("reason") == reason:
            return obj
        if time.monotonic() > deadline:
            raise AssertionError(f"configure never failed with {reason}: {dump(obj.get('status'))}")
        time.sleep(0.5)


def _objects(record: dict[str, Any]) -> list[str]:
    """A backup's two objects: its dump and the uploads beside it."""
    return sorted([record["key"], record["uploads"]["key"]])


def test_a_release_is_backed_up_to_s3_and_a_failed_upload_stops_the_next(
        world: LocalWorld, namespace: str, s3: S3Server) -> None:
    name = "backed"
    world.create_secrets(namespace)
    world.control_plane.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "backup-s3", "namespace": namespace},
        "stringData": {"accessKeyId": s3.access_key_id, "secretAccessKey": s3.secret_access_key}}))
    world.apply(world.manifest(name, namespace, apps=(), database=_backup_spec(s3)))
    first = wait_for(world, namespace, name, "condition=Ready", timeout=300)
    uid = first["metadata"]["uid"]
    prefix = f"o4o/{namespace}/{name}/{uid}/"
    [record] = first["status"]["database"]["backups"]
    assert record["commit"] == first["status"]["source"]["commit"] and record["postgresVersion"] == "140013"
    assert sorted(s3.keys(BUCKET)) == _objects(record) and record["key"].startswith(prefix)
    body = s3.client().get_object(Bucket=BUCKET, Key=record["key"])
    archive = body["Body"].read()
    assert archive.startswith(b"PGDMP") and hashlib.sha256(archive).hexdigest() == record["sha256"]
    assert body["Metadata"]["sha256"] == record["sha256"] and body["Metadata"]["backup-id"] == record["id"]
    assert len(archive) == record["size"]

    # The next release's upload fails (twice): BackupFailed, nothing migrated, the first release keeps serving.
    host = world.fleet.host_for(first["status"]["server"]["name"])
    host.fail_command("curl", exit_code=22, stderr="curl: (22) The requested URL returned error: 503",
                      times=2, args_contain="--upload-file")
    commit = commit_to_branch(world.repository, f"next-{uuid.uuid4().hex[:6]}",
                              {"apps/main-site/public/next.txt": "next\n"}, "The next release")
    world.control_plane.kubectl("patch", "di", name, "-n", namespace, "--type=merge",
                                "-p", json.dumps({"spec": {"source": {"revision": commit}}}))
    failed = _wait_for_stage_reason(world, namespace, name, "BackupFailed")
    assert _served_release(world, failed) == first["status"]["source"]["commit"]
    assert not host.path(f"{STATE_ROOT}/instances/{instance_slug(namespace, name)}/activations/{commit}.migrated"
                         ).exists()

    # The retry succeeds: the new release is backed up, recorded, and retention (count 1) pruned the first, whose
    # record left status with it.
    after = wait_for(world, namespace, name, "jsonpath={.status.source.commit}=" + commit, timeout=300)
    after = wait_for(world, namespace, name, "condition=Ready", timeout=300)
    assert _served_release(world, after) == commit
    newest = after["status"]["database"]["backups"][0]
    assert newest["commit"] == commit and newest["id"] != record["id"]
    assert [r["id"] for r in after["status"]["database"]["backups"]] == [newest["id"]]
    assert sorted(s3.keys(BUCKET)) == _objects(newest)

    # On request (annotation): one backup now, recorded with its request; the same id never runs again.
    world.control_plane.kubectl("annotate", "di", name, "-n", namespace, "deploy.o4o.io/backup-request=first")
    requested = wait_for(world, namespace, name, "jsonpath={.status.database.backupRequest.id}=first")
    request = requested["status"]["database"]["backupRequest"]
    assert request["outcome"] == "Succeeded", dump(requested["status"])
    [taken] = [r for r in requested["status"]["database"]["backups"] if r["id"] == request["backupId"]]
    assert taken["reason"] == "request" and sorted(s3.keys(BUCKET)) == _objects(taken)
    world.control_plane.kubectl("annotate", "di", name, "-n", namespace, "--overwrite",
                                "deploy.o4o.io/backup-request=first", "example.com/touch=1")
    wait_for(world, namespace, name, "condition=Ready")
    assert world.get(name, namespace)["status"]["database"]["backupRequest"] == request
    assert sorted(s3.keys(BUCKET)) == _objects(taken)
