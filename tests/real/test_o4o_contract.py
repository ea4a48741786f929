"""The O4O contract on a booted Debian server (issues 12 and 20, "On the real hosts"): database, its bootstrap,
apps, secrets, migrations, the build's filters and uploads.

One DI on the O4O flavour of the fixture (a real ``tsc`` compile with npm packages, an API that needs
``JWT_SECRET``, connects to the host's PostgreSQL, migrates and reports ``database.status``) is made Ready once
for the module; its env Secret has no ``JWT_SECRET``, so the operator generates one. The tests run in order on
it, each leaving it Ready for the next, except the filter that matches nothing, which leaves it stalled. Its
database is born as O4O's must be (``spec.database.bootstrap`` mode ``synchronize``: the schema from the entities,
the migrations recorded, the seed), since the fixture's migrations fail on an empty database. Test 7 puts
a second instance on the same server (``provider.existing``: no other server boots) for what needs a fresh
database: one holding a table is never bootstrapped, and a bootstrap whose seed fails stalls naming the field and
starts again from an empty database. Tests 8 to 10 (issue 21) back the instance up to the world's real S3 server
(versitygw on the bridge address: the host uploads and downloads through presigned URLs, bypassing its proxy):
a table dropped by hand comes back from a backup on request; the next release keeps that restore in its spec and
does not restore again; the backup the operator took before its damaging migration restores the data with the
previous release; and a third instance on the same server, cloned from a backup, serves the rows under its own
domain with its own role and password. Stage times and each of these tests' durations are printed for the record;
nothing asserts on time. Helpers: ``o4o_contract_support.py``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import o4o_contract_support as support
import pytest
from o4o_contract_support import HEALTH, NAME, Instance
from real_support import conditions, dump, make_namespace, print_stage_times, wait_for

from o4o_operator.models import BuildSpec
from o4o_operator.rendering.host_context import STATE_ROOT, instance_slug
from o4o_operator.testing import fixture_o4o, fixture_repo
from o4o_operator.testing.real_world import RealWorld

pytestmark = [pytest.mark.real, pytest.mark.timeout(3000)]
USER_ENV = {"APP_GREETING": "from the user's Secret"}
"""The user's env Secret: no JWT_SECRET (the operator generates one), a key of the user's own."""


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
                    support.secret(real_world, real_namespace, f"{NAME}-database"))


# ---- the tests -------------------------------------------------------------------------------------------------

def test_1_ready_means_site_and_api_over_https_the_migrated_table_and_a_healthy_database(
        real_world: RealWorld, instance: Instance) -> None:
    code, body = support.get(real_world, instance, "/")
    assert code == 200 and fixture_repo.SITE_MARKER in body, body[-500:]
    assert f"https://{instance.domain}" in body  # VITE_API_URL, baked in for the instance's own domain
    assert support.health(real_world, instance) == HEALTH.expect
    assert fixture_o4o.MIGRATED_TABLE == "fixture_pages"
    assert support.psql(instance, "SELECT to_regclass('public.fixture_pages') IS NOT NULL") == "t"
    assert support.psql(instance, "SELECT title FROM fixture_pages WHERE slug = 'home'") == "Home"
    assert support.psql(instance, "SELECT current_setting('ssl')") == "on"
    assert support.psql(instance, "SELECT extname FROM pg_extension WHERE extname = 'uuid-ossp'") == "uuid-ossp"
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
    assert set(fixture_o4o.ENTITY_TABLES) <= set(support.tables(instance))
    recorded = support.psql(instance, 'SELECT "name" FROM typeorm_migrations ORDER BY "id"').splitlines()
    assert recorded == list(fixture_o4o.FIXTURE_MIGRATIONS)
    assert support.psql(instance, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'fixture_pages' "
                           "AND column_name = 'summary'") == "1"  # the entities' column; its migration never ran
    log = support.activation_log(instance, commit)
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



def test_2_apps_in_spec_are_installed_and_removed_through_the_api_and_an_unknown_one_stalls(
        real_world: RealWorld, instance: Instance) -> None:
    app = fixture_o4o.KNOWN_APP
    installed = support.installed_apps(real_world, instance)
    assert installed.get(app) == "active", installed

    generation = support.patch_spec(real_world, instance.namespace, {"apps": []})
    support.settled(real_world, instance.namespace, generation)
    installed = support.installed_apps(real_world, instance)
    assert app not in installed, installed

    generation = support.patch_spec(real_world, instance.namespace, {"apps": [app, "no-such-app"]})
    stalled = support.wait_until(real_world, instance.namespace, "UnknownApp",
                                 support.reason_is("UnknownApp", generation))
    apps = conditions(stalled)["AppsReady"]
    assert apps["status"] == "False" and apps["reason"] == "UnknownApp", dump(apps)
    assert "spec.apps[1]" in apps["message"] and "no-such-app" in apps["message"], apps["message"]

    refused = fixture_o4o.REFUSED_APP
    generation = support.patch_spec(real_world, instance.namespace, {"apps": [app, refused]})
    stalled = support.wait_until(real_world, instance.namespace, "AppRefused",
                                 support.reason_is("AppRefused", generation))
    apps = conditions(stalled)["AppsReady"]
    assert fixture_o4o.REFUSAL in apps["message"] and "spec.apps[1]" in apps["message"], apps["message"]

    generation = support.patch_spec(real_world, instance.namespace, {"apps": [app]})
    instance.obj = support.settled(real_world, instance.namespace, generation)
    installed = support.installed_apps(real_world, instance)
    assert installed.get(app) == "active" and refused not in installed, installed


def test_3_a_jwt_secret_missing_from_the_users_secret_is_generated_and_one_the_user_supplies_wins(
        real_world: RealWorld, instance: Instance) -> None:
    generated = instance.generated
    env = support.env_file(instance)
    for key in ("JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET", "DB_PASSWORD", "SEED_BOOTSTRAP_PASSWORD",
                "ADMIN_VAULT_PASSWORD", "SUPER_ADMIN_BOOTSTRAP_PASSWORD", "ENCRYPTION_KEY"):
        assert len(generated[key]) >= 32, key
        assert env[key] == generated[key], key
    assert env["APP_GREETING"] == USER_ENV["APP_GREETING"]
    assert env["NODE_ENV"] == "production" and env["FRONTEND_URL"] == f"https://{instance.domain}"
    written = support.everything_the_operator_wrote(real_world, instance.namespace)
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

    instance.obj = support.wait_until(real_world, instance.namespace, "configure re-run", reconfigured)
    assert support.env_file(instance)["JWT_SECRET"] == users
    assert support.secret(real_world, instance.namespace, f"{NAME}-database")["JWT_SECRET"] == generated["JWT_SECRET"]
    assert support.health(real_world, instance) == HEALTH.expect
    assert users not in support.everything_the_operator_wrote(real_world, instance.namespace)


def test_4_a_failing_migration_keeps_the_old_release_serving_with_reason_migration_failed(
        real_world: RealWorld, instance: Instance) -> None:
    _, good_page = support.get(real_world, instance, "/")
    good_release = support.current_release(instance)
    good_commit = instance.obj["status"]["source"]["commit"]
    branch = f"broken-migration-{uuid.uuid4().hex[:6]}"
    fixture_o4o.commit_broken_migration(real_world.repository, branch)
    real_world.publish()
    generation = support.patch_spec(real_world, instance.namespace, {"source": {"revision": branch}})
    failed = support.wait_until(real_world, instance.namespace, "MigrationFailed",
                                support.reason_is("MigrationFailed", generation))
    condition = support.condition_with(failed, "MigrationFailed")
    print(f"\n{condition['type']} {condition['reason']}: {condition['message'][:300]}")
    assert conditions(failed)["Ready"]["status"] == "False"
    assert support.current_release(instance) == good_release
    assert good_commit in good_release
    code, body = support.get(real_world, instance, "/")
    assert code == 200 and body == good_page
    assert support.health(real_world, instance) == HEALTH.expect
    assert support.psql(instance, "SELECT to_regclass('public.fixture_broken') IS NULL") == "t"  # rolled back


def test_4b_a_revision_that_adds_one_migration_runs_only_that_one(real_world: RealWorld, instance: Instance) -> None:
    """Also the way back from test 4. Upgrades run the app's own migration command unchanged: only what is newer than
    the bootstrap's baseline runs, and the database is never bootstrapped again."""
    bootstrapped = instance.obj["status"]["database"]
    branch = f"one-migration-{uuid.uuid4().hex[:6]}"
    commit = fixture_o4o.commit_migration(real_world.repository, "AddFixturePagesPublished", 1700000000100,
                                          ('ALTER TABLE "fixture_pages" ADD COLUMN "published" boolean',),
                                          "One new migration", branch)
    real_world.publish()
    generation = support.patch_spec(real_world, instance.namespace, {"source": {"revision": branch}})
    instance.obj = support.settled(real_world, instance.namespace, generation)
    assert instance.obj["status"]["source"]["commit"] == commit
    log = support.activation_log(instance, commit)
    assert "Migrations executed: 1" in log and "AddFixturePagesPublished1700000000100 has been executed" in log, log
    assert "typeorm-bootstrap" not in log
    recorded = support.psql(instance, 'SELECT "name" FROM typeorm_migrations ORDER BY "id"').splitlines()
    assert recorded == [*fixture_o4o.FIXTURE_MIGRATIONS, "AddFixturePagesPublished1700000000100"]
    assert support.psql(instance, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'fixture_pages' "
                           "AND column_name = 'published'") == "1"
    assert instance.obj["status"]["database"] == bootstrapped
    assert support.health(real_world, instance) == HEALTH.expect


