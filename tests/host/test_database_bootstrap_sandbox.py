"""The database's bootstrap on a SandboxHost: database-facts.sh reports, plan_bootstrap decides, configure runs it.

Over real SSH against the O4O-shaped fixture, with the sandbox's PostgreSQL shim (which keeps each database's
tables): a fresh database is bootstrapped once with ``command`` and then migrated, a second run does not
bootstrap again, a failing command stalls ``DatabaseBootstrapFailed`` naming the field and the next try starts
from an empty database, a database with one table in it is never bootstrapped, and an external database is
never dropped. The bootstrap command is real Node.js in the release's API directory with the .env loaded; it
creates its table through psql as the instance's role, as an app's schema step would. Mode ``synchronize`` runs,
in order, the data source's build command, the generic TypeORM helper (templates/typeorm-bootstrap.js, against a
stand-in DataSource), the seed and then the migration; a failing seed stalls naming ``spec.build.api.seedCommand``
and the retry starts from an empty database; a release without the data source's module stalls naming it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from o4o_operator.errors import InvalidSpecError, PermanentError, TransientError
from o4o_operator.markers import parse_results
from o4o_operator.models_database import DatabaseSpec
from o4o_operator.pipeline.bootstrap import BootstrapAction, DatabaseFacts, plan_bootstrap
from o4o_operator.pipeline.stages import StageName, script_for
from o4o_operator.providers.ssh import SshSession
from o4o_operator.rendering import HostContext, render_ecosystem, render_env, render_nginx_site, render_script
from o4o_operator.rendering.env_values import database_identifier
from o4o_operator.testing import SandboxHost, commit_files, make_fixture_repo

PASSWORD = "bootstrap-Password_0123456789"
SECRET_IN_OUTPUT = "JWT-secret-value-0123456789"
BOOTSTRAP = """'use strict';
const { spawnSync } = require('node:child_process');
const run = spawnSync('psql', ['-X', '-q', '-h', process.env.DB_HOST, '-U', process.env.DB_USERNAME,
  '-d', process.env.DB_NAME, '-c', 'CREATE TABLE public.users (id int)'],
  { stdio: 'inherit', env: { ...process.env, PGPASSWORD: process.env.DB_PASSWORD } });
console.log('schema created from the entities');
process.exit(run.status === null ? 1 : run.status);
"""
FAILING_BOOTSTRAP = BOOTSTRAP.replace("console.log('schema created from the entities');", """
console.log('half a schema, then ' + process.env.DB_PASSWORD);
console.error('ColumnTypeUndefinedError: Column type for NetureSupplier#slug is not defined');
process.exit(7);""")
COMMAND = ("node", "src/bootstrap.js")


@dataclasses.dataclass
class Host:
    sandbox: SandboxHost
    session: SshSession
    repo: Path
    commit: str
    context: HostContext
    external: bool = False

    @property
    def name(self) -> str:
        return database_identifier(self.context.app_user)

    def db_env(self) -> tuple[dict[str, str], dict[str, str]]:
        host = "db.example.net" if self.external else "127.0.0.1"
        return {"O4O_DB_PASSWORD": PASSWORD}, {
            "O4O_DB_MODE": "external" if self.external else "local", "O4O_DB_HOST": host, "O4O_DB_PORT": "5432",
            "O4O_DB_NAME": self.name, "O4O_DB_USER": self.name, "O4O_DB_SSLMODE": "require",
            "O4O_DB_EXTENSIONS": "uuid-ossp"}

    async def run(self, name: str, context: HostContext) -> dict[str, str]:
        lines: list[str] = []
        env, public = self.db_env()
        await self.session.run(render_script(name, context), timeout=120, log=lines.append, env=env,
                               public_env=public)
        return parse_results(lines)

    async def configure(self, spec: DatabaseSpec) -> tuple[BootstrapAction, dict[str, str]]:
        """What the runner's configure pre-step does, then the configure script with its decision."""
        context = self.context.with_commit(self.commit)
        plan = plan_bootstrap(spec, DatabaseFacts.from_results(await self.run("database-facts", context)))
        if plan.action is not BootstrapAction.NONE and plan.mode is not None:
            context = dataclasses.replace(context, bootstrap_mode=plan.mode.value, bootstrap_command=plan.command,
                                          bootstrap_reset=plan.action is BootstrapAction.RESET_AND_RUN)
        return plan.action, await self.run(script_for(StageName.CONFIGURE), context)

    def tables(self) -> list[str]:
        state = self.sandbox.shim_state()
        if self.external:
            return list(state.get("external_tables", {}).get(self.name, []))
        return list(state["postgres"].get("tables", {}).get(self.name, []))

    def rows(self, table: str) -> list[str]:
        """The rows of ``table`` (``schema.name``) in the instance's local database, as the sandbox keeps them."""
        return list(self.sandbox.shim_state()["postgres"].get("rows", {}).get(self.name, {}).get(table, []))

    def bootstraps(self) -> int:
        return len([c for c in self.sandbox.commands("node") if c.args == ("src/bootstrap.js",)])

    def migrations(self) -> int:
        return len([c for c in self.sandbox.commands("node") if c.args == ("dist/migrate.js",)])


