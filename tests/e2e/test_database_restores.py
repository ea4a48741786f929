"""Restores and clones in the local world, against the real S3 server.

An instance's app writes rows (a ``psql`` INSERT through the sandbox's PostgreSQL) and an upload; it is backed up
on request (the dump and a tar of the uploads, side by side in the bucket), a table with its rows is dropped by
hand and the upload replaced, and ``spec.database.restore`` brings the rows and the upload back: a backup of the
damaged database and uploads first, then the restore, the migration and the health gate; status records it, the
site serves, and a next release with the same manifest does not restore again. In another namespace, a clone of
that backup stalls until the source grants the namespace, then goes on by itself (its spec unchanged) and serves
the source's rows and uploads under its own domain with its own role and password; a template dump of another
PostgreSQL major version stalls naming both versions.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import dump, wait_for

from o4o_operator.pipeline.restore import CLONE_GRANT_ANNOTATION
from o4o_operator.rendering.env_values import database_identifier
from o4o_operator.rendering.host_context import BASE_DIR_ROOT, instance_slug, instance_user
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


def _database(obj: dict[str, Any]) -> str:
    return database_identifier(instance_user(obj["metadata"]["namespace"], obj["metadata"]["name"]))


def _rows(world: LocalWorld, obj: dict[str, Any], table: str) -> list[str]:
    """The rows of ``table`` as the sandbox's PostgreSQL keeps them, after psql's own count agrees."""
    host = world.fleet.host_for(obj["status"]["server"]["name"])
    rows = host.shim_state()["postgres"].get("rows", {}).get(_database(obj), {}).get(table, [])
    assert host.psql(_database(obj), f"SELECT count(*) FROM {table}").strip() == str(len(rows))  # noqa: S608
    return list(rows)


def _uploads_dir(world: LocalWorld, obj: dict[str, Any]) -> Path:
    meta = obj["metadata"]
    host = world.fleet.host_for(obj["status"]["server"]["name"])
    return host.path(f"{BASE_DIR_ROOT}/{instance_slug(meta['namespace'], meta['name'])}/shared/uploads")


def _uploads(world: LocalWorld, obj: dict[str, Any]) -> dict[str, bytes]:
    directory = _uploads_dir(world, obj)
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _archived(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


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
    host.edit_tables(database, create=("public.orders", "public.users"))  # what the app made and wrote
    for order in ("INSERT INTO public.orders VALUES (1, 'shoes', 'receipts/1.pdf')",
                  "INSERT INTO public.orders VALUES (2, 'socks', 'receipts/2.pdf')"):
        host.psql(database, order)
    uploads = _uploads_dir(world, ready)
    (uploads / "receipts").mkdir()
    for number in (1, 2):
        (uploads / f"receipts/{number}.pdf").write_bytes(f"receipt {number}".encode())
    tables, orders, files = _tables(world, ready), _rows(world, ready, "public.orders"), _uploads(world, ready)
    assert len(orders) == 2 and set(files) == {"receipts/1.pdf", "receipts/2.pdf"}
    world.control_plane.kubectl("annotate", "di", name, "-n", namespace, "deploy.o4o.io/backup-request=good")
    taken = wait_for(world, namespace, name, "jsonpath={.status.database.backupRequest.outcome}=Succeeded")
    good = taken["status"]["database"]["backupRequest"]["backupId"]
    backup = next(r for r in taken["status"]["database"]["backups"] if r["id"] == good)
    archived = s3.client().get_object(Bucket=BUCKET, Key=backup["uploads"]["key"])["Body"].read()
    assert hashlib.sha256(archived).hexdigest() == backup["uploads"]["sha256"] == s3.client().head_object(
        Bucket=BUCKET, Key=backup["key"])["Metadata"]["uploads-sha256"]
    assert _archived(archived) == files

    host.psql(database, "DROP TABLE public.orders")  # by hand: the table and its rows
    (uploads / "receipts/2.pdf").unlink()
    (uploads / "receipts/3.pdf").write_bytes(b"a receipt with no order")
    assert "public.orders" not in _tables(world, ready)

    manifest["spec"]["database"]["restore"] = {"backup": good}
    world.apply(manifest)
    restored = wait_for(world, namespace, name, f"jsonpath={{.status.database.restore.backup}}={good}", timeout=300)
    restored = wait_for(world, namespace, name, "condition=Ready", timeout=300)  # migrated, and the site serves
    record = restored["status"]["database"]["restore"]
    assert record["outcome"] == "Succeeded" and record["finishedAt"] >= record["startedAt"], dump(record)
    assert _tables(world, restored) == tables
    assert _rows(world, restored, "public.orders") == orders  # the rows are back
    assert _uploads(world, restored) == files  # and exactly the files they point to
    pre = next(r for r in restored["status"]["database"]["backups"] if r["id"] == record["preRestoreBackup"])
    archive = s3.client().get_object(Bucket=BUCKET, Key=pre["key"])["Body"].read()
    assert hashlib.sha256(archive).hexdigest() == pre["sha256"] and b"public.orders" not in archive
    pre_uploads = s3.client().get_object(Bucket=BUCKET, Key=pre["uploads"]["key"])["Body"].read()
    assert set(_archived(pre_uploads)) == {"receipts/1.pdf", "receipts/3.pdf"}  # what the damaged instance held
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
    assert _tables(world, after) == tables and _rows(world, after, "public.orders") == orders
    assert _uploads(world, after) == files


def test_a_clone_across_namespaces_needs_the_grant_and_the_same_major_version(
        world: LocalWorld, namespace: str, s3: S3Server) -> None:
    world.start_operator(env={"O4O_STALL_RECHECK_SECONDS": "3"})  # a stalled clone looks at its source again
    world.apply(world.manifest("source", namespace, apps=(), database=_with_backups(world, namespace, s3)))
    source = wait_for(world, namespace, "source", "condition=Ready", timeout=300)
    source_host = world.fleet.host_for(source["status"]["server"]["name"])
    source_host.edit_tables(_database(source), create=("public.catalog",))
    source_host.psql(_database(source), "INSERT INTO public.catalog VALUES (7, 'lamp', 'products/7.jpg')")
    (_uploads_dir(world, source) / "products").mkdir()
    (_uploads_dir(world, source) / "products/7.jpg").write_bytes(b"a lamp")
    world.control_plane.kubectl("annotate", "di", "source", "-n", namespace, "deploy.o4o.io/backup-request=seed")
    seeded = wait_for(world, namespace, "source", "jsonpath={.status.database.backupRequest.outcome}=Succeeded")
    backup = seeded["status"]["database"]["backupRequest"]["backupId"]

    other = f"{namespace[:58]}-copy"
    world.control_plane.create_namespace(other)
    clone = world.manifest("copy", other, apps=(), database=_with_backups(world, other, s3, bootstrap={
        "mode": "restore", "restore": {"instance": {"namespace": namespace, "name": "source"}, "backup": "latest"}}))
    world.apply(clone)
    refused = _stalled_with(world, other, "copy", "CloneNotGranted")
    stalled = next(c for c in refused["status"]["conditions"] if c["type"] == "Stalled")
    assert "spec.database.bootstrap.restore.instance" in stalled["message"]
    assert CLONE_GRANT_ANNOTATION in stalled["message"]

    # The source's owner grants the namespace; the clone goes on by itself (no change to its spec), from the
    # latest backup, the one just taken.
    world.control_plane.kubectl("annotate", "di", "source", "-n", namespace, f"{CLONE_GRANT_ANNOTATION}={other}")
    copied = wait_for(world, other, "copy", "condition=Ready", timeout=300)
    assert copied["status"]["database"]["bootstrap"] == "restore"
    assert copied["status"]["database"]["bootstrapSource"] == f"{namespace}/source backup {backup}"
    assert _tables(world, copied) == _tables(world, source) and "public.catalog" in _tables(world, copied)
    assert _rows(world, copied, "public.catalog") == ["7, 'lamp', 'products/7.jpg'"]
    assert _uploads(world, copied)["products/7.jpg"] == b"a lamp"
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