def test_5_uploads_survive_a_revision_bump(real_world: RealWorld, instance: Instance) -> None:
    name = f"photo-{uuid.uuid4().hex[:8]}.txt"
    content = f"an upload {uuid.uuid4().hex}"
    uploads = f"{instance.base_dir}/shared/uploads"
    owner = instance.host.run(["stat", "-c", "%U", uploads]).stdout.strip()  # the app user, as the API writes
    instance.host.run(["runuser", "-u", owner, "--", "sh", "-c", 'umask 022 && cat > "$1"', "sh", f"{uploads}/{name}"],
                      input_text=content)
    assert support.get(real_world, instance, f"/uploads/{name}") == (200, content)

    marker = f"release {uuid.uuid4().hex[:8]}"
    commit, generation = support.commit_and_bump(real_world, instance,
                                          {fixture_repo.SITE_PAGE: fixture_repo.site_page(marker)}, "A feature")
    started = time.monotonic()
    instance.obj = support.settled(real_world, instance.namespace, generation)
    print(f"\nrevision bump to Ready: {time.monotonic() - started:.1f} s")
    print_stage_times("stages after the bump", instance.obj)
    assert instance.obj["status"]["source"]["commit"] == commit
    assert commit in support.current_release(instance)
    code, body = support.get(real_world, instance, "/")
    assert code == 200 and marker in body, body[-500:]
    assert support.get(real_world, instance, f"/uploads/{name}") == (200, content)
    release_uploads = instance.host.run(["readlink", "-f", f"{support.current_release(instance)}/"
                                         f"{BuildSpec().api.directory}/{BuildSpec().api.uploads_dir}"]).stdout
    assert release_uploads.strip() == uploads