async def _host(sandbox: SandboxHost, session: SshSession, tmp_path: Path, *, external: bool = False,
                bootstrap: str = BOOTSTRAP, name: str = "shop") -> Host:
    repo, _ = make_fixture_repo(tmp_path / f"platform-{name}")
    commit = commit_files(repo, {"apps/api-server/src/bootstrap.js": bootstrap}, "A bootstrap")
    context = HostContext(domain=f"{name}.example.com", instance_name=name, repository=str(repo), revision="main",
                          tls_email="ops@example.com", health_attempts=2, health_interval_seconds=0)
    host = Host(sandbox, session, repo, commit, context, external)
    for stage in (StageName.RUNTIME, StageName.DATABASE, StageName.SOURCE):
        await host.run(script_for(stage), context)
    built = context.with_commit(commit)
    for stage in (StageName.BUILD_SITE, StageName.BUILD_API):
        await host.run(script_for(stage), built)
    env = {"DB_HOST": "db.example.net" if external else "127.0.0.1", "DB_USERNAME": host.name,
           "DB_NAME": host.name, "DB_PASSWORD": PASSWORD, "JWT_SECRET": SECRET_IN_OUTPUT}
    await session.upload(built.env_path, render_env(env).encode(), mode=0o600, owner=built.app_user)
    await session.upload(built.ecosystem_path, render_ecosystem(built).encode(), mode=0o644, owner=built.app_user)
    for https in (False, True):
        await session.upload(built.nginx_site_path(https), render_nginx_site(built, https).encode(), mode=0o644)
    return host


def _spec(**bootstrap: Any) -> DatabaseSpec:
    return DatabaseSpec.model_validate({"bootstrap": bootstrap or {"mode": "command", "command": list(COMMAND)}})


