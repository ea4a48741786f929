"""The O4O contract on a booted Debian server (issues 12 and 20, "On the real hosts"): database, its bootstrap,
apps, secrets, migrations, the build's filters and uploads.

One DI on the O4O flavour of the fixture (a real ``tsc`` compile with npm packages, an API that needs
``JWT_SECRET``, connects to the host's PostgreSQL, migrates and reports ``database.status``) is made Ready once
for the module; its env Secret has no ``JWT_SECRET``, so the operator generates one. The tests run in order on
it, each leaving it Ready for the next, except the filter that matches nothing, which leaves it stalled. Its
database is born as O4O's must be (``spec.database.bootstrap`` mode ``synchronize``: the schema from the entities,
the migrations recorded, the seed), since the fixture's migrations fail on an empty database. The last test puts
a second instance on the same server (``provider.existing``: no other server boots) for what needs a fresh
database: one holding a table is never bootstrapped, and a bootstrap whose seed fails stalls naming the field and
starts again from an empty database. Stage times are printed for the record; nothing asserts on time.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from conftest import conditions, dump, make_namespace, print_stage_times, wait_for
from o4o_operator.models import BuildSpec
from o4o_operator.rendering.host_context import BASE_DIR_ROOT, STATE_ROOT, instance_slug
from o4o_operator.testing import fixture_o4o, fixture_repo
from o4o_operator.testing.hosts import BootedHost
from o4o_operator.testing.real_world import RealWorld

pytestmark = [pytest.mark.real, pytest.mark.timeout(3000)]
NAME = "contract"
USER_ENV = {"APP_GREETING": "from the user's Secret"}
"""The user's env Secret: no JWT_SECRET (the operator generates one), a key of the user's own."""
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

    @property
    def base_dir(self) -> str:
        return f"{BASE_DIR_ROOT}/{instance_slug(self.namespace, NAME)}"


# ---- helpers ---------------------------------------------------------------------------------------------------

def _patch_spec(world: RealWorld, namespace: str, spec: dict[str, Any], name: str = NAME) -> int:
    world.control_plane.kubectl("patch", "di", name, "-n", namespace, "--type=merge",
                                "-p", json.dumps({"spec": spec}))
    return int(world.get(name, namespace)["metadata"]["generation"])


def _settled(world: RealWorld, namespace: str, generation: int, name: str = NAME) -> dict[str, Any]:
    wait_for(world, namespace, name, f"jsonpath={{.status.observedGeneration}}={generation}")
    return wait_for(world, namespace, name, "condition=Ready")


def _wait_until(world: RealWorld, namespace: str, what: str, test: Callable[[dict[str, Any]], bool],
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


def _reason_is(reason: str, generation: int) -> Callable[[dict[str, Any]], bool]:
    def test(obj: dict[str, Any]) -> bool:
        status = obj.get("status", {})
        return status.get("observedGeneration") == generation and any(
            c.get("reason") == reason for c in status.get("conditions", []))
    return test


def _condition_with(obj: dict[str, Any], reason: str) -> dict[str, Any]:
    found = [c for c in conditions(obj).values() if c.get("reason") == reason and c["type"] != "Ready"]
    assert found, dump(obj["status"])
    return found[0]


def _get(world: RealWorld, instance: Instance, path: str) -> tuple[int, str]:
    done = world.curl(instance.domain, instance.address, path)
    assert done.returncode == 0, f"curl https://{instance.domain}{path}: {done.stderr}"
    body, _, code = done.stdout.rpartition("\n")
    return int(code), body


def _health(world: RealWorld, instance: Instance) -> Any:
    code, body = _get(world, instance, HEALTH.path)
    assert code == 200, body[-500:]
    value: Any = json.loads(body)
    for part in HEALTH.body_field.split("."):
        value = value[part]
    return value


def _secret(world: RealWorld, namespace: str, name: str) -> dict[str, str]:
    done = world.control_plane.kubectl("get", "secret", name, "-n", namespace, "-o", "json")
    data = json.loads(done.stdout).get("data") or {}
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def _env_file(instance: Instance) -> dict[str, str]:
    """The API's ``.env`` on the host (every value is quoted whole with one of ' " `)."""
    text = instance.host.run(["cat", f"{instance.base_dir}/shared/.env"]).stdout
    values = {}
    for line in text.splitlines():
        key, equals, value = line.partition("=")
        if equals and not line.startswith("#"):
            quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"`"
            values[key] = value[1:-1] if quoted else value
    return values


