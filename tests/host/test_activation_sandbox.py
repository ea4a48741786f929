"""Activation on a SandboxHost: the migration before the switch, the health gate, uploads outside releases.

The rendered scripts run over real SSH against the O4O-shaped fixture; configure's health gate runs as the
operator runs it (runner/health_gate.py: the body through an SSH tunnel to the sandbox's API listener, the
status codes through the curl shim's nginx). The migration is the release's own
``dist/migrate.js`` run by real Node.js (through the sandbox's node shim), so what it records, its working
directory, its environment and what ``current`` was while it ran, is what the script really gave it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from o4o_operator.errors import PermanentError, TransientError
from o4o_operator.markers import parse_results
from o4o_operator.pipeline.stages import StageName, script_for
from o4o_operator.providers.ssh import SshSession
from o4o_operator.rendering import HostContext, render_ecosystem, render_env, render_nginx_site, render_script
from o4o_operator.runner.health_gate import check_health, gate_release
from o4o_operator.testing import SandboxHost, commit_files, make_fixture_repo
from o4o_operator.testing.sandbox_shim import HEALTHY_BODY

# Shell syntax a shell reading .env would run; Node's --env-file parser keeps it as text.
ENV_VALUE = 'a "b" $(touch pwned) ${HOME} `id` ; rm -rf /'
RECORDING_MIGRATION = """'use strict';
const fs = require('node:fs');
const path = require('node:path');
let current = null;
try { current = fs.readlinkSync(path.resolve('../../../../current')); } catch (error) { current = null; }
fs.writeFileSync('migration-record.json', JSON.stringify({
  cwd: process.cwd(), current, value: process.env.O4O_PROBE, nodeEnv: process.env.NODE_ENV }));
console.log('ran 1 migration');
"""
FAILING_MIGRATION = ("'use strict';\nconsole.error('QueryFailedError: relation \"users\" already exists');\n"
                     "console.log('Migration \"CreateUsers1700000000000\" failed, error: relation \"users\" "
                     "already exists');\nprocess.exit(3);\n")  # TypeORM's words
NOT_INITIALIZED = json.dumps({"status": "alive", "database": {"status": "not_initialized",
                                                              "error": "Database connection not initialized"}})


@dataclasses.dataclass
class Host:
    sandbox: SandboxHost
    session: SshSession
    repo: Path
    first_commit: str
    context: HostContext

    async def run(self, stage: StageName | str, context: HostContext | None = None) -> dict[str, str]:
        lines: list[str] = []
        script = render_script(script_for(stage) if isinstance(stage, StageName) else stage, context or self.context)
        await self.session.run(script, timeout=120, log=lines.append)
        return parse_results(lines)

    async def deploy(self, commit: str) -> dict[str, str]:
        await self.deploy_files(commit)
        return await self.activate(self.context.with_commit(commit))

    async def deploy_files(self, commit: str) -> None:
        """Source, builds and the files configure expects to find uploaded."""
        assert (await self.run(StageName.SOURCE))["commit"] == commit
        context = self.context.with_commit(commit)
        await self.run(StageName.BUILD_SITE, context)
        await self.run(StageName.BUILD_API, context)
        await self.session.upload(context.env_path, render_env({"O4O_PROBE": ENV_VALUE}).encode(), mode=0o600,
                                  owner=context.app_user)
        await self.session.upload(context.ecosystem_path, render_ecosystem(context).encode(), mode=0o644,
                                  owner=context.app_user)
        for https in (False, True):
            await self.session.upload(context.nginx_site_path(https), render_nginx_site(context, https).encode(),
                                      mode=0o644)

    async def activate(self, context: HostContext) -> dict[str, str]:
        """The configure stage as the operator runs it: the script (which switches), then the health gate."""
        results = await self.run(StageName.CONFIGURE, context)
        return {**results, **await gate_release(self.session, context, lambda line: None, results)}

    async def check(self, context: HostContext | None = None) -> dict[str, str]:
        """The drift check's health check."""
        await check_health(self.session, context or self.context, lambda line: None)
        return {"health": "ok"}

    def current(self) -> str:
        return self.sandbox.path(self.context.current_link).readlink().as_posix()

    def release_api(self, commit: str) -> Path:
        return self.sandbox.path(self.context.release_dir(commit)) / self.context.api_dir

    def migrations(self) -> list[str]:
        """The releases whose migrate command node ran, in order (by its working directory)."""
        return [Path(c.cwd).parents[1].name for c in self.sandbox.commands("node") if c.args == ("dist/migrate.js",)]

    def activation_log(self, commit: str) -> str:
        return self.sandbox.path(self.context.activation_log(commit)).read_text()


