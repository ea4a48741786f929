"""Helpers of tests/real/test_o4o_contract.py (the O4O contract on a booted Debian server): the instance it makes
Ready once, and what its tests ask of it (spec patches, status waits, HTTPS requests, psql on the host, the host's
files). Owns no fixture: a module-scoped fixture is per module file, so the instance and its tests stay there.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from real_support import conditions, dump, wait_for

from o4o_operator.models import BuildSpec
from o4o_operator.pipeline.backups import BACKUP_REQUEST_ANNOTATION
from o4o_operator.rendering.host_context import BASE_DIR_ROOT, STATE_ROOT, instance_slug
from o4o_operator.testing import fixture_o4o, fixture_repo
from o4o_operator.testing.hosts import BootedHost
from o4o_operator.testing.real_world import BACKUP_BUCKET, RealWorld

NAME = "contract"
HEALTH = BuildSpec().health


@dataclass
class Instance:
    namespace: str
    domain: str
    address: str
    host: BootedHost
    obj: dict[str, Any]
    generated: dict[str, str]
    """The operator-owned Secret ``<name>-database`` as first made."""
    name: str = NAME

    @property
    def base_dir(self) -> str:
        return f"{BASE_DIR_ROOT}/{instance_slug(self.namespace, self.name)}"



def patch_spec(world: RealWorld, namespace: str, spec: dict[str, Any], name: str = NAME) -> int:
    world.control_plane.kubectl("patch", "di", name, "-n", namespace, "--type=merge",
                                "-p", json.dumps({"spec": spec}))
    return int(world.get(name, namespace)["metadata"]["generation"])


def settled(world: RealWorld, namespace: str, generation: int, name: str = NAME) -> dict[str, Any]:
    wait_for(world, namespace, name, f"jsonpath={{.status.observedGeneration}}={generation}")
    return wait_for(world, namespace, name, "condition=Ready")


def wait_until(world: RealWorld, namespace: str, what: str, test: Callable[[dict[str, Any]], bool],
                timeout: float = 1500, name: str = NAME) -> dict[str, Any]:
    """Watch status until ``test`` holds (as a user would with ``kubectl get -w``); fail with the status."""
    deadline = time.monotonic() + timeout
    while True:
        obj = world.get(name, namespace)
        if test(obj):
            return obj
        if time.monotonic() > deadline:
            log = world.operator.output()[-6000:] if world.operator else ""
            raise AssertionError(f"{what} not reached:\nstatus: {dump(obj.get('status'))}\noperator log:\n{log}")
        time.sleep(1)  # polling status: kubectl wait cannot ask "any condition with this reason"


def reason_is(reason: str, generation: int) -> Callable[[dict[str, Any]], bool]:
    def test(obj: dict[str, Any]) -> bool:
        status = obj.get("status", {})
        return status.get("observedGeneration") == generation and any(
            c.get("reason") == reason for c in status.get("conditions", []))
    return test


def condition_with(obj: dict[str, Any], reason: str) -> dict[str, Any]:
    found = [c for c in conditions(obj).values() if c.get("reason") == reason and c["type"] != "Ready"]
    assert found, dump(obj["status"])
    return found[0]


def get(world: RealWorld, instance: Instance, path: str) -> tuple[int, str]:
    done = world.curl(instance.domain, instance.address, path)
    assert done.returncode == 0, f"curl https://{instance.domain}{path}: {done.stderr}"
    body, _, code = done.stdout.rpartition("\n")
    return int(code), body


def health(world: RealWorld, instance: Instance) -> Any:
    code, body = get(world, instance, HEALTH.path)
    assert code == 200, body[-500:]
    value: Any = json.loads(body)
    for part in HEALTH.body_field.split("."):
        value = value[part]
    return value


def secret(world: RealWorld, namespace: str, name: str) -> dict[str, str]:
    done = world.control_plane.kubectl("get", "secret", name, "-n", namespace, "-o", "json")
    data = json.loads(done.stdout).get("data") or {}
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def env_file(instance: Instance) -> dict[str, str]:
    """The API's ``.env`` on the host (every value is quoted whole with one of ' " `)."""
    text = instance.host.run(["cat", f"{instance.base_dir}/shared/.env"]).stdout
    values = {}
    for line in text.splitlines():
        key, equals, value = line.partition("=")
        if equals and not line.startswith("#"):
            quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"`"
            values[key] = value[1:-1] if quoted else value
    return values


def psql(instance: Instance, sql: str, database: str = "") -> str:
    """A query as PostgreSQL's superuser on the host (peer authentication), in the instance's database."""
    done = instance.host.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-v", "ON_ERROR_STOP=1", "-tA",
                              "-d", database or instance.generated["DB_NAME"], "-c", sql])
    return done.stdout.strip()