def _psql(instance: Instance, sql: str, database: str = "") -> str:
    """A query as PostgreSQL's superuser on the host (peer authentication), in the instance's database."""
    done = instance.host.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-v", "ON_ERROR_STOP=1", "-tA",
                              "-d", database or instance.generated["DB_NAME"], "-c", sql])
    return done.stdout.strip()


def _tables(instance: Instance, database: str = "") -> list[str]:
    """The tables of the instance's database, as ``schema.name``, in the schemas an app's tables live in."""
    rows = _psql(instance, "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname NOT IN "
                 "('pg_catalog', 'information_schema') ORDER BY 1", database)
    return rows.splitlines()


def _activation_log(instance: Instance, commit: str, name: str = NAME) -> str:
    return instance.host.run(["cat", f"{STATE_ROOT}/instances/{instance_slug(instance.namespace, name)}"
                                     f"/activations/{commit}.log"]).stdout


def _everything_the_operator_wrote(world: RealWorld, namespace: str) -> str:
    """Status, events, the log ConfigMap and the operator's own log: where no secret value may appear."""
    plane = world.control_plane
    parts = [json.dumps(world.get(NAME, namespace)),
             plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout,
             plane.kubectl("get", "configmap", f"{NAME}-log", "-n", namespace, "-o", "json", check=False).stdout,
             world.operator.output() if world.operator else ""]
    return "\n".join(parts)


def _current_release(instance: Instance) -> str:
    return instance.host.run(["readlink", "-f", f"{instance.base_dir}/current"]).stdout.strip()


def _commit_and_bump(world: RealWorld, instance: Instance, files: dict[str, str], message: str) -> tuple[str, int]:
    branch = f"branch-{uuid.uuid4().hex[:8]}"
    commit = fixture_repo.commit_to_branch(world.repository, branch, files, message)
    world.publish()
    return commit, _patch_spec(world, instance.namespace, {"source": {"revision": branch}})


# ---- the instance ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_namespace(real_world: RealWorld, request: pytest.FixtureRequest) -> str:
    """The module's namespace, whose env Secret has no JWT_SECRET."""
    return make_namespace(real_world, request, USER_ENV)


@pytest.fixture(scope="module")
def instance(real_world: RealWorld, real_namespace: str) -> Instance:
    started = time.monotonic()
    real_world.apply(real_world.manifest(NAME, real_namespace, apps=(fixture_o4o.KNOWN_APP,)))
    obj = wait_for(real_world, real_namespace, NAME, "condition=Ready")
    print(f"\napply-to-Ready: {time.monotonic() - started:.1f} s")
    print_stage_times("stages", obj)
    server = obj["status"]["server"]
    return Instance(real_namespace, obj["spec"]["domain"], server["ipAddress"], real_world.host(server["name"]), obj,
                    _secret(real_world, real_namespace, f"{NAME}-database"))


# ---- the tests -------------------------------------------------------------------------------------------------

def test_1_ready_means_site_and_api_over_https_the_migrated_table_and_a_healthy_database(
        real_world: RealWorld, instance: Instance) -> None:
    code, body = _get(real_world, instance, "/")
    assert code == 200 and fixture_repo.SITE_MARKER in body, body[-500:]
    assert f"https://{instance.domain}" in body  # VITE_API_URL, baked in for the instance's own domain
    assert _health(real_world, instance) == HEALTH.expect
    assert fixture_o4o.MIGRATED_TABLE == "fixture_pages"
    assert _psql(instance, "SELECT to_regclass('public.fixture_pages') IS NOT NULL") == "t"
    assert _psql(instance, "SELECT title FROM fixture_pages WHERE slug = 'home'") == "Home"
    assert _psql(instance, "SELECT current_setting('ssl')") == "on"
    assert _psql(instance, "SELECT extname FROM pg_extension WHERE extname = 'uuid-ossp'") == "uuid-ossp"
    conditions_now = conditions(instance.obj)
    assert conditions_now["DatabaseReady"]["status"] == "True", dump(conditions_now)
    database_message = conditions_now["DatabaseReady"]["message"]  # names its database; the password is not there
    assert f"database {instance.generated['DB_NAME']} at 127.0.0.1:5432" in database_message, database_message
    assert instance.generated["DB_PASSWORD"] not in database_message