def test_6_a_site_filter_that_matches_nothing_fails_the_build_with_a_reason(
        real_world: RealWorld, instance: Instance) -> None:
    _, good_page = support.get(real_world, instance, "/")
    generation = support.patch_spec(real_world, instance.namespace,
                                    {"build": {"site": {"package": "@o4o/no-such-site"}}})
    failed = support.wait_until(real_world, instance.namespace, "PackageNotFound",
                                support.reason_is("PackageNotFound", generation))
    built = conditions(failed)["SiteBuilt"]
    assert built["status"] == "False" and built["reason"] == "PackageNotFound", dump(built)
    assert "@o4o/no-such-site" in built["message"]
    assert conditions(failed)["Ready"]["status"] == "False"
    code, body = support.get(real_world, instance, "/")
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
    database = support.secret(real_world, namespace, f"{FRESH}-database")["DB_NAME"]
    state = f"{STATE_ROOT}/instances/{instance_slug(namespace, FRESH)}"

    # One table in it: never bootstrapped. The fixture's migrations then fail on it, as O4O's would.
    support.psql(instance, "CREATE TABLE public.kept_by_its_owner (id int)", database)
    generation = support.patch_spec(real_world, namespace, {"source": {"revision": "main"}}, FRESH)
    failed = support.wait_until(real_world, namespace, "MigrationFailed",
                                support.reason_is("MigrationFailed", generation), name=FRESH)
    print(f"\nfresh instance to MigrationFailed: {time.monotonic() - started:.1f} s")
    print(f"MigrationFailed: {support.condition_with(failed, 'MigrationFailed')['message'][:300]}")
    failed_log = support.activation_log(instance, failed["status"]["source"]["commit"], FRESH)
    assert fixture_o4o.EMPTY_DATABASE_FAILURE in failed_log
    assert "bootstrap" not in failed["status"].get("database", {}), dump(failed["status"])
    assert instance.host.run(["test", "-e", f"{state}/bootstrap"], check=False).returncode != 0
    assert support.tables(instance, database) == ["public.kept_by_its_owner", "public.typeorm_migrations"]

    # Its owner empties it; a bootstrap whose seed fails stalls naming the field (with node's own words).
    support.psql(instance, "DROP TABLE public.kept_by_its_owner, public.typeorm_migrations", database)
    generation = support.patch_spec(real_world, namespace,
                                    {"build": {"api": {"seedCommand": [*FAILING_SEED, "--now"]}}}, FRESH)
    stalled = support.wait_until(real_world, namespace, "DatabaseBootstrapFailed",
                                 support.reason_is("DatabaseBootstrapFailed", generation), name=FRESH)
    condition = support.condition_with(stalled, "DatabaseBootstrapFailed")
    print(f"{condition['type']} {condition['reason']}: {condition['message'][:400]}")
    assert "spec.build.api.seedCommand (node dist/no-such-seed.js --now) failed" in condition["message"]
    commit = stalled["status"]["source"]["commit"]
    assert "Cannot find module" in support.activation_log(instance, commit, FRESH)  # node's own words, on the host
    assert conditions(stalled)["Stalled"]["status"] == "True"
    secrets = support.secret(real_world, namespace, f"{FRESH}-database")
    assert secrets["DB_PASSWORD"] not in condition["message"]
    half = support.tables(instance, database)
    assert set(fixture_o4o.ENTITY_TABLES) <= set(half)  # the schema step ran; the seed did not
    support.psql(instance, "CREATE TABLE public.left_from_the_failure (id int)", database)

    # The seed fixed: the retry drops the operator's own database and starts from empty.
    generation = support.patch_spec(real_world, namespace,
                                    {"build": {"api": {"seedCommand": list(fixture_o4o.SEED_COMMAND)}}}, FRESH)
    ready = support.settled(real_world, namespace, generation, FRESH)
    print(f"fresh instance Ready after the retry: {time.monotonic() - started:.1f} s")
    tables = support.tables(instance, database)
    assert "public.left_from_the_failure" not in tables and set(fixture_o4o.ENTITY_TABLES) <= set(tables)
    assert ready["status"]["database"]["bootstrap"] == "synchronize"
    assert support.psql(instance, "SELECT title FROM fixture_pages WHERE slug = 'home'", database) == "Home"
    recorded = support.psql(instance, 'SELECT "name" FROM typeorm_migrations ORDER BY "id"', database).splitlines()
    assert recorded == list(fixture_o4o.FIXTURE_MIGRATIONS)