def tables(instance: Instance, database: str = "") -> list[str]:
    """The tables of the instance's database, as ``schema.name``, in the schemas an app's tables live in."""
    rows = psql(instance, "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname NOT IN "
                 "('pg_catalog', 'information_schema') ORDER BY 1", database)
    return rows.splitlines()


def activation_log(instance: Instance, commit: str, name: str = NAME) -> str:
    return instance.host.run(["cat", f"{STATE_ROOT}/instances/{instance_slug(instance.namespace, name)}"
                                     f"/activations/{commit}.log"]).stdout


def everything_the_operator_wrote(world: RealWorld, namespace: str) -> str:
    """Status, events, the log ConfigMap and the operator's own log: where no secret value may appear."""
    plane = world.control_plane
    parts = [json.dumps(world.get(NAME, namespace)),
             plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout,
             plane.kubectl("get", "configmap", f"{NAME}-log", "-n", namespace, "-o", "json", check=False).stdout,
             world.operator.output() if world.operator else ""]
    return "\n".join(parts)


def current_release(instance: Instance) -> str:
    return instance.host.run(["readlink", "-f", f"{instance.base_dir}/current"]).stdout.strip()


def commit_and_bump(world: RealWorld, instance: Instance, files: dict[str, str], message: str) -> tuple[str, int]:
    branch = f"branch-{uuid.uuid4().hex[:8]}"
    commit = fixture_repo.commit_to_branch(world.repository, branch, files, message)
    world.publish()
    return commit, patch_spec(world, instance.namespace, {"source": {"revision": branch}})


def installed_apps(world: RealWorld, instance: Instance) -> dict[str, str]:
    """What the instance's admin API lists as installed (app id -> status), logged in as the operator's admin;
    the same as its ``app_registry`` rows."""
    login = json.dumps({"email": instance.generated["ADMIN_EMAIL"], "password": instance.generated["ADMIN_PASSWORD"],
                        "includeLegacyTokens": True})
    done = world.curl(instance.domain, instance.address, fixture_o4o.LOGIN_PATH,
                      extra=("-H", "content-type: application/json", "--data-binary", login))
    body, _, code = done.stdout.rpartition("\n")
    assert code == "200", f"login: {code} {body[-300:]}"
    token = json.loads(body)["data"]["tokens"]["accessToken"]
    done = world.curl(instance.domain, instance.address, fixture_o4o.APPS_PATH,
                      extra=("-H", f"authorization: Bearer {token}"))
    body, _, code = done.stdout.rpartition("\n")
    assert code == "200", f"apps: {code} {body[-300:]}"
    listed = {app["appId"]: app["status"] for app in json.loads(body)["apps"]}
    rows = psql(instance, "SELECT \"appId\" || '=' || status FROM app_registry")
    assert listed == dict(row.split("=", 1) for row in rows.splitlines() if row), rows
    return listed



# ---- backups, restores and clones (tests 8 to 10) ----------------------------------------------------------------

def backup_on_request(world: RealWorld, instance: Instance, request_id: str) -> dict[str, Any]:
    """Annotate the instance for one backup now, await its outcome; the backup's record in status."""
    world.control_plane.kubectl("annotate", "di", NAME, "-n", instance.namespace, "--overwrite",
                                f"{BACKUP_REQUEST_ANNOTATION}={request_id}")
    obj = wait_for(world, instance.namespace, NAME, f"jsonpath={{.status.database.backupRequest.id}}={request_id}")
    request = obj["status"]["database"]["backupRequest"]
    assert request["outcome"] == "Succeeded", dump(obj["status"])
    instance.obj = obj
    return backup_record(obj, request["backupId"])


def backup_record(obj: dict[str, Any], backup_id: str) -> dict[str, Any]:
    found = [r for r in obj["status"]["database"]["backups"] if r["id"] == backup_id]
    assert found, dump(obj["status"]["database"])
    return found[0]


def stored_archive(world: RealWorld, record: dict[str, Any]) -> bytes:
    """The backup's object in the world's S3 server, checked against its record (size, SHA-256, metadata)."""
    got = world.s3.client().get_object(Bucket=BACKUP_BUCKET, Key=record["key"])
    archive: bytes = got["Body"].read()
    assert archive.startswith(b"PGDMP") and len(archive) == record["size"], record
    assert hashlib.sha256(archive).hexdigest() == record["sha256"] == got["Metadata"]["sha256"], record
    return archive


def count(instance: Instance, table: str, database: str = "") -> int:
    return int(psql(instance, f"SELECT count(*) FROM {table}", database))  # noqa: S608 - the test's own name