def test_1b_the_fresh_database_was_born_from_the_entities_recorded_every_migration_and_was_seeded(
        real_world: RealWorld, instance: Instance) -> None:
    """Issue 20: the fixture's migrations fail on an empty database, so the bootstrap made the schema from the
    entities (through the generic TypeORM helper), recorded every migration, seeded, and then nothing migrated."""
    commit = instance.obj["status"]["source"]["commit"]
    database = instance.obj["status"]["database"]
    assert (database["bootstrap"], database["bootstrapCommit"]) == ("synchronize", commit), dump(database)
    assert database["bootstrappedAt"].endswith("Z")
    assert set(fixture_o4o.ENTITY_TABLES) <= set(_tables(instance))
    recorded = _psql(instance, 'SELECT "name" FROM typeorm_migrations ORDER BY "id"').splitlines()
    assert recorded == list(fixture_o4o.FIXTURE_MIGRATIONS)
    assert _psql(instance, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'fixture_pages' "
                           "AND column_name = 'summary'") == "1"  # the entities' column; its migration never ran
    log = _activation_log(instance, commit)
    for line in ("typeorm-bootstrap: schemas: catalog", "typeorm-bootstrap: synchronized 5 entities",
                 f"typeorm-bootstrap: recorded {len(fixture_o4o.FIXTURE_MIGRATIONS)} migration(s)",
                 "seeded: 1 page(s), 1 account(s)", "No pending migrations", "Migrations executed: 0"):
        assert line in log, log[-3000:]
    assert log.index("seeded: 1 page(s)") < log.index("No pending migrations")  # the seed, then the migration
    # The seed's account got the generated SEED_BOOTSTRAP_PASSWORD, never a default one: it logs in with it.
    login = json.dumps({"email": fixture_o4o.SEED_ACCOUNT, "password": instance.generated["SEED_BOOTSTRAP_PASSWORD"]})
    done = real_world.curl(instance.domain, instance.address, fixture_o4o.LOGIN_PATH,
                           extra=("-H", "content-type: application/json", "--data-binary", login))
    assert done.stdout.rpartition("\n")[2] == "200", done.stdout[-300:]
    assert instance.generated["SEED_BOOTSTRAP_PASSWORD"] not in log


def _installed_apps(world: RealWorld, instance: Instance) -> dict[str, str]:
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
    rows = _psql(instance, "SELECT \"appId\" || '=' || status FROM app_registry")
    assert listed == dict(row.split("=", 1) for row in rows.splitlines() if row), rows
    return listed


def test_2_apps_in_spec_are_installed_and_removed_through_the_api_and_an_unknown_one_stalls(
        real_world: RealWorld, instance: Instance) -> None:
    app = fixture_o4o.KNOWN_APP
    installed = _installed_apps(real_world, instance)
    assert installed.get(app) == "active", installed

    generation = _patch_spec(real_world, instance.namespace, {"apps": []})
    _settled(real_world, instance.namespace, generation)
    installed = _installed_apps(real_world, instance)
    assert app not in installed, installed

    generation = _patch_spec(real_world, instance.namespace, {"apps": [app, "no-such-app"]})
    stalled = _wait_until(real_world, instance.namespace, "UnknownApp", _reason_is("UnknownApp", generation))
    apps = conditions(stalled)["AppsReady"]
    assert apps["status"] == "False" and apps["reason"] == "UnknownApp", dump(apps)
    assert "spec.apps[1]" in apps["message"] and "no-such-app" in apps["message"], apps["message"]

    refused = fixture_o4o.REFUSED_APP
    generation = _patch_spec(real_world, instance.namespace, {"apps": [app, refused]})
    stalled = _wait_until(real_world, instance.namespace, "AppRefused", _reason_is("AppRefused", generation))
    apps = conditions(stalled)["AppsReady"]
    assert fixture_o4o.REFUSAL in apps["message"] and "spec.apps[1]" in apps["message"], apps["message"]

    generation = _patch_spec(real_world, instance.namespace, {"apps": [app]})
    instance.obj = _settled(real_world, instance.namespace, generation)
    installed = _installed_apps(real_world, instance)
    assert installed.get(app) == "active" and refused not in installed, installed


