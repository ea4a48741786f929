"""Restores and clones on a SandboxHost, reading dumps from the real S3 server (testing/s3server.py).

Over real SSH against the O4O-shaped fixture: a backup, a table dropped by hand, then configure restoring that
backup in place: a backup of what the database held first, the API stopped, the dump downloaded with the real curl
from its presigned URL and checked against its SHA-256, the local database dropped and created again, the dump
turned into SQL by root and run by the instance's role in one transaction, the release migrated again and the API
reloaded; the table and its rows are back, and the uploads are the backup's (unpacked beside by the instance's
user, then swapped in). The same restore again does nothing. A backup made before uploads were backed up (no
uploads object) restores the database only and leaves the uploads alone. A dump or uploads whose SHA-256 differs
from its record drop and replace nothing. A second instance on the same host is cloned from the first's backup
into its own empty database, as its own role, with the first's uploads. No URL or password reaches argv, the
shims' log or the output.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_backup_sandbox import BUCKET, _store, backup_urls, put_upload, uploaded_files
from test_database_bootstrap_sandbox import PASSWORD, Host, _host, _spec

from o4o_operator.errors import PermanentError
from o4o_operator.markers import parse_results
from o4o_operator.pipeline import backups
from o4o_operator.providers.ssh import SshSession
from o4o_operator.rendering import render_script
from o4o_operator.testing import SandboxHost
from o4o_operator.testing.s3server import S3Server

PREFIX = "o4o-backups/team-a/shop/uid-restore/"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        server.create_bucket(BUCKET)
        yield server


async def _backup(host: Host, s3: S3Server, identifier: str) -> tuple[str, str, str]:
    """An on-request backup of the host's database and uploads now: its key, SHA-256 and uploads' SHA-256."""
    key = backups.object_key(PREFIX, identifier)
    context = dataclasses.replace(host.context.with_commit(host.commit), backup_id=identifier)
    env, public = host.db_env()
    lines: list[str] = []
    await host.session.run(render_script("backup", context), timeout=120, log=lines.append,
                           env={**env, **await backup_urls(_store(s3, PREFIX), identifier)}, public_env=public)
    results = parse_results(lines)
    return key, results["backupSha256"], results["backupUploadsSha256"]


def _uploads(host: Host) -> dict[str, bytes]:
    """The instance's shared uploads directory, file by file; nothing beside it but the other shared files."""
    directory = host.sandbox.path(host.context.uploads_dir)
    assert sorted(p.name for p in directory.parent.iterdir() if p.name.startswith("uploads")) == ["uploads"]
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


async def _drop_table(host: Host, table: str) -> None:
    env, public = host.db_env()
    await host.session.run(f'PGPASSWORD="$O4O_DB_PASSWORD" psql -h 127.0.0.1 -U {host.name} -d {host.name} '
                           f"-c 'DROP TABLE {table}'", timeout=30, log=lambda _: None, env=env, public_env=public)


async def _configure_restoring(host: Host, s3: S3Server, key: str, sha256: str, restored: str, pre: str,
                               uploads_sha256: str = "") -> tuple[dict[str, str], list[str], str]:
    """Configure restoring backup ``restored`` in place, as the runner's restore step hands it over: with its
    uploads when ``uploads_sha256`` is given (a backup made before uploads were backed up has none)."""
    store = _store(s3, PREFIX)
    get_url = await store.presigned_get(key)
    urls = {**await backup_urls(store, pre), "O4O_RESTORE_GET_URL": get_url}
    if uploads_sha256:
        urls["O4O_RESTORE_UPLOADS_GET_URL"] = await store.presigned_get(backups.uploads_key(key))
    context = dataclasses.replace(host.context.with_commit(host.commit), backup_id=pre, restore_kind="in-place",
                                  restore_id=restored, restore_sha256=sha256, restore_uploads_sha256=uploads_sha256,
                                  restore_source=f"team-a/shop backup {restored}")
    env, public = host.db_env()
    lines: list[str] = []
    await host.session.run(render_script("configure", context), timeout=120, log=lines.append,
                           env={**env, **urls}, public_env=public)
    return parse_results(lines), lines, get_url