async def test_a_fresh_database_is_bootstrapped_once_with_its_command_then_migrated(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path) -> None:
    host = await _host(sandbox, session, tmp_path)
    assert host.tables() == []
    action, results = await host.configure(_spec())
    assert action is BootstrapAction.RUN
    assert host.tables() == ["public.users"]
    assert (host.bootstraps(), host.migrations()) == (1, 1)
    bootstrap_call = next(c for c in sandbox.commands("node") if c.args == ("src/bootstrap.js",))
    migrate_call = next(c for c in sandbox.commands("node") if c.args == ("dist/migrate.js",))
    assert bootstrap_call.user == host.context.app_user
    assert bootstrap_call.cwd.endswith(f"/releases/{host.commit}/apps/api-server")
    assert sandbox.commands().index(bootstrap_call) < sandbox.commands().index(migrate_call)  # before migrating
    assert results["bootstrap"] == "command"
    assert results["bootstrapCommit"] == host.commit
    assert results["bootstrappedAt"].endswith("Z")
    record = sandbox.path(host.context.state_dir + "/bootstrap").read_text()
    assert f"mode=command\nat={results['bootstrappedAt']}\ncommit={host.commit}\n" == record

    # A second run (the database is not empty, and the host remembers): never again, and status still learns it.
    action, again = await host.configure(_spec())
    assert action is BootstrapAction.NONE
    assert host.bootstraps() == 1
    assert again["bootstrappedAt"] == results["bootstrappedAt"]
    # Even a decision that says otherwise (stale facts) meets root's record on the host.
    context = dataclasses.replace(host.context.with_commit(host.commit), bootstrap_mode="command",
                                  bootstrap_command=COMMAND)
    await host.run("configure", context)
    assert host.bootstraps() == 1


async def test_a_database_with_one_table_is_never_bootstrapped(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path) -> None:
    host = await _host(sandbox, session, tmp_path)
    env, public = host.db_env()
    lines: list[str] = []
    await session.run(f"PGPASSWORD=\"$O4O_DB_PASSWORD\" psql -h 127.0.0.1 -U {host.name} -d {host.name} "
                      "-c 'CREATE TABLE shop.orders (id int)'", timeout=30, log=lines.append, env=env,
                      public_env=public)
    facts = DatabaseFacts.from_results(await host.run("database-facts", host.context))
    assert (facts.tables, facts.empty, facts.describe()) == (1, False, "not empty: 1 table")
    action, results = await host.configure(_spec())
    assert action is BootstrapAction.NONE
    assert host.bootstraps() == 0 and host.migrations() == 1
    assert "bootstrap" not in results
    assert host.tables() == ["shop.orders"]
    # The script's own guard, should a stale decision reach it: transient, nothing run.
    context = dataclasses.replace(host.context.with_commit(host.commit), bootstrap_mode="command",
                                  bootstrap_command=COMMAND)
    with pytest.raises(TransientError) as caught:
        await host.run("configure", context)
    assert caught.value.reason == "DatabaseNotEmpty"
    assert host.bootstraps() == 0


async def test_a_failing_bootstrap_stalls_naming_the_field_and_the_retry_starts_from_empty(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path) -> None:
    host = await _host(sandbox, session, tmp_path, bootstrap=FAILING_BOOTSTRAP)
    with pytest.raises(PermanentError) as caught:
        await host.configure(_spec())
    error = caught.value
    assert error.reason == "DatabaseBootstrapFailed"
    assert "spec.database.bootstrap.command (node src/bootstrap.js) failed" in error.message
    assert "ColumnTypeUndefinedError: Column type for NetureSupplier#slug is not defined" in error.message
    assert "drops the database the operator made" in error.message
    assert "half a schema, then [REDACTED]" in error.message or PASSWORD not in error.message
    assert PASSWORD not in error.message
    assert host.tables() == ["public.users"]  # half a schema
    assert host.migrations() == 0
    assert not sandbox.path(host.context.current_link).exists()  # nothing switched
    assert not sandbox.path(host.context.state_dir + "/bootstrap").exists()

    # The command is fixed (a new release): the retry drops the operator's own database and starts from empty.
    host.commit = commit_files(host.repo, {"apps/api-server/src/bootstrap.js": BOOTSTRAP}, "A working bootstrap")
    built = host.context.with_commit(host.commit)
    await host.run(script_for(StageName.SOURCE), host.context)
    for stage in (StageName.BUILD_SITE, StageName.BUILD_API):
        await host.run(script_for(stage), built)
    facts = DatabaseFacts.from_results(await host.run("database-facts", built))
    assert (facts.empty, facts.bootstrap_started) == (False, "command")
    action, results = await host.configure(_spec())
    assert action is BootstrapAction.RESET_AND_RUN
    drops = [c for c in sandbox.commands("psql") if any("DROP DATABASE" in a for a in c.argv)]
    assert [c.user for c in drops] == ["postgres"]
    assert f"DROP DATABASE IF EXISTS {host.name} WITH (FORCE)" in drops[0].argv
    assert host.tables() == ["public.users"]  # one schema, made afresh
    assert results["bootstrap"] == "command" and results["bootstrapCommit"] == host.commit
    assert host.bootstraps() == 2 and host.migrations() == 1
    assert "uuid-ossp" in sandbox.shim_state()["postgres"]["extensions"]