# ---- backups, restore in place and clone (issue 21), against the world's real S3 server -------------------------

PAGES = "public.fixture_pages"


def test_8_a_table_dropped_by_hand_comes_back_from_a_backup_on_request(
        real_world: RealWorld, instance: Instance) -> None:
    started = time.monotonic()
    namespace = instance.namespace
    # Backups go to the world's S3 server; the site filter test 6 left is dropped: the instance settles Ready.
    generation = support.patch_spec(real_world, namespace, {
        "build": {"site": None}, "database": {"backup": {"target": real_world.backup_target(namespace)}}})
    instance.obj = support.settled(real_world, namespace, generation)
    _, page = support.get(real_world, instance, "/")
    support.psql(instance, "INSERT INTO public.fixture_pages (slug, title) SELECT 'page-' || n, 'Page ' || n "
                           "FROM generate_series(1, 40) n")
    rows = support.count(instance, PAGES)
    assert rows == 40 + 1  # and the seed's home page
    good = support.backup_on_request(real_world, instance, "before-the-drop")
    assert good["reason"] == "request" and good["commit"] == instance.obj["status"]["source"]["commit"]
    assert good["postgresVersion"].startswith("15")  # Debian 12's PostgreSQL, as the host reported it
    support.stored_archive(real_world, good)

    support.psql(instance, f"DROP TABLE {PAGES} CASCADE")  # by hand
    assert PAGES not in support.tables(instance)

    generation = support.patch_spec(real_world, namespace, {"database": {"restore": {"backup": good["id"]}}})
    instance.obj = support.settled(real_world, namespace, generation)
    assert support.count(instance, PAGES) == rows  # the rows are back
    record = instance.obj["status"]["database"]["restore"]
    assert (record["backup"], record["outcome"]) == (good["id"], "Succeeded"), dump(record)
    assert record["finishedAt"] >= record["startedAt"]
    pre = support.backup_record(instance.obj, record["preRestoreBackup"])
    assert len(support.stored_archive(real_world, pre)) < good["size"]  # what the damaged database held
    assert support.get(real_world, instance, "/") == (200, page)
    assert support.health(real_world, instance) == HEALTH.expect
    assert support.installed_apps(real_world, instance).get(fixture_o4o.KNOWN_APP) == "active"  # the API reads it
    # Written after the restore: test 9's release keeps the same spec.database.restore, and must not restore again.
    support.psql(instance, "INSERT INTO public.fixture_pages (slug, title) VALUES ('after-the-restore', 'Kept')")
    print(f"\ntest 8 (backup on request, drop, restore): {time.monotonic() - started:.1f} s")


