"""The backup before a migration run, on a SandboxHost, uploading to the real S3 server (testing/s3server.py).

Over real SSH against the O4O-shaped fixture: configure with a backup id and presigned PUT URLs dumps the
database as the instance's role (the sandbox's pg_dump writes a custom-format archive of its tables and rows) and
archives the uploads with the real tar as the instance's user, uploads both with the real curl, and reports their
sizes and SHA-256s and the PostgreSQL version, all before the migration; the URLs and the password never reach
argv, the shims' log or the script's output. A failed dump or upload (of either object) stops configure with
BackupFailed before anything is migrated or switched, and leaves no dump in the bucket. A release already
migrated makes no new backup.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_database_bootstrap_sandbox import PASSWORD, Host, _host, _spec

from o4o_operator.errors import TransientError
from o4o_operator.markers import parse_results
from o4o_operator.pipeline import backups
from o4o_operator.pipeline.stages import StageName, script_for
from o4o_operator.providers.aws import StaticCredentials
from o4o_operator.providers.ssh import SshSession
from o4o_operator.providers.storage import ObjectStore, StorageTarget
from o4o_operator.rendering import render_script
from o4o_operator.testing import SandboxHost, commit_files
from o4o_operator.testing.s3server import S3Server

BUCKET = "host-backups"
PREFIX = "o4o-backups/team-a/shop/uid-1/"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        server.create_bucket(BUCKET)
        yield server


def _store(s3: S3Server, prefix: str = PREFIX) -> ObjectStore:
    credentials = StaticCredentials(s3.access_key_id, s3.secret_access_key)
    return ObjectStore(StorageTarget(s3.endpoint, BUCKET, "us-east-1", credentials), prefix)


async def backup_urls(store: ObjectStore, identifier: str) -> dict[str, str]:
    """The two presigned PUT URLs the operator hands a backup: its dump and its uploads."""
    key = backups.object_key(store.prefix, identifier)
    return {"O4O_BACKUP_PUT_URL": await store.presigned_put(key),
            "O4O_BACKUP_UPLOADS_PUT_URL": await store.presigned_put(backups.uploads_key(key))}


def uploaded_files(archive: bytes) -> dict[str, bytes]:
    """The files of an uploads archive (a tar, gzip), by their path in the uploads directory."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {member.name.removeprefix("./"): tar.extractfile(member).read()  # type: ignore[union-attr]
                for member in tar.getmembers() if member.isfile()}


