"""B1: backup time and size for the fixture's database in the sandbox world (figures only, no asserts).

One instance with ``spec.database.backup`` targeting a Lightsail bucket the operator makes (the local Lightsail
keeps it in the real S3 server, versitygw) goes to Ready: its first release is backed up before it migrates.
Then ``requests`` on-request backups (annotation ``deploy.o4o.io/backup-request``) are timed from the annotation
to the outcome in status, one after the other: the whole path (wake-up, presign, SSH, the host's ``pg_dump``,
SHA-256 and upload with curl, the operator's HEAD and metadata copy, retention, the status write). The sandbox's
``pg_dump`` is the shim's (a custom-format archive of the fixture's tables), so the size is the fixture's; what a
real PostgreSQL costs per gigabyte is in ``bench/b2_booted_backup.py`` when a booted host is available.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import bench_world, say, start_control_plane, write_result
from o4o_operator.testing.lightsail_buckets import S3ServerBuckets
from o4o_operator.testing.s3server import S3Server
from o4o_operator.testing.world import LocalWorld

NAME = "b1-backups"
NAMESPACE = "bench-b1"
INSTANCE = "backed"


@dataclasses.dataclass(frozen=True)
class Options:
    requests: int = 5
    subnet: int = 93
    timeout: float = 600.0


def _wait(world: LocalWorld, condition: str, timeout: float) -> dict[str, Any]:
    world.control_plane.kubectl("wait", f"--for={condition}", f"di/{INSTANCE}", "-n", NAMESPACE,
                                f"--timeout={int(timeout)}s", timeout=timeout + 30)
    return world.get(INSTANCE, NAMESPACE)


def main(options: Options = Options()) -> dict[str, Any]:
    plane = start_control_plane()
    workdir = Path(tempfile.mkdtemp(prefix="bench-b1-"))
    try:
        with S3Server(workdir) as s3:
            world = bench_world(plane, subnet=options.subnet)
            world.lightsail.hold_buckets_in(S3ServerBuckets(s3))
            world.start()
            try:
                return _measure(world, options)
            finally:
                world.stop()
    finally:
        plane.stop()


def _measure(world: LocalWorld, options: Options) -> dict[str, Any]:
    world.control_plane.create_namespace(NAMESPACE)
    world.create_secrets(NAMESPACE)
    started = time.monotonic()
    world.apply(world.manifest(INSTANCE, NAMESPACE, database={"backup": {
        "target": {"lightsailBucket": {}}, "retention": {"count": options.requests + 1}}}))
    ready = _wait(world, "condition=Ready", options.timeout)
    ready_seconds = time.monotonic() - started
    [first] = ready["status"]["database"]["backups"]
    say(f"B1: Ready in {ready_seconds:.1f}s; the first release's backup: {first['size']} bytes "
        f"(PostgreSQL {first['postgresVersion']})")
    seconds: list[float] = []
    sizes: list[int] = []
    for number in range(1, options.requests + 1):
        request = f"bench-{number}"
        began = time.monotonic()
        world.control_plane.kubectl("annotate", "di", INSTANCE, "-n", NAMESPACE, "--overwrite",
                                    f"deploy.o4o.io/backup-request={request}")
        done = _wait(world, "jsonpath={.status.database.backupRequest.id}=" + request, options.timeout)
        seconds.append(time.monotonic() - began)
        outcome = done["status"]["database"]["backupRequest"]
        taken = [r for r in done["status"]["database"]["backups"] if r["id"] == outcome.get("backupId")]
        sizes.extend(r["size"] for r in taken)
        say(f"B1: request {request}: {outcome['outcome']} in {seconds[-1]:.2f}s"
            + (f", {taken[0]['size']} bytes" if taken else f" ({outcome.get('message', '')})"))
    result = {
        "ready_seconds": round(ready_seconds, 1),
        "first_backup_bytes": first["size"],
        "request_seconds": {"median": round(statistics.median(seconds), 2), "min": round(min(seconds), 2),
                            "max": round(max(seconds), 2), "n": len(seconds)},
        "request_backup_bytes": sizes,
    }
    write_result(NAME, result)
    return result


if __name__ == "__main__":
    main()