def test_9_the_backup_before_a_damaging_migration_restores_the_data_with_the_previous_release(
        real_world: RealWorld, instance: Instance) -> None:
    started = time.monotonic()
    namespace = instance.namespace
    previous = instance.obj["status"]["source"]["commit"]
    restored_before = instance.obj["status"]["database"]["restore"]
    pages = support.psql(instance, "SELECT slug FROM public.fixture_pages ORDER BY slug")
    assert "after-the-restore" in pages.splitlines()  # test 8's row written after its restore
    _, page = support.get(real_world, instance, "/")
    branch = f"damaging-{uuid.uuid4().hex[:6]}"
    damaging = fixture_o4o.commit_migration(real_world.repository, "DeleteFixturePages", 1700000000200,
                                            ("DELETE FROM fixture_pages WHERE slug <> 'home'",),
                                            "A migration that deletes data", branch)
    real_world.publish()
    generation = support.patch_spec(real_world, namespace, {"source": {"revision": branch}})
    instance.obj = support.settled(real_world, namespace, generation)
    print_stage_times("the damaging release", instance.obj)
    assert support.count(instance, PAGES) == 1  # damaged
    # The same spec.database.restore as test 8's, configure run again for this release: not restored again.
    assert instance.obj["status"]["database"]["restore"] == restored_before
    protecting = instance.obj["status"]["database"]["backups"][0]
    assert (protecting["commit"], protecting["reason"]) == (damaging, "migration"), dump(protecting)
    support.stored_archive(real_world, protecting)
    assert protecting["migrationHead"] != "DeleteFixturePages1700000000200", dump(protecting)  # taken before it
    log = support.activation_log(instance, damaging)
    assert "DeleteFixturePages1700000000200 has been executed" in log and "restored backup" not in log, log[-3000:]

    # One patch: the previous release, and the backup taken before the damaging migration.
    generation = support.patch_spec(real_world, namespace, {"source": {"revision": previous},
                                                            "database": {"restore": {"backup": protecting["id"]}}})
    instance.obj = support.settled(real_world, namespace, generation)
    print_stage_times("restored, with the previous release", instance.obj)
    assert instance.obj["status"]["source"]["commit"] == previous
    # The data from before, test 8's late row included (a second restore of test 8's backup would have lost it).
    assert support.psql(instance, "SELECT slug FROM public.fixture_pages ORDER BY slug") == pages
    record = instance.obj["status"]["database"]["restore"]
    assert (record["backup"], record["outcome"]) == (protecting["id"], "Succeeded"), dump(record)
    recorded = support.psql(instance, 'SELECT "name" FROM typeorm_migrations ORDER BY "id"')
    assert "DeleteFixturePages1700000000200" not in recorded
    assert support.get(real_world, instance, "/") == (200, page)  # the previous release's site
    assert support.health(real_world, instance) == HEALTH.expect
    print(f"\ntest 9 (damaging release, restore with the previous release): {time.monotonic() - started:.1f} s")