def test_3_a_jwt_secret_missing_from_the_users_secret_is_generated_and_one_the_user_supplies_wins(
        real_world: RealWorld, instance: Instance) -> None:
    generated = instance.generated
    env = _env_file(instance)
    for key in ("JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET", "DB_PASSWORD", "SEED_BOOTSTRAP_PASSWORD",
                "ADMIN_VAULT_PASSWORD", "SUPER_ADMIN_BOOTSTRAP_PASSWORD", "ENCRYPTION_KEY"):
        assert len(generated[key]) >= 32, key
        assert env[key] == generated[key], key
    assert env["APP_GREETING"] == USER_ENV["APP_GREETING"]
    assert env["NODE_ENV"] == "production" and env["FRONTEND_URL"] == f"https://{instance.domain}"
    written = _everything_the_operator_wrote(real_world, instance.namespace)
    for key in ("JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET", "DB_PASSWORD", "ADMIN_PASSWORD",
                "SEED_BOOTSTRAP_PASSWORD", "ENCRYPTION_KEY"):
        assert generated[key] not in written, f"the value of {key} appears in status, events or logs"

    configured_before = {s["name"]: s.get("finishedAt") for s in instance.obj["status"]["stages"]}["configure"]
    users = f"user-{uuid.uuid4().hex}"
    real_world.create_secrets(instance.namespace, env={**USER_ENV, "JWT_SECRET": users})

    def reconfigured(obj: dict[str, Any]) -> bool:
        stages = {s["name"]: s for s in obj.get("status", {}).get("stages", [])}
        ready = conditions(obj).get("Ready", {}).get("status") == "True"
        return ready and stages["configure"].get("finishedAt") != configured_before

    instance.obj = _wait_until(real_world, instance.namespace, "configure re-run", reconfigured)
    assert _env_file(instance)["JWT_SECRET"] == users
    assert _secret(real_world, instance.namespace, f"{NAME}-database")["JWT_SECRET"] == generated["JWT_SECRET"]
    assert _health(real_world, instance) == HEALTH.expect
    assert users not in _everything_the_operator_wrote(real_world, instance.namespace)


def test_4_a_failing_migration_keeps_the_old_release_serving_with_reason_migration_failed(
        real_world: RealWorld, instance: Instance) -> None:
    _, good_page = _get(real_world, instance, "/")
    good_release = _current_release(instance)
    good_commit = instance.obj["status"]["source"]["commit"]
    branch = f"broken-migration-{uuid.uuid4().hex[:6]}"
    fixture_o4o.commit_broken_migration(real_world.repository, branch)
    real_world.publish()
    generation = _patch_spec(real_world, instance.namespace, {"source": {"revision": branch}})
    failed = _wait_until(real_world, instance.namespace, "MigrationFailed",
                         _reason_is("MigrationFailed", generation))
    condition = _condition_with(failed, "MigrationFailed")
    print(f"\n{condition['type']} {condition['reason']}: {condition['message'][:300]}")
    assert conditions(failed)["Ready"]["status"] == "False"
    assert _current_release(instance) == good_release
    assert good_commit in good_release
    code, body = _get(real_world, instance, "/")
    assert code == 200 and body == good_page
    assert _health(real_world, instance) == HEALTH.expect
    assert _psql(instance, "SELECT to_regclass('public.fixture_broken') IS NULL") == "t"  # rolled back


