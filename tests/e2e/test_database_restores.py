"""Restores and clones in the local world, against the real S3 server.

An instance is backed up on request, a table is dropped by hand, and ``spec.database.restore`` brings it back: a
backup of the damaged database first, then the restore, the migration and the health gate; status records it, the
site serves, and a next release with the same manifest does not restore again. In another namespace, a clone of
that backup stalls until the source grants the namespace, then serves the source's data under its own domain with
its own role and password; a template dump of another PostgreSQL major version stalls naming both versions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import dump, wait_for
from o4o_operator.pipeline.restore import CLONE_GRANT_ANNOTATION
from o4o_operator.rendering.env_values import database_identifier
from o4o_operator.rendering.host_context import instance_user
from o4o_operator.testing.fixture_repo import commit_to_branch
from o4o_operator.testing.s3server import S3Server
from o4o_operator.testing.world import LocalWorld

BUCKET = "e2e-restores"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        server.create_bucket(BUCKET)
        yield server


def _with_backups(world: LocalWorld, namespace: str, s3: S3Server, **database: Any) -> dict[str, Any]:
    world.create_secrets(namespace)
    world.control_plane.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "backup-s3", "namespace": namespace},
        "stringData": {"accessKeyId": s3.access_key_id, "secretAccessKey": s3.secret_access_key}}))
    return {"backup": {"target": {"s3": {"endpoint": s3.endpoint, "bucket": BUCKET, "prefix": "o4o",
                                         "credentialsSecretRef": {"name": "backup-s3"}}}}, **database}


def _tables(world: LocalWorld, obj: dict[str, Any]) -> list[str]:
    meta = obj["metadata"]
    host = world.fleet.host_for(obj["status"]["server"]["name"])
    name = database_identifier(instance_user(meta["namespace"], meta["name"]))
    return sorted(host.shim_state()["postgres"].get("tables", {}).get(name, []))


def _stalled_with(world: LocalWorld, namespace: str, name: str, reason: str) -> dict[str, Any]:
    obj = wait_for(world, namespace, name, "condition=Stalled", timeout=300)
    stalled = next(c for c in obj["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == reason, dump(obj["status"])
    return obj


def test_a_dropped_table_is_restored_in_place_once(world: LocalWorld, namespace: str, s3: S3Server) -> None:
    name = "origin"
    manifest = world.manifest(name, namespace, apps=(), database=_with_backups(world, namespace, s3))
    world.apply(manifest)
    ready = wait_for(world, namespace, name, "condition=Ready", timeout=300)
    host = world.fleet.host_for(ready["status"]["server"]["name"])
    database = database_identifier(instance_user(namespace, name))
    host.edit_tables(database, create=("public.orders", "public.users"))  # what the app wrote
    tables = _tables(world, ready)
    world.control_plane.kubectl("annotate", "di", name, "-n", namespace, "deploy.o4o.io/backup-request=good")
    taken = wait_for(world, namespace, name, "jsonpath={.status.database.backupRequest.outcome}=Succeeded")
    good = taken["status"]["database"]["backupRequest"]["backupId"]

    host.edit_tables(database, drop=("public.orders",))  # by hand
    assert "public.orders" not in _tables(world, ready)

    manifest["spec"]["database"]["restore"] = {"backup": good}
    world.apply(manifest)
    restored = wait_for(world, namespace, name, f"jsonpath={{.status.database.restore.backup}}={good}", timeout=300)
    restored = wait_for(world, namespace, name, "condition=Ready", timeout=300)  # migrated, and the site serves
    record = restored["status"]["database"]["restore"]
    assert record["outcome"] == "Succeeded" and record["finishedAt"] >= record["startedAt"], dump(record)
    assert _tables(world, restored) == tables  # the table is back
    pre = next(r for r in restored["status"]["database"]["backups"] if r["id"] == record["preRestoreBackup"])
    archive = s3.client().get_object(Bucket=BUCKET, Key=pre["key"])["Body"].read()
    assert hashlib.sha256(archive).hexdigest() == pre["sha256"] and b"public.orders" not in archive
    assert len([c for c in host.commands("pg_restore") if "--file=-" in c.args]) == 1

    # The same manifest again, with a next release: configure runs again and does not restore again.
    commit = commit_to_branch(world.repository, f"next-{uuid.uuid4().hex[:6]}",
                              {"apps/main-site/public/next.txt": "next\n"}, "The next release")
    manifest["spec"]["source"]["revision"] = commit
    world.apply(manifest)
    wait_for(world, namespace, name, "jsonpath={.status.source.commit}=" + commit, timeout=300)
    after = wait_for(world, namespace, name, "condition=Ready", timeout=300)
    assert after["status"]["database"]["restore"] == record
    assert len([c for c in host.commands("pg_restore") if "--file=-" in c.args]) == 1
    assert _tables(world, after) == tables


def test_a_clone_across_namespaces_needs_the_grant_and_the_same_major_version(
        world: LocalWorld, namespace: str, s3: S3Server) -> None:
    world.apply(world.manifest("source", namespace, apps=(), database=_with_backups(world, namespace, s3)))
    source = wait_for(world, namespace, "source", "condition=Ready", timeout=300)
    world.fleet.host_for(source["status"]["server"]["name"]).edit_tables(
        database_identifier(instance_user(namespace, "source")), create=("public.catalog",))
    world.control_plane.kubectl("annotate", "di", "source", "-n", namespace, "deploy.o4o.io/backup-request=seed")
    seeded = wait_for(world, namespace, "source", "jsonpath={.status.database.backupRequest.outcome}=Succeeded")
    backup = seeded["status"]["database"]["backupRequest"]["backupId"]

    other = f"{namespace[:58]}-copy"
    world.control_plane.create_namespace(other)
    clone = world.manifest("copy", other, apps=(), database=_with_backups(world, other, s3, bootstrap={
        "mode": "restore", "restore": {"instance": {"namespace": namespace, "name": "source"}, "backup": backup}}))
    world.apply(clone)
    refused = _stalled_with(world, other, "copy", "CloneNotGranted")
    stalled = next(c for c in refused["status"]["conditions"] if c["type"] == "Stalled")
    assert "spec.database.bootstrap.restore.instance" in stalled["message"]
    assert CLONE_GRANT_ANNOTATION in stalled["message"]

    # The source's owner grants the namespace; the clone's owner asks again (latest is that same backup).
    world.control_plane.kubectl("annotate", "di", "source", "-n", namespace, f"{CLONE_GRANT_ANNOTATION}={other}")
    clone["spec"]["database"]["bootstrap"]["restore"]["backup"] = "latest"
    world.apply(clone)
    copied = wait_for(world, other, "copy", "condition=Ready", timeout=300)
    assert copied["status"]["database"]["bootstrap"] == "restore"
    assert copied["status"]["database"]["bootstrapSource"] == f"{namespace}/source backup {backup}"
    assert _tables(world, copied) == _tables(world, source) and "public.catalog" in _tables(world, copied)
    assert copied["spec"]["domain"] != source["spec"]["domain"]
    secrets = [json.loads(world.control_plane.kubectl("get", "secret", f"{n}-database", "-n", ns, "-o",
                                                      "json").stdout)["data"] for ns, n in ((namespace, "source"),
                                                                                            (other, "copy"))]
    users = [base64.b64decode(s["DB_USERNAME"]).decode() for s in secrets]
    assert users[0] != users[1] and secrets[0]["DB_PASSWORD"] != secrets[1]["DB_PASSWORD"]

    # A template dump of another PostgreSQL major version stalls naming both.
    archive = b"PGDMP" + json.dumps({"database": "x", "tables": ["public.users"]}).encode() + b"\n"
    s3.client().put_object(Bucket=BUCKET, Key="templates/pg16.dump", Body=archive, Metadata={
        "postgres-version": "160004", "sha256": hashlib.sha256(archive).hexdigest()})
    world.apply(world.manifest("newer", other, apps=(), database=_with_backups(world, other, s3, bootstrap={
        "mode": "restore", "restore": {"template": {"key": "templates/pg16.dump"}}})))
    mismatch = _stalled_with(world, other, "newer", "PostgresVersionMismatch")
    message = next(c for c in mismatch["status"]["conditions"] if c["type"] == "Stalled")["message"]
    assert "PostgreSQL 16" in message and "PostgreSQL 14" in message, message
