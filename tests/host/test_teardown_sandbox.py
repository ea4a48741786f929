"""teardown-host.sh over real SSH in a SandboxHost: after two instances were deployed on one host, it removes
exactly the first one's things (files, PM2 app and unit, nginx site, certificate, database, user) and leaves
the second one's as they were; run again it finds nothing left and still succeeds."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from o4o_operator.markers import parse_results
from o4o_operator.pipeline.stages import StageName, script_for
from o4o_operator.providers.ssh import SshSession
from o4o_operator.rendering import HostContext, render_ecosystem, render_env, render_nginx_site, render_script
from o4o_operator.rendering.env_values import database_identifier
from o4o_operator.testing import SandboxHost, make_fixture_repo

PASSWORD = "generated-Password_0123456789"


@dataclasses.dataclass
class Shared:
    sandbox: SandboxHost
    session: SshSession
    first: HostContext
    second: HostContext

    async def run(self, script: str, context: HostContext, **env: str) -> dict[str, str]:
        lines: list[str] = []
        await self.session.run(render_script(script, context), timeout=120, log=lines.append,
                               env={"O4O_DB_PASSWORD": PASSWORD}, public_env=env)
        return parse_results(lines)

    async def deploy(self, context: HostContext) -> None:
        """Every host stage but apps, as the operator runs them, with a certificate at the end."""
        name = database_identifier(context.app_user)
        await self.run(script_for(StageName.RUNTIME), context)
        await self.run(script_for(StageName.DATABASE), context, O4O_DB_MODE="local", O4O_DB_HOST="127.0.0.1",
                       O4O_DB_PORT="5432", O4O_DB_NAME=name, O4O_DB_USER=name, O4O_DB_SSLMODE="require")
        commit = (await self.run(script_for(StageName.SOURCE), context))["commit"]
        context = context.with_commit(commit)
        await self.run(script_for(StageName.BUILD_SITE), context)
        await self.run(script_for(StageName.BUILD_API), context)
        await self.session.upload(context.env_path, render_env({"JWT_SECRET": "x"}).encode(), mode=0o600,
                                  owner=context.app_user)
        await self.session.upload(context.ecosystem_path, render_ecosystem(context).encode(), mode=0o644,
                                  owner=context.app_user)
        for https in (False, True):
            await self.session.upload(context.nginx_site_path(https), render_nginx_site(context, https).encode(),
                                      mode=0o644)
        await self.run(script_for(StageName.CONFIGURE), context)
        assert (await self.run(script_for(StageName.TLS), context))["nginxSite"] == "https"
        for kind in ("access", "error"):  # nginx writes these; the shim does not
            log = self.sandbox.path(f"{context.nginx_log_dir}/{context.nginx_site_stem}.{kind}.log")
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(f"{context.domain}\n")

    def tree(self) -> dict[str, str]:
        """Every path in the sandbox (the shims' own files aside): a digest of each file, a link's target."""
        found: dict[str, str] = {}
        for path in self.sandbox.root.rglob("*"):
            logical = "/" + path.relative_to(self.sandbox.root).as_posix()
            if logical.startswith("/.shim"):
                continue
            if path.is_symlink():
                found[logical] = "-> " + path.readlink().as_posix()
            elif path.is_file():
                found[logical] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[logical] = "dir"
        return found


def owned(ctx: HostContext) -> tuple[str, ...]:
    """The instance's own paths: each, and everything below it, is its alone."""
    return (ctx.base_dir, ctx.state_dir, ctx.webroot, f"/home/{ctx.app_user}", ctx.nginx_site_path(False),
            ctx.nginx_site_path(True), ctx.nginx_enabled_path, ctx.certificate_dir,
            f"{ctx.letsencrypt_dir}/renewal/{ctx.domain}.conf",  # certbot's record of the lineage (its ACME server)
            f"/etc/systemd/system/pm2-{ctx.app_user}.service", f"{ctx.nginx_log_dir}/{ctx.nginx_site_stem}.access.log",
            f"{ctx.nginx_log_dir}/{ctx.nginx_site_stem}.error.log")


def is_under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)


@pytest.fixture
async def shared(sandbox: SandboxHost, session: SshSession, tmp_path: Path) -> Shared:
    repo, _ = make_fixture_repo(tmp_path / "platform")

    def context(namespace: str) -> HostContext:
        return HostContext(domain=f"shop.{namespace}.example.com", instance_name="shop", namespace=namespace,
                           repository=str(repo), revision="main", tls_email="ops@example.com", health_attempts=2,
                           health_interval_seconds=0)

    host = Shared(sandbox, session, context("team-a"), context("team-b"))
    for ctx in (host.first, host.second):
        await host.deploy(ctx)
    return host