async def test_a_dropped_table_comes_back_with_an_in_place_restore_which_runs_once(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path, s3: S3Server) -> None:
    host = await _host(sandbox, session, tmp_path)
    await host.configure(_spec())
    assert host.tables() == ["public.users"]
    for row in ("INSERT INTO public.users VALUES (1, 'ada')", "INSERT INTO public.users VALUES (2, 'grace')"):
        sandbox.psql(host.name, row)  # what the app wrote
    put_upload(host, "avatars/1.png", b"ada's picture")  # and the file its row points to
    restored = "20261206T120000Z-" + host.commit[:12]
    key, sha256, uploads_sha256 = await _backup(host, s3, restored)
    await _drop_table(host, "public.users")
    assert host.tables() == []
    (sandbox.path(host.context.uploads_dir) / "avatars/1.png").unlink()
    put_upload(host, "later.png", b"uploaded after the backup")
    migrations = host.migrations()

    pre = "20261206T130000Z-" + host.commit[:12]
    results, lines, url = await _configure_restoring(host, s3, key, sha256, restored, pre, uploads_sha256)

    assert host.tables() == ["public.users"]
    assert host.rows("public.users") == ["1, 'ada'", "2, 'grace'"]  # the rows are back
    assert sandbox.psql(host.name, "SELECT count(*) FROM public.users").strip() == "2"
    assert (results["restoredBackup"], results["restorePreBackup"]) == (restored, pre)
    assert results["restoreFinishedAt"] >= results["restoreStartedAt"]
    assert _uploads(host) == {"avatars/1.png": b"ada's picture"}  # the backup's uploads, and no others
    assert results["backupId"] == pre  # what the database held just before (the table dropped) is backed up
    before = await _store(s3, PREFIX).get(backups.object_key(PREFIX, pre))
    assert before.startswith(b"PGDMP") and b"public.users" not in before
    assert uploaded_files(await _store(s3, PREFIX).get(backups.uploads_key(backups.object_key(PREFIX, pre)))) == {
        "later.png": b"uploaded after the backup"}  # and the uploads it held
    commands = list(enumerate(sandbox.commands()))
    stop = next(i for i, c in commands if c.name == "pm2" and c.args[:1] == ("stop",))
    restore, call = next((i, c) for i, c in commands if c.name == "pg_restore" and "--file=-" in c.args)
    migrate = [i for i, c in commands if c.name == "node" and c.args == ("dist/migrate.js",)][-1]
    reload_ = [i for i, c in commands if c.name == "pm2" and c.args[:1] == ("startOrReload",)][-1]
    unpack, unpacked = next((i, c) for i, c in commands if c.name == "runuser" and "--extract" in c.args)
    assert unpack < stop < restore < migrate < reload_  # unpacked beside before anything is stopped or dropped
    assert unpacked.args[:2] == ("-u", host.context.app_user)
    assert "--no-owner" in call.args and "--no-privileges" in call.args
    assert host.migrations() == migrations + 1  # the current release migrated the restored database
    assert sandbox.shim_state().get("live_release") == host.commit  # the API is back
    log = (sandbox.root / ".shim-log").read_text()
    for secret in (url.split("?", 1)[1], PASSWORD):
        assert secret not in log and not any(secret in line for line in lines)
    assert not list(sandbox.path(host.context.state_dir + "/restore").iterdir())  # the dump left the host

    # The same restore again (the manifest re-applied, a decision that did not see status): not again.
    restores = len(sandbox.commands("pg_restore"))
    put_upload(host, "after-the-restore.png", b"kept")
    again, _, _ = await _configure_restoring(host, s3, key, sha256, restored, "20261206T140000Z-" + host.commit[:12],
                                             uploads_sha256)
    assert len(sandbox.commands("pg_restore")) == restores and "backupId" not in again
    assert again["restoredBackup"] == restored and host.tables() == ["public.users"]
    assert host.rows("public.users") == ["1, 'ada'", "2, 'grace'"]
    assert set(_uploads(host)) == {"avatars/1.png", "after-the-restore.png"}


async def test_a_backup_made_before_uploads_were_backed_up_restores_the_database_only(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path, s3: S3Server) -> None:
    host = await _host(sandbox, session, tmp_path)
    await host.configure(_spec())
    sandbox.psql(host.name, "INSERT INTO public.users VALUES (1, 'ada')")
    restored = "20261206T123000Z-" + host.commit[:12]
    key, sha256, _ = await _backup(host, s3, restored)
    s3.client().delete_object(Bucket=BUCKET, Key=backups.uploads_key(key))  # as an older operator left it
    sandbox.psql(host.name, "DELETE FROM public.users")
    put_upload(host, "photo.png", b"uploaded since")

    results, _, _ = await _configure_restoring(host, s3, key, sha256, restored, "20261206T133000Z-" + host.commit[:12])
    assert results["restoredBackup"] == restored and host.rows("public.users") == ["1, 'ada'"]
    assert _uploads(host) == {"photo.png": b"uploaded since"}  # untouched
    assert not [c for c in sandbox.commands("runuser") if "--extract" in c.args]