@pytest.fixture
async def host(sandbox: SandboxHost, session: SshSession, tmp_path: Path) -> Host:
    repo, first = make_fixture_repo(tmp_path / "platform")
    first = commit_files(repo, {"apps/api-server/src/migrate.js": RECORDING_MIGRATION}, "A migration that records")
    context = HostContext(domain="shop.example.com", instance_name="shop", repository=str(repo), revision="main",
                          tls_email="ops@example.com", health_attempts=2, health_interval_seconds=0)
    host = Host(sandbox, session, repo, first, context)
    await host.run(StageName.RUNTIME)
    return host


async def test_the_migration_runs_before_the_switch_as_the_app_user_with_the_env_file(host: Host) -> None:
    await host.deploy(host.first_commit)
    second = commit_files(host.repo, {"VERSION": "2\n"}, "Second")
    assert (await host.deploy(second))["release"] == second

    api = host.release_api(second)
    record = json.loads((api / "migration-record.json").read_text())
    assert record["cwd"].endswith(f"/srv/o4o/default.shop/releases/{second}/apps/api-server")  # the NEW release
    assert record["current"] == f"releases/{host.first_commit}"  # still the old release while it ran
    assert record["value"] == ENV_VALUE  # the .env as Node reads it: nothing a shell would expand
    assert record["nodeEnv"] == "production"
    assert not (host.sandbox.root / "pwned").exists()
    assert not list(host.sandbox.root.rglob("pwned"))
    assert host.migrations() == [host.first_commit, second]
    migrate_calls = [c for c in host.sandbox.commands("node") if c.args == ("dist/migrate.js",)]
    assert {c.user for c in migrate_calls} == {host.context.app_user}
    assert "ran 1 migration" in host.activation_log(second)
    assert host.sandbox.path(host.context.migrated_marker(second)).read_text() == "node dist/migrate.js\n"


async def test_a_failed_migration_keeps_the_old_release_serving(host: Host) -> None:
    await host.deploy(host.first_commit)
    broken = commit_files(host.repo, {"apps/api-server/src/migrate.js": FAILING_MIGRATION}, "A failing migration")
    reloads = [c for c in host.sandbox.commands("pm2") if c.args[:1] == ("startOrReload",)]
    with pytest.raises(TransientError) as caught:
        await host.deploy(broken)
    assert caught.value.reason == "MigrationFailed"
    assert broken in caught.value.message
    assert host.context.activation_log(broken) in caught.value.message
    assert f"current stays on releases/{host.first_commit}" in caught.value.message
    assert 'Migration "CreateUsers1700000000000" failed, error: relation "users" already exists' in caught.value.message
    assert host.current() == f"releases/{host.first_commit}"
    assert host.sandbox.shim_state()["live_release"] == host.first_commit
    # PM2 was never asked to reload: the switch did not begin.
    assert [c for c in host.sandbox.commands("pm2") if c.args[:1] == ("startOrReload",)] == reloads
    assert 'relation "users" already exists' in host.activation_log(broken)
    assert "migration failed" in host.activation_log(broken)
    assert not host.sandbox.path(host.context.migrated_marker(broken)).exists()
    # Not marked: the next attempt runs the migration again, and fails again.
    with pytest.raises(TransientError):
        await host.run(StageName.CONFIGURE, host.context.with_commit(broken))
    assert host.migrations() == [host.first_commit, broken, broken]


async def test_a_migrated_release_is_not_migrated_again(host: Host) -> None:
    await host.deploy(host.first_commit)
    context = host.context.with_commit(host.first_commit)
    await host.run(StageName.CONFIGURE, context)
    await host.run("activate-release", context)
    assert host.migrations() == [host.first_commit]
    # A rollback to it does not migrate it again either.
    broken = commit_files(host.repo, {"VERSION": "broken\n"}, "Broken API")
    host.sandbox.set_http_response(502, url_contains="/api/health", live_release=broken)
    with pytest.raises(PermanentError) as caught:
        await host.deploy(broken)
    assert caught.value.reason == "RolledBack"
    assert host.migrations() == [host.first_commit, broken]
    # A changed migrate command is a different migration: it runs.
    changed = dataclasses.replace(context, api_migrate_command=("node", "dist/migrate.js", "--again"))
    await host.run(StageName.CONFIGURE, changed)
    assert [c.args for c in host.sandbox.commands("node") if c.args[:1] == ("dist/migrate.js",)][-1] == (
        "dist/migrate.js", "--again")