async def test_a_failed_bootstrap_on_an_external_database_is_never_dropped(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path) -> None:
    host = await _host(sandbox, session, tmp_path, external=True, bootstrap=FAILING_BOOTSTRAP)
    spec = DatabaseSpec.model_validate({"external": {"secretRef": {"name": "shop-db"}},
                                        "bootstrap": {"mode": "command", "command": list(COMMAND)}})
    with pytest.raises(PermanentError) as caught:
        await host.configure(spec)
    assert caught.value.reason == "DatabaseBootstrapFailed"
    assert "its owner must empty it" in caught.value.message
    with pytest.raises(InvalidSpecError) as again:
        await host.configure(spec)
    assert again.value.reason == "DatabaseBootstrapFailed"
    assert again.value.field == "spec.database.bootstrap.command"
    assert "never drops an external database" in again.value.message
    assert not [c for c in sandbox.commands("psql") if any("DROP" in a for a in c.argv)]
    assert host.tables() == ["public.users"]
    assert host.bootstraps() == 1


async def test_by_default_the_first_migration_run_on_an_empty_database_is_its_bootstrap(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path) -> None:
    host = await _host(sandbox, session, tmp_path)
    failing = "'use strict';\nconsole.log('Migration \"A1700000000000\" failed, error: boom');\nprocess.exit(3);\n"
    host.commit = commit_files(host.repo, {"apps/api-server/src/migrate.js": failing}, "A failing migration")
    built = host.context.with_commit(host.commit)
    await host.run(script_for(StageName.SOURCE), host.context)
    for stage in (StageName.BUILD_SITE, StageName.BUILD_API):
        await host.run(script_for(stage), built)
    with pytest.raises(TransientError) as caught:
        await host.configure(DatabaseSpec())
    assert caught.value.reason == "MigrationFailed"  # as before: retried with backoff, nothing dropped
    assert not sandbox.path(host.context.state_dir + "/bootstrap").exists()
    facts = DatabaseFacts.from_results(await host.run("database-facts", built))
    assert facts.bootstrap_started == "migrate"

    host.commit = commit_files(host.repo, {"apps/api-server/src/migrate.js": "console.log('ok');\n"}, "Fixed")
    built = host.context.with_commit(host.commit)
    await host.run(script_for(StageName.SOURCE), host.context)
    for stage in (StageName.BUILD_SITE, StageName.BUILD_API):
        await host.run(script_for(stage), built)
    action, results = await host.configure(DatabaseSpec())
    assert action is BootstrapAction.RUN
    assert (results["bootstrap"], results["bootstrapCommit"]) == ("migrate", host.commit)
    assert host.bootstraps() == 0 and host.migrations() == 2
    assert not [c for c in sandbox.commands("psql") if any("DROP" in a for a in c.argv)]
    action, again = await host.configure(DatabaseSpec())
    assert action is BootstrapAction.NONE and again["bootstrappedAt"] == results["bootstrappedAt"]


# ---- mode synchronize: the data source's build command, the generic TypeORM helper, the seed, then the migration