def test_4b_a_revision_that_adds_one_migration_runs_only_that_one(real_world: RealWorld, instance: Instance) -> None:
    """Also the way back from test 4. Upgrades run the app's own migration command unchanged: only what is newer than
    the bootstrap's baseline runs, and the database is never bootstrapped again."""
    bootstrapped = instance.obj["status"]["database"]
    branch = f"one-migration-{uuid.uuid4().hex[:6]}"
    commit = fixture_o4o.commit_migration(real_world.repository, "AddFixturePagesPublished", 1700000000100,
                                          ('ALTER TABLE "fixture_pages" ADD COLUMN "published" boolean',),
                                          "One new migration", branch)
    real_world.publish()
    generation = _patch_spec(real_world, instance.namespace, {"source": {"revision": branch}})
    instance.obj = _settled(real_world, instance.namespace, generation)
    assert instance.obj["status"]["source"]["commit"] == commit
    log = _activation_log(instance, commit)
    assert "Migrations executed: 1" in log and "AddFixturePagesPublished1700000000100 has been executed" in log, log
    assert "typeorm-bootstrap" not in log
    recorded = _psql(instance, 'SELECT "name" FROM typeorm_migrations ORDER BY "id"').splitlines()
    assert recorded == [*fixture_o4o.FIXTURE_MIGRATIONS, "AddFixturePagesPublished1700000000100"]
    assert _psql(instance, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'fixture_pages' "
                           "AND column_name = 'published'") == "1"
    assert instance.obj["status"]["database"] == bootstrapped
    assert _health(real_world, instance) == HEALTH.expect


def test_5_uploads_survive_a_revision_bump(real_world: RealWorld, instance: Instance) -> None:
    name = f"photo-{uuid.uuid4().hex[:8]}.txt"
    content = f"an upload {uuid.uuid4().hex}"
    uploads = f"{instance.base_dir}/shared/uploads"
    owner = instance.host.run(["stat", "-c", "%U", uploads]).stdout.strip()  # the app user, as the API writes
    instance.host.run(["runuser", "-u", owner, "--", "sh", "-c", 'umask 022 && cat > "$1"', "sh", f"{uploads}/{name}"],
                      input_text=content)
    assert _get(real_world, instance, f"/uploads/{name}") == (200, content)

    marker = f"release {uuid.uuid4().hex[:8]}"
    commit, generation = _commit_and_bump(real_world, instance,
                                          {fixture_repo.SITE_PAGE: fixture_repo.site_page(marker)}, "A feature")
    started = time.monotonic()
    instance.obj = _settled(real_world, instance.namespace, generation)
    print(f"\nrevision bump to Ready: {time.monotonic() - started:.1f} s")
    print_stage_times("stages after the bump", instance.obj)
    assert instance.obj["status"]["source"]["commit"] == commit
    assert commit in _current_release(instance)
    code, body = _get(real_world, instance, "/")
    assert code == 200 and marker in body, body[-500:]
    assert _get(real_world, instance, f"/uploads/{name}") == (200, content)
    release_uploads = instance.host.run(["readlink", "-f", f"{_current_release(instance)}/"
                                         f"{BuildSpec().api.directory}/{BuildSpec().api.uploads_dir}"]).stdout
    assert release_uploads.strip() == uploads


def test_6_a_site_filter_that_matches_nothing_fails_the_build_with_a_reason(
        real_world: RealWorld, instance: Instance) -> None:
    _, good_page = _get(real_world, instance, "/")
    generation = _patch_spec(real_world, instance.namespace, {"build": {"site": {"package": "@o4o/no-such-site"}}})
    failed = _wait_until(real_world, instance.namespace, "PackageNotFound",
                         _reason_is("PackageNotFound", generation))
    built = conditions(failed)["SiteBuilt"]
    assert built["status"] == "False" and built["reason"] == "PackageNotFound", dump(built)
    assert "@o4o/no-such-site" in built["message"]
    assert conditions(failed)["Ready"]["status"] == "False"
    code, body = _get(real_world, instance, "/")
    assert code == 200 and body == good_page


FRESH = "fresh"
FAILING_SEED = ["node", "dist/no-such-seed.js"]