async def test_a_health_body_without_a_database_fails_activation_naming_the_field(host: Host) -> None:
    host.sandbox.set_http_response(200, NOT_INITIALIZED, url_contains="/api/health")
    with pytest.raises(TransientError) as caught:
        await host.deploy(host.first_commit)
    assert caught.value.reason == "HealthCheckFailed"
    log = host.activation_log(host.first_commit)
    assert ("HTTP 200 http://127.0.0.1/api/health database.status=not_initialized, expected healthy" in log), log


async def test_an_unhealthy_body_rolls_back_and_the_drift_check_reports_it(host: Host) -> None:
    await host.deploy(host.first_commit)
    second = commit_files(host.repo, {"VERSION": "2\n"}, "Second")
    host.sandbox.set_http_response(200, NOT_INITIALIZED, url_contains="/api/health", live_release=second)
    with pytest.raises(PermanentError) as caught:
        await host.deploy(second)
    assert caught.value.reason == "RolledBack"
    assert host.current() == f"releases/{host.first_commit}"
    assert "database.status=not_initialized, expected healthy" in host.activation_log(second)
    assert "database.status=healthy" in host.activation_log(second)  # the old release, after the rollback

    assert await host.check() == {"health": "ok"}
    host.sandbox.set_http_response(200, '{"database":{"status":"unhealthy"}}', url_contains="/api/health")
    with pytest.raises(TransientError) as drift:
        await host.check()
    assert drift.value.reason == "HealthCheckFailed"
    # With no body field, the status code alone decides.
    assert await host.check(dataclasses.replace(host.context, health_body_field="")) == {"health": "ok"}
    host.sandbox.set_http_response(200, HEALTHY_BODY, url_contains="/api/health")
    assert await host.check() == {"health": "ok"}


async def test_an_activation_cut_between_switch_and_settle_rolls_back_on_the_next_pass(host: Host) -> None:
    await host.deploy(host.first_commit)
    second = commit_files(host.repo, {"VERSION": "2\n"}, "Second")
    host.sandbox.set_http_response(200, NOT_INITIALIZED, url_contains="/api/health", live_release=second)
    context = host.context.with_commit(second)
    await host.deploy_files(second)
    await host.run(StageName.CONFIGURE, context)  # switched; the operator died before its health gate
    assert host.current() == f"releases/{second}"
    with pytest.raises(PermanentError) as caught:
        await host.activate(context)  # the next pass: current already is the new release
    assert caught.value.reason == "RolledBack"
    assert f"rolled back to {host.first_commit} (healthy)" in caught.value.message
    assert host.current() == f"releases/{host.first_commit}"
    assert not host.sandbox.path(host.context.activation_log_dir + f"/{second}.previous").exists()


async def test_the_health_body_comes_through_the_tunnel_and_nginx_is_probed_on_the_host(host: Host) -> None:
    await host.deploy(host.first_commit)
    host.sandbox.api.fail_next("/api/health", status=200, body='{"database":{"status":"migrating"}}')
    with pytest.raises(TransientError) as caught:
        await host.check()
    assert caught.value.reason == "HealthCheckFailed"
    assert "HTTP 200 http://127.0.0.1/api/health database.status=migrating, expected healthy" in caught.value.message
    host.sandbox.api.fail_next("/api/health", close=True, times=2)  # aiohttp retries a dropped GET once
    with pytest.raises(TransientError) as unanswered:
        await host.check()
    assert "(the API at 127.0.0.1:3001/api/health did not answer:" in unanswered.value.message