DATA_SOURCE = """'use strict';
// A stand-in for a TypeORM DataSource whose schema step and migration records go through psql as the instance's role.
const { spawnSync } = require('node:child_process');
const psql = (sql) => {
  const run = spawnSync('psql', ['-X', '-q', '-h', process.env.DB_HOST, '-U', process.env.DB_USERNAME,
    '-d', process.env.DB_NAME, '-c', sql],
    { stdio: 'inherit', env: { ...process.env, PGPASSWORD: process.env.DB_PASSWORD } });
  if (run.status !== 0) throw new Error(`psql failed: ${sql}`);
};
exports.AppDataSource = {
  isInitialized: false, entityMetadatas: [], options: {},
  async initialize() { this.isInitialized = true; },
  async query(sql) { psql(sql); return []; },
  async synchronize() { psql('CREATE TABLE public.users (id int)'); },
  async runMigrations(options) {
    if (!options || options.fake !== true) throw new Error('expected fake: true');
    psql('CREATE TABLE public.typeorm_migrations (id int)');
    return [{ name: 'A1700000000001' }, { name: 'B1700000000002' }];
  },
  async destroy() { this.isInitialized = false; },
};
"""
MAKE_DATA_SOURCE = """'use strict';
const fs = require('node:fs');
fs.mkdirSync('dist/boot', { recursive: true });
fs.copyFileSync('src/data-source.js', 'dist/boot/data-source.js');
console.log('bundled the data source');
"""
SEED = "'use strict';\nconsole.log('seeded with ' + (process.env.SEED_BOOTSTRAP_PASSWORD ? 'a password' : 'none'));\n"
FAILING_SEED = ("'use strict';\nconsole.log('seed account password ' + process.env.DB_PASSWORD);\n"
                "console.error('QueryFailedError: relation \"roles\" does not exist');\nprocess.exit(5);\n")
SYNCHRONIZE = {"mode": "synchronize"}
BUILD_COMMAND = ("node", "src/make-data-source.js")
SEED_COMMAND = ("node", "src/seed.js")


def _synchronizing(host: Host, **changes: Any) -> Host:
    """The host, its context saying spec.build.api.dataSource and seedCommand as a TypeORM app's manifest would."""
    fields = {"api_data_source_module": "dist/boot/data-source.js", "api_data_source_export": "AppDataSource",
              "api_data_source_build": BUILD_COMMAND, "api_seed_command": SEED_COMMAND, **changes}
    host.context = dataclasses.replace(host.context, **fields)
    return host


async def _rebuilt(host: Host, files: dict[str, str], message: str) -> None:
    host.commit = commit_files(host.repo, files, message)
    built = host.context.with_commit(host.commit)
    await host.run(script_for(StageName.SOURCE), host.context)
    for stage in (StageName.BUILD_SITE, StageName.BUILD_API):
        await host.run(script_for(stage), built)


def _node_calls(sandbox: SandboxHost, first: str) -> list[Any]:
    return [c for c in sandbox.commands("node") if c.args[:1] == (first,)]


def _helper_calls(sandbox: SandboxHost) -> list[Any]:
    """``node -e <typeorm-bootstrap.js> -- <module> <export>``."""
    return [c for c in _node_calls(sandbox, "-e") if c.args[2:] == ("--", "dist/boot/data-source.js", "AppDataSource")]