async def test_a_dump_that_does_not_match_its_checksum_drops_nothing(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path, s3: S3Server) -> None:
    host = await _host(sandbox, session, tmp_path)
    await host.configure(_spec())
    restored = "20261206T150000Z-" + host.commit[:12]
    key, sha256, uploads_sha256 = await _backup(host, s3, restored)
    put_upload(host, "kept.png", b"kept")
    for wrong in (("0" * 64, uploads_sha256), (sha256, "0" * 64)):
        with pytest.raises(PermanentError) as caught:
            await _configure_restoring(host, s3, key, wrong[0], restored, "20261206T160000Z-" + host.commit[:12],
                                       wrong[1])
        assert caught.value.reason == "BackupChecksumMismatch"
        assert caught.value.message.startswith("spec.database.restore.backup: ")
        assert ("the uploads of" in caught.value.message) == (wrong[1] == "0" * 64)
        assert host.tables() == ["public.users"] and not sandbox.commands("pg_restore")
        assert _uploads(host) == {"kept.png": b"kept"}
        assert not list(sandbox.path(host.context.state_dir + "/restore").iterdir())


async def test_a_second_instance_is_cloned_from_the_firsts_backup_as_its_own_role(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path, s3: S3Server) -> None:
    source = await _host(sandbox, session, tmp_path)
    await source.configure(_spec())
    sandbox.psql(source.name, "INSERT INTO public.users VALUES (7, 'catalog')")
    put_upload(source, "products/7.jpg", b"a product")
    identifier = "20261206T170000Z-" + source.commit[:12]
    key, sha256, uploads_sha256 = await _backup(source, s3, identifier)
    clone = await _host(sandbox, session, tmp_path, name="copy")
    assert clone.tables() == []
    put_upload(clone, "shipped.txt", b"a file the release ships in its uploads directory")
    context = dataclasses.replace(clone.context.with_commit(clone.commit), bootstrap_mode="restore",
                                  restore_kind="clone", restore_id=identifier, restore_sha256=sha256,
                                  restore_uploads_sha256=uploads_sha256,
                                  restore_source=f"team-a/shop backup {identifier}")
    env, public = clone.db_env()
    lines: list[str] = []
    url = await _store(s3, PREFIX).presigned_get(key)
    uploads_url = await _store(s3, PREFIX).presigned_get(backups.uploads_key(key))
    await session.run(render_script("configure", context), timeout=120, log=lines.append,
                      env={**env, "O4O_RESTORE_GET_URL": url, "O4O_RESTORE_UPLOADS_GET_URL": uploads_url},
                      public_env=public)
    results = parse_results(lines)
    assert clone.tables() == ["public.users"] and source.tables() == ["public.users"]
    assert clone.rows("public.users") == ["7, 'catalog'"]
    assert _uploads(clone) == {"products/7.jpg": b"a product",
                               "shipped.txt": b"a file the release ships in its uploads directory"}
    assert _uploads(source) == {"products/7.jpg": b"a product"}
    assert (results["bootstrap"], results["bootstrapSource"]) == ("restore", f"team-a/shop backup {identifier}")
    clone_ran = [c.args for c in sandbox.commands("node") if c.user == clone.context.app_user]
    assert ("dist/migrate.js",) in clone_ran and ("src/bootstrap.js",) not in clone_ran  # migrated, as every release
    databases = sandbox.shim_state()["postgres"]["databases"]
    assert databases[clone.name] == clone.name != source.name  # its own database, owned by its own role
    sql_run = [c for c in sandbox.commands("psql") if "--single-transaction" in c.args][-1]
    assert sql_run.user == clone.context.app_user and clone.name in sql_run.args
    assert hashlib.sha256(await _store(s3, PREFIX).get(key)).hexdigest() == sha256
    assert not any(u.split("?", 1)[1] in line for u in (url, uploads_url) for line in lines)