CLONE = "clone"


def test_10_a_clone_from_the_instances_backup_serves_its_rows_under_its_own_domain_with_its_own_credentials(
        real_world: RealWorld, instance: Instance) -> None:
    """Instance B on the contract's server (``provider.existing``, its own API port), its database restored from A's
    backup (``spec.database.bootstrap.mode: restore``) as B's own role."""
    started = time.monotonic()
    namespace = instance.namespace
    seed = support.backup_on_request(real_world, instance, "clone-seed")
    pages = support.psql(instance, "SELECT slug FROM public.fixture_pages ORDER BY slug")
    ssh = {**instance.obj["spec"]["ssh"], "trustOnFirstUse": True}  # as test 7's
    real_world.apply(real_world.manifest(
        CLONE, namespace, apps=(), provider={"existing": {"host": instance.address, "port": 22}}, ssh=ssh, apiPort=3003,
        database={"backup": {"target": real_world.backup_target(namespace)}, "bootstrap": {
            "mode": "restore", "restore": {"instance": {"name": NAME}, "backup": seed["id"]}}}))
    obj = wait_for(real_world, namespace, CLONE, "condition=Ready")
    print_stage_times("clone", obj)
    clone = Instance(namespace, obj["spec"]["domain"], instance.address, instance.host, obj,
                     support.secret(real_world, namespace, f"{CLONE}-database"), CLONE)
    database = obj["status"]["database"]
    source = f"{namespace}/{NAME} backup {seed['id']}"
    assert (database["bootstrap"], database["bootstrapSource"]) == ("restore", source), dump(database)
    assert support.psql(clone, "SELECT slug FROM public.fixture_pages ORDER BY slug") == pages  # A's rows
    code, body = support.get(real_world, clone, "/")
    assert code == 200 and fixture_repo.SITE_MARKER in body and f"https://{clone.domain}" in body
    assert clone.domain != instance.domain and support.health(real_world, clone) == HEALTH.expect
    # Its own credentials: another role and password in its .env, and the restored tables are that role's.
    env, source_env = support.env_file(clone), support.env_file(instance)
    assert env["DB_USERNAME"] == clone.generated["DB_USERNAME"] != source_env["DB_USERNAME"]
    assert env["DB_PASSWORD"] == clone.generated["DB_PASSWORD"] != source_env["DB_PASSWORD"]
    assert env["DB_NAME"] != source_env["DB_NAME"]
    owners = support.psql(clone, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
    assert owners == clone.generated["DB_USERNAME"], owners
    print(f"\ntest 10 (a clone on the same server, Ready and checked): {time.monotonic() - started:.1f} s")