async def test_synchronize_builds_the_data_source_then_makes_the_schema_records_the_migrations_seeds_and_migrates(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path) -> None:
    host = _synchronizing(await _host(sandbox, session, tmp_path))
    await _rebuilt(host, {"apps/api-server/src/data-source.js": DATA_SOURCE,
                          "apps/api-server/src/make-data-source.js": MAKE_DATA_SOURCE,
                          "apps/api-server/src/seed.js": SEED}, "A TypeORM-shaped app")
    action, results = await host.configure(_spec(**SYNCHRONIZE))
    assert action is BootstrapAction.RUN
    assert results["bootstrap"] == "synchronize" and results["bootstrapCommit"] == host.commit
    assert sorted(host.tables()) == ["public.typeorm_migrations", "public.users"]
    calls = sandbox.commands()
    build = next(c for c in _node_calls(sandbox, BUILD_COMMAND[1]))
    helper = _helper_calls(sandbox)[0]
    seed = next(c for c in _node_calls(sandbox, SEED_COMMAND[1]))
    migrate = next(c for c in _node_calls(sandbox, "dist/migrate.js"))
    assert calls.index(build) < calls.index(helper) < calls.index(seed) < calls.index(migrate)  # in this order
    for call in (build, helper, seed):
        assert call.user == host.context.app_user
        assert call.cwd.endswith(f"/releases/{host.commit}/apps/api-server")
    assert "runMigrations({ transaction: 'all', fake: true })" in helper.args[1]  # the generic helper itself
    log = sandbox.path(f"{host.context.activation_log_dir}/{host.commit}.log").read_text()
    assert "typeorm-bootstrap: recorded 2 migration(s) as applied without running them" in log
    assert "bundled the data source" in log and "seeded with a password" not in log  # the .env has no seed key here
    assert sandbox.path(host.context.state_dir + "/bootstrap").read_text().startswith("mode=synchronize\n")

    # Never again: the next run neither builds, synchronizes nor seeds; it only migrates.
    action, again = await host.configure(_spec(**SYNCHRONIZE))
    assert action is BootstrapAction.NONE and again["bootstrappedAt"] == results["bootstrappedAt"]
    assert len(_helper_calls(sandbox)) == 1 and len(_node_calls(sandbox, SEED_COMMAND[1])) == 1


async def test_a_failing_seed_stalls_naming_its_field_and_the_retry_starts_from_an_empty_database(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path) -> None:
    host = _synchronizing(await _host(sandbox, session, tmp_path))
    await _rebuilt(host, {"apps/api-server/src/data-source.js": DATA_SOURCE,
                          "apps/api-server/src/make-data-source.js": MAKE_DATA_SOURCE,
                          "apps/api-server/src/seed.js": FAILING_SEED}, "A seed that fails")
    with pytest.raises(PermanentError) as caught:
        await host.configure(_spec(**SYNCHRONIZE))
    error = caught.value
    assert error.reason == "DatabaseBootstrapFailed"
    assert "spec.build.api.seedCommand (node src/seed.js) failed on the empty database" in error.message
    assert 'QueryFailedError: relation "roles" does not exist' in error.message
    assert PASSWORD not in error.message
    assert host.migrations() == 0 and not sandbox.path(host.context.current_link).exists()
    assert sorted(host.tables()) == ["public.typeorm_migrations", "public.users"]  # what the schema step left

    await _rebuilt(host, {"apps/api-server/src/seed.js": SEED}, "The seed fixed")
    action, results = await host.configure(_spec(**SYNCHRONIZE))
    assert action is BootstrapAction.RESET_AND_RUN
    drops = [c for c in sandbox.commands("psql") if any("DROP DATABASE" in a for a in c.argv)]
    assert len(drops) == 1 and drops[0].user == "postgres"
    assert sorted(host.tables()) == ["public.typeorm_migrations", "public.users"]  # made afresh, once
    assert results["bootstrap"] == "synchronize" and host.migrations() == 1


async def test_a_data_source_module_the_release_lacks_stalls_naming_the_field(
        sandbox: SandboxHost, session: SshSession, tmp_path: Path) -> None:
    host = _synchronizing(await _host(sandbox, session, tmp_path), api_data_source_build=())
    with pytest.raises(PermanentError) as caught:
        await host.configure(_spec(**SYNCHRONIZE))
    assert caught.value.reason == "DatabaseBootstrapFailed"
    assert caught.value.message.startswith("spec.build.api.dataSource.module: release")
    assert "dist/boot/data-source.js" in caught.value.message
    assert host.tables() == [] and host.migrations() == 0