async def test_uploads_survive_a_release_switch_and_a_rollback(host: Host) -> None:
    await host.deploy(host.first_commit)
    shared = host.sandbox.path(host.context.uploads_dir)
    first_uploads = host.release_api(host.first_commit) / host.context.api_uploads_dir
    assert first_uploads.is_symlink() and first_uploads.resolve() == shared.resolve()
    (first_uploads / "image").mkdir()
    (first_uploads / "image" / "logo.png").write_bytes(b"png")  # as the API writes through its cwd

    second = commit_files(host.repo, {"VERSION": "2\n"}, "Second")
    await host.deploy(second)
    second_uploads = host.release_api(second) / host.context.api_uploads_dir
    assert (second_uploads / "image" / "logo.png").read_bytes() == b"png"
    (second_uploads / "after.txt").write_text("written by the second release\n")

    broken = commit_files(host.repo, {"VERSION": "broken\n"}, "Broken")
    host.sandbox.set_http_response(502, url_contains="/api/health", live_release=broken)
    with pytest.raises(PermanentError):
        await host.deploy(broken)
    assert host.current() == f"releases/{second}"
    live = host.sandbox.path(host.context.current_link) / host.context.api_dir / host.context.api_uploads_dir
    assert sorted(p.name for p in live.iterdir()) == ["after.txt", "image"]
    assert shared.stat().st_mode & 0o777 == 0o755
    assert host.sandbox.path(host.context.shared_dir).stat().st_mode & 0o777 == 0o711
    # configure makes the shared directory as the app user (the sandbox has one real user: runuser records it).
    user = host.context.app_user
    assert any(c.args[:3] == ("-u", user, "--") and c.args[3:7] == ("install", "-d", "-m", "0755")
               and c.args[-1] == str(shared) for c in host.sandbox.commands("runuser"))


# ---- build-api: what the bundle step cleans, and the migrate script it must leave ------------------------

def api_scripts(host: Host, **scripts: str) -> str:
    """Commit the API package.json with these scripts replaced; returns the new commit."""
    manifest_path = host.repo / "apps/api-server/package.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["scripts"].update(scripts)
    return commit_files(host.repo, {"apps/api-server/package.json": json.dumps(manifest, indent=2) + "\n"},
                        "Change the API's scripts")


TSC_BUILD = ("mkdir -p dist/database/migrations && echo 'exports.up = 1;' > dist/database/migrations/1700-init.js"
             " && echo 'module.exports = {};' > dist/database/migration-config.js")
CLEANING_BUNDLE = "rm -rf dist && mkdir -p dist && cp src/main.js dist/main.js && cp src/migrate.js dist/migrate.js"


async def test_the_bundle_step_that_cleans_dist_keeps_dist_database(host: Host) -> None:
    commit = api_scripts(host, build=TSC_BUILD, **{"build:api": CLEANING_BUNDLE})
    assert (await host.run(StageName.SOURCE))["commit"] == commit
    assert await host.run(StageName.BUILD_API, host.context.with_commit(commit)) == {"built": "api"}
    api = host.release_api(commit)
    assert (api / "dist/database/migrations/1700-init.js").read_text() == "exports.up = 1;\n"
    assert (api / "dist/database/migration-config.js").exists()
    assert (api / "dist/main.js").exists() and (api / "dist/migrate.js").exists()
    assert not (host.sandbox.path(host.context.release_dir(commit)) / ".o4o-kept").exists()


async def test_without_keep_across_bundle_the_cleaning_bundle_loses_the_migrations(host: Host) -> None:
    commit = api_scripts(host, build=TSC_BUILD, **{"build:api": CLEANING_BUNDLE})
    await host.run(StageName.SOURCE)
    context = dataclasses.replace(host.context.with_commit(commit), api_keep_across_bundle=())
    assert await host.run(StageName.BUILD_API, context) == {"built": "api"}
    assert not (host.release_api(commit) / "dist/database").exists()


async def test_a_build_that_leaves_no_migrate_script_fails_naming_the_field(host: Host) -> None:
    commit = api_scripts(host, **{"build:api": "rm -rf dist && mkdir -p dist && cp src/main.js dist/main.js"})
    await host.run(StageName.SOURCE)
    with pytest.raises(PermanentError) as caught:
        await host.run(StageName.BUILD_API, host.context.with_commit(commit))
    assert caught.value.reason == "BuildOutputMissing"
    assert caught.value.message.startswith("spec.build.api.migrateCommand:")
    assert "apps/api-server/dist/migrate.js" in caught.value.message
    assert not (host.sandbox.path(host.context.release_dir(commit)) / ".o4o-built-api").exists()