def test_7_on_a_fresh_database_one_table_prevents_the_bootstrap_and_a_failing_seed_stalls_then_retries_clean(
        real_world: RealWorld, instance: Instance) -> None:
    """A second instance on the contract's server (``provider.existing``, its own user, database and API port)."""
    namespace = instance.namespace
    # The server offers several host keys; which one an SSH client negotiates is its choice: trust the first seen.
    ssh = {**instance.obj["spec"]["ssh"], "trustOnFirstUse": True}
    manifest = real_world.manifest(
        FRESH, namespace, apps=(), provider={"existing": {"host": instance.address, "port": 22}}, ssh=ssh,
        apiPort=3002, source={"repository": real_world.repository_url, "revision": "no-such-branch"},
        build={"api": {**fixture_o4o.BUILD_API, "seedCommand": FAILING_SEED}})
    started = time.monotonic()
    real_world.apply(manifest)
    wait_for(real_world, namespace, FRESH, "condition=DatabaseReady")  # the source stage stalls: nothing built yet
    database = _secret(real_world, namespace, f"{FRESH}-database")["DB_NAME"]
    state = f"{STATE_ROOT}/instances/{instance_slug(namespace, FRESH)}"

    # One table in it: never bootstrapped. The fixture's migrations then fail on it, as O4O's would.
    _psql(instance, "CREATE TABLE public.kept_by_its_owner (id int)", database)
    generation = _patch_spec(real_world, namespace, {"source": {"revision": "main"}}, FRESH)
    failed = _wait_until(real_world, namespace, "MigrationFailed", _reason_is("MigrationFailed", generation),
                         name=FRESH)
    print(f"\nfresh instance to MigrationFailed: {time.monotonic() - started:.1f} s")
    print(f"MigrationFailed: {_condition_with(failed, 'MigrationFailed')['message'][:300]}")
    assert fixture_o4o.EMPTY_DATABASE_FAILURE in _activation_log(instance, failed["status"]["source"]["commit"], FRESH)
    assert "bootstrap" not in failed["status"].get("database", {}), dump(failed["status"])
    assert instance.host.run(["test", "-e", f"{state}/bootstrap"], check=False).returncode != 0
    assert _tables(instance, database) == ["public.kept_by_its_owner", "public.typeorm_migrations"]

    # Its owner empties it; a bootstrap whose seed fails stalls naming the field (with node's own words).
    _psql(instance, "DROP TABLE public.kept_by_its_owner, public.typeorm_migrations", database)
    generation = _patch_spec(real_world, namespace, {"build": {"api": {"seedCommand": [*FAILING_SEED, "--now"]}}},
                             FRESH)
    stalled = _wait_until(real_world, namespace, "DatabaseBootstrapFailed",
                          _reason_is("DatabaseBootstrapFailed", generation), name=FRESH)
    condition = _condition_with(stalled, "DatabaseBootstrapFailed")
    print(f"{condition['type']} {condition['reason']}: {condition['message'][:400]}")
    assert "spec.build.api.seedCommand (node dist/no-such-seed.js --now) failed" in condition["message"]
    commit = stalled["status"]["source"]["commit"]
    assert "Cannot find module" in _activation_log(instance, commit, FRESH)  # node's own words, on the host
    assert conditions(stalled)["Stalled"]["status"] == "True"
    secrets = _secret(real_world, namespace, f"{FRESH}-database")
    assert secrets["DB_PASSWORD"] not in condition["message"]
    half = _tables(instance, database)
    assert set(fixture_o4o.ENTITY_TABLES) <= set(half)  # the schema step ran; the seed did not
    _psql(instance, "CREATE TABLE public.left_from_the_failure (id int)", database)

    # The seed fixed: the retry drops the operator's own database and starts from empty.
    generation = _patch_spec(real_world, namespace, {"build": {"api": {"seedCommand": list(fixture_o4o.SEED_COMMAND)}}},
                             FRESH)
    ready = _settled(real_world, namespace, generation, FRESH)
    print(f"fresh instance Ready after the retry: {time.monotonic() - started:.1f} s")
    tables = _tables(instance, database)
    assert "public.left_from_the_failure" not in tables and set(fixture_o4o.ENTITY_TABLES) <= set(tables)
    assert ready["status"]["database"]["bootstrap"] == "synchronize"
    assert _psql(instance, "SELECT title FROM fixture_pages WHERE slug = 'home'", database) == "Home"
    recorded = _psql(instance, 'SELECT "name" FROM typeorm_migrations ORDER BY "id"', database).splitlines()
    assert recorded == list(fixture_o4o.FIXTURE_MIGRATIONS)