def put_upload(host: Host, name: str, content: bytes) -> None:
    """What the API does when someone uploads a file: one more file in the shared uploads directory."""
    path = host.sandbox.path(host.context.uploads_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


async def _configure_with_backup(host: Host, identifier: str, urls: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    context = dataclasses.replace(host.context.with_commit(host.commit), backup_id=identifier)
    lines: list[str] = []
    env, public = host.db_env()
    await host.session.run(render_script("configure", context), timeout=120, log=lines.append,
                           env={**env, **urls}, public_env=public)
    return parse_results(lines), lines


def _identifier(host: Host) -> str:
    return f"20261206T120000Z-{host.commit[:12]}"


async def test_a_release_is_backed_up_before_it_migrates(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path, s3: S3Server) -> None:
    host = await _host(sandbox, session, tmp_path)
    await host.configure(_spec())  # a first release: bootstrapped and migrated (no backup configured)
    put_upload(host, "avatars/ada.png", b"a picture")
    store = _store(s3)
    host.commit = await _new_commit(host)
    identifier = _identifier(host)
    key = backups.object_key(PREFIX, identifier)
    urls = await backup_urls(store, identifier)
    results, lines = await _configure_with_backup(host, identifier, urls)

    assert results["backupId"] == identifier
    archive = await store.get(key)
    assert archive.startswith(b"PGDMP") and b"public.users" in archive
    assert results["backupSha256"] == hashlib.sha256(archive).hexdigest()
    assert results["backupSize"] == str(len(archive))
    assert results["backupPostgresVersion"] == "140013"
    uploads = await store.get(backups.uploads_key(key))
    assert uploaded_files(uploads) == {"avatars/ada.png": b"a picture"}
    assert results["backupUploadsSha256"] == hashlib.sha256(uploads).hexdigest()
    assert results["backupUploadsSize"] == str(len(uploads))
    archived = next(c for c in sandbox.commands("runuser") if "tar" in c.args and "--create" in c.args)
    assert archived.args[:2] == ("-u", host.context.app_user)  # tar read the uploads as the instance's user
    dump = next(c for c in sandbox.commands("pg_dump"))
    assert dump.user == host.context.app_user and "--format=custom" in dump.args
    migrate = [c for c in sandbox.commands("node") if c.args == ("dist/migrate.js",)][-1]
    assert sandbox.commands().index(dump) < sandbox.commands().index(migrate)
    log = (sandbox.root / ".shim-log").read_text()
    for secret in (*(url.split("?", 1)[1] for url in urls.values()), PASSWORD):
        assert secret not in log and not any(secret in line for line in lines)
    assert not list(sandbox.path(host.context.state_dir + "/backups").iterdir())  # the dump left the host

    # The same release again (migrated already): no second dump.
    again, _ = await _configure_with_backup(host, identifier, urls)
    assert len(sandbox.commands("pg_dump")) == 1 and "backupId" not in again


async def _new_commit(host: Host) -> str:
    """A second release, fetched and built: what configure then migrates."""
    commit = commit_files(host.repo, {"apps/api-server/src/extra.js": "module.exports = 2;\n"}, "A release")
    context = host.context
    await host.run(script_for(StageName.SOURCE), context.with_commit(commit))
    for stage in (StageName.BUILD_SITE, StageName.BUILD_API):
        await host.run(script_for(stage), context.with_commit(commit))
    return commit


@pytest.mark.parametrize("failure", ["dump", "upload", "uploads-upload"])
async def test_a_failed_backup_stops_the_release_before_it_migrates(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path, s3: S3Server, failure: str) -> None:
    host = await _host(sandbox, session, tmp_path)
    await host.configure(_spec())
    live = sandbox.shim_state().get("live_release")
    migrations = host.migrations()
    host.commit = await _new_commit(host)
    identifier = _identifier(host)
    prefix = f"o4o-backups/team-a/shop/uid-{failure}/"
    urls = await backup_urls(_store(s3, prefix), identifier)
    if failure == "dump":
        sandbox.fail_command("pg_dump", exit_code=1, stderr="pg_dump: error: connection lost")
    else:  # the signature no longer matches: 403
        broken = "O4O_BACKUP_PUT_URL" if failure == "upload" else "O4O_BACKUP_UPLOADS_PUT_URL"
        urls[broken] = urls[broken].replace(BUCKET, "no-such-bucket")
    with pytest.raises(TransientError) as caught:
        await _configure_with_backup(host, identifier, urls)
    assert caught.value.reason == "BackupFailed"
    assert "serving release keeps serving" in caught.value.message
    assert not any(url.split("?", 1)[1] in caught.value.message for url in urls.values())
    assert host.migrations() == migrations  # nothing migrated
    assert sandbox.shim_state().get("live_release") == live  # nothing switched
    uploaded = s3.keys(BUCKET, prefix)
    # The uploads go first: a dump in the bucket always has its uploads beside it.
    assert uploaded == ([backups.uploads_key(backups.object_key(prefix, identifier))] if failure == "upload" else [])
    assert not list(sandbox.path(host.context.state_dir + "/backups").glob(identifier + "*"))


async def test_an_on_request_backup_uploads_now_and_leaves_nothing_behind(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path, s3: S3Server) -> None:
    host = await _host(sandbox, session, tmp_path)
    await host.configure(_spec())
    prefix = "o4o-backups/team-a/shop/uid-request/"
    store = _store(s3, prefix)
    identifier = "20261206T130000Z-" + host.commit[:12]
    urls = await backup_urls(store, identifier)
    put_upload(host, "doc.pdf", b"%PDF")
    context = dataclasses.replace(host.context.with_commit(host.commit), backup_id=identifier)
    lines: list[str] = []
    env, public = host.db_env()
    await session.run(render_script("backup", context), timeout=120, log=lines.append,
                      env={**env, **urls}, public_env=public)
    results = parse_results(lines)
    archive = await store.get(backups.object_key(prefix, identifier))
    assert results["backupId"] == identifier and results["backupSha256"] == hashlib.sha256(archive).hexdigest()
    assert archive.startswith(b"PGDMP")
    uploads = await store.get(backups.uploads_key(backups.object_key(prefix, identifier)))
    assert results["backupUploadsSha256"] == hashlib.sha256(uploads).hexdigest()
    assert uploaded_files(uploads) == {"doc.pdf": b"%PDF"}
    assert not list(sandbox.path(host.context.state_dir + "/backups").iterdir())
    assert not any(url.split("?", 1)[1] in line for url in urls.values() for line in lines)