async def test_teardown_removes_exactly_one_instance_and_leaves_the_other(shared: Shared) -> None:
    first, second, sandbox = shared.first, shared.second, shared.sandbox
    before, state_before = shared.tree(), sandbox.shim_state()
    mine = {path for path in before if is_under(path, owned(first))}
    assert {path for path in mine if path in owned(first)} == set(owned(first))  # all of it was there to remove
    assert not [path for path in before if is_under(path, owned(second)) and is_under(path, owned(first))]

    results = await shared.run("teardown-host", first, O4O_DB_MODE="local")

    name, other = database_identifier(first.app_user), database_identifier(second.app_user)
    assert results == {"pm2": "removed", "nginx": "site removed, reloaded", "certificate": "deleted",
                       "database": f"dropped {name}", "teardown": "finished"}
    after, state = shared.tree(), sandbox.shim_state()
    # Removed: exactly the first instance's paths. Nothing else changed, nothing appeared.
    assert set(before) - set(after) == mine
    assert after == {path: digest for path, digest in before.items() if path not in mine}
    # Its user, PM2 app and unit, role and database are gone; the second's stay, serving.
    assert sorted(state["users"]) == sorted([second.app_user, "postgres"])
    assert state["pm2"] == {second.app_user: state_before["pm2"][second.app_user]}
    unit, other_unit = f"pm2-{first.app_user}", f"pm2-{second.app_user}"
    assert unit not in state["active"] and unit not in state["enabled"]
    assert {other_unit, "nginx"} <= set(state["active"]) & set(state["enabled"])
    assert name not in state["postgres"]["databases"] and name not in state["postgres"]["roles"]
    assert state["postgres"]["databases"][other] == other and state["postgres"]["roles"][other]
    assert state["reloads"]["nginx"] == state_before["reloads"]["nginx"] + 1
    assert [c.args for c in sandbox.commands("userdel")] == [(first.app_user,)]
    deleted = [c.args for c in sandbox.commands("certbot") if "delete" in c.args]
    assert len(deleted) == 1 and deleted[0][deleted[0].index("--cert-name") + 1] == first.domain
    # Whatever ran in its directories ran as its user.
    removals = [c.args for c in sandbox.commands("runuser") if "find" in c.args]
    assert removals and all(args[:2] == ("-u", first.app_user) for args in removals)

    calls = len(sandbox.commands())
    again = await shared.run("teardown-host", first, O4O_DB_MODE="local")
    assert again == {"pm2": "removed", "nginx": "no site", "certificate": "none", "database": "none recorded",
                     "teardown": "finished"}
    assert shared.tree() == after
    changing = {"userdel", "certbot", "psql", "pm2"}
    assert not [c for c in sandbox.commands()[calls:] if c.name in changing]


async def test_an_external_database_a_shared_domain_and_a_failing_nginx_test_are_left_alone(
        shared: Shared) -> None:
    sandbox, first = shared.sandbox, shared.first
    databases = dict(sandbox.shim_state()["postgres"]["databases"])
    reloads = sandbox.shim_state()["reloads"]["nginx"]
    sandbox.fail_command("nginx", args_contain="-t", stderr="nginx: [emerg] another site is broken\n")
    foreign = sandbox.path(f"{first.nginx_dir}/sites-available/someone-else.conf")
    foreign.write_text(f"server {{\n    server_name {first.domain};\n}}\n")

    results = await shared.run("teardown-host", first, O4O_DB_MODE="external")

    assert results["database"] == "external: not touched"
    assert results["nginx"] == "site removed, not reloaded: nginx -t fails"
    assert results["certificate"] == "kept"  # another site on the host serves that domain
    assert sandbox.path(first.certificate_path).exists() and foreign.exists()
    assert not [c for c in sandbox.commands("certbot") if "delete" in c.args]
    assert sandbox.shim_state()["postgres"]["databases"] == databases
    assert not [c for c in sandbox.commands("psql") if any("DROP" in arg for arg in c.args)]
    assert sandbox.shim_state()["reloads"]["nginx"] == reloads
    assert not sandbox.path(first.nginx_enabled_path).exists()
    assert not sandbox.path(first.base_dir).exists() and not sandbox.path(first.state_dir).exists()
