"""B2: a generated database of about 1 GB on a booted Debian host: backup time and size, against the disk's own
copy speed there (``dd``), the limit a dump cannot beat. Figures only, no asserts.

The host is a booted Debian 12 (``testing/hosts``: systemd-nspawn, the world's egress proxy for apt) with Debian's
PostgreSQL. A table of ``rows`` rows (an id, an md5 and a 192-character text: about 1 GB with its TOAST and
indexes at the default) is generated with ``generate_series``; then the steps of ``templates/scripts/_backup.sh``
are timed one by one, as that script runs them: ``pg_dump --format=custom`` to a file, its SHA-256, and the upload
with curl to a presigned PUT URL (on curl's stdin) of the world's S3 server (versitygw, listening on the bridge).
The disk's copy speed is ``dd`` of a file the size of the database to another, with ``conv=fsync``.

Needs root, the cached host image and the machine's host-world lock (one world at a time). It loads the machine's
two cores for some minutes: run it when nobody measures anything.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import say, write_result
from o4o_operator.providers.aws import StaticCredentials
from o4o_operator.providers.storage import ObjectStore, StorageTarget
from o4o_operator.testing.hosts import BootedHost, HostWorld
from o4o_operator.testing.s3server import S3Server

NAME = "b2-booted-backup"
BUCKET = "bench-b2"
KEY = "bench/booted/one.dump"


@dataclasses.dataclass(frozen=True)
class Options:
    rows: int = 4_000_000
    """About 1 GB of table (``pg_database_size`` is printed: the figure the rest is measured against)."""


def _timed(host: BootedHost, script: str, *, timeout: float = 3600.0, stdin: str | None = None) -> tuple[float, str]:
    started = time.monotonic()
    done = host.run(["bash", "-euo", "pipefail", "-c", script], timeout=timeout, input_text=stdin)
    return time.monotonic() - started, done.stdout + done.stderr


def _mb_per_second(size: int, seconds: float) -> float:
    return round(size / seconds / 1e6, 1) if seconds > 0 else 0.0


def main(options: Options = Options()) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-b2-"))
    with HostWorld() as world, S3Server(workdir, listen_host=world.address) as s3:
        s3.create_bucket(BUCKET)
        host = world.boot_host("bench-b2")
        try:
            return _measure(host, s3, options)
        finally:
            world.remove_host(host)


def _measure(host: BootedHost, s3: S3Server, options: Options) -> dict[str, Any]:
    seconds, _ = _timed(host, "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                              "postgresql curl >/dev/null")
    say(f"B2: installed PostgreSQL in {seconds:.0f}s")
    columns = "g AS id, md5(g::text) AS a, repeat(md5(g::text), 6) AS b"
    generate = f"SELECT {columns} FROM generate_series(1, {options.rows}) g"  # noqa: S608 - rows is an int
    seconds, _ = _timed(host, "sudo -u postgres psql -q -c 'CREATE DATABASE bench' && sudo -u postgres psql -q "
                              f"-d bench -c \"CREATE TABLE t AS {generate}; CREATE INDEX ON t (id); CHECKPOINT\"")
    _, out = _timed(host, "sudo -u postgres psql -tA -d bench -c \"SELECT pg_database_size('bench'), "
                          "current_setting('server_version_num')\"")
    size_text, version = out.strip().split("|")
    database_bytes = int(size_text)
    say(f"B2: generated {database_bytes / 1e9:.2f} GB in {seconds:.0f}s (PostgreSQL {version})")

    # The disk's own copy speed, on a file the size of the database.
    megabytes = max(1, database_bytes // 2**20)
    _timed(host, f"dd if=/dev/urandom of=/var/tmp/dd-source bs=1M count={megabytes} status=none && sync")
    dd_seconds, dd_out = _timed(host, "dd if=/var/tmp/dd-source of=/var/tmp/dd-copy bs=4M conv=fsync 2>&1 "
                                      "&& rm -f /var/tmp/dd-source /var/tmp/dd-copy")
    dd_line = next((line for line in dd_out.splitlines() if "copied" in line), dd_out.strip()[-200:])
    say(f"B2: dd copy of {megabytes} MiB: {dd_seconds:.1f}s ({dd_line})")

    # The backup's steps, as _backup.sh runs them.
    dump_seconds, _ = _timed(host, "install -d -o postgres /var/tmp/b2 && sudo -u postgres pg_dump --format=custom "
                                   "--no-owner -d bench > /var/tmp/b2/one.dump")
    _, size_out = _timed(host, "stat -c %s /var/tmp/b2/one.dump")
    dump_bytes = int(size_out.strip())
    sha_seconds, _ = _timed(host, "sha256sum /var/tmp/b2/one.dump >/dev/null")
    store = ObjectStore(StorageTarget(s3.endpoint, BUCKET, "us-east-1",
                                      StaticCredentials(s3.access_key_id, s3.secret_access_key)), "bench/")
    url = asyncio.run(store.presigned_put(KEY, seconds=3600))
    upload_seconds, _ = _timed(host, "curl -sS --fail --noproxy '*' --upload-file /var/tmp/b2/one.dump "
                                     "-H 'Content-Type: application/octet-stream' --config - >/dev/null",
                               stdin=f'url = "{url}"\n')
    stored = int(s3.client().head_object(Bucket=BUCKET, Key=KEY)["ContentLength"])
    total = dump_seconds + sha_seconds + upload_seconds
    result = {
        "rows": options.rows, "database_bytes": database_bytes, "postgres_version": version,
        "dd": {"bytes": megabytes * 2**20, "seconds": round(dd_seconds, 1),
               "mb_per_second": _mb_per_second(megabytes * 2**20, dd_seconds), "line": dd_line},
        "backup": {"dump_seconds": round(dump_seconds, 1), "sha256_seconds": round(sha_seconds, 1),
                   "upload_seconds": round(upload_seconds, 1), "total_seconds": round(total, 1),
                   "dump_bytes": dump_bytes, "stored_bytes": stored,
                   "database_mb_per_second": _mb_per_second(database_bytes, total)},
    }
    say(f"B2: pg_dump {dump_seconds:.1f}s -> {dump_bytes / 1e6:.0f} MB "
        f"({dump_bytes / database_bytes:.0%} of the database), sha256 {sha_seconds:.1f}s, "
        f"upload {upload_seconds:.1f}s ({stored} bytes stored)")
    say(f"B2: backup {total:.1f}s = {result['backup']['database_mb_per_second']} MB/s of database, against dd's "
        f"{result['dd']['mb_per_second']} MB/s copy: {total / dd_seconds if dd_seconds else 0:.1f}x the copy time")
    write_result(NAME, result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=Options.rows)
    main(Options(rows=parser.parse_args().rows))
