"""The real rendered scripts, run over real SSH in a SandboxHost, end to end."""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

import pytest

from o4o_operator.errors import PermanentError, StageError, TransientError
from o4o_operator.markers import parse_results
from o4o_operator.pipeline.stages import StageName, script_for
from o4o_operator.providers.ssh import SshSession
from o4o_operator.rendering import (
    HostContext,
    render_ecosystem,
    render_env,
    render_nginx_site,
    render_script,
)
from o4o_operator.runner.health_gate import gate_release
from o4o_operator.testing import SandboxHost, commit_files, make_fixture_repo
from o4o_operator.testing.fixture_repo import tag_commit
from o4o_operator.testing.pki import make_pki

ENV_CANARY = "env-canary-d41d8cd98f00b204"
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
TOKEN_CANARY = "token-canary-e3b0c44298fc1c14"


@dataclasses.dataclass
class Host:
    """A sandbox, a session on it, the fixture repository, and every log line seen so far."""

    sandbox: SandboxHost
    session: SshSession
    repo: Path
    first_commit: str
    context: HostContext
    log: list[str] = dataclasses.field(default_factory=list)

    async def run(self, stage: StageName | str, context: HostContext | None = None) -> dict[str, str]:
        lines: list[str] = []

        def sink(line: str) -> None:
            lines.append(line)
            self.log.append(line)

        context = context or self.context
        script = render_script(script_for(stage) if isinstance(stage, StageName) else stage, context)
        await self.session.run(script, timeout=120, log=sink, env={"O4O_GIT_TOKEN": TOKEN_CANARY})
        results = parse_results(lines)
        if stage is StageName.CONFIGURE:  # then its row's API step, as the runner runs it: the health gate
            results.update(await gate_release(self.session, context, sink, results))
        return results

    async def upload_configuration(self, context: HostContext) -> None:
        await self.session.upload(context.env_path, render_env({"DATABASE_PASSWORD": ENV_CANARY}).encode(),
                                  mode=0o600, owner=context.app_user)
        await self.session.upload(context.ecosystem_path, render_ecosystem(context).encode(), mode=0o644,
                                  owner=context.app_user)
        for https in (False, True):
            await self.session.upload(context.nginx_site_path(https),
                                      render_nginx_site(context, https).encode(), mode=0o644)
        await self.upload_ca_bundles(context)

    async def upload_ca_bundles(self, context: HostContext) -> None:
        """As the configure and tls stages do: spec.tls's PEM bundles, as files."""
        for path, bundle in ((context.acme_ca_path, context.acme_ca_bundle),
                             (context.certificate_ca_path, context.certificate_ca_bundle)):
            if path and bundle:
                await self.session.upload(path, bundle.encode(), mode=0o644)

    async def deploy(self, commit: str) -> dict[str, str]:
        """source, build-site, build-api, configure (which activates) for the repository's HEAD."""
        fetched = await self.run(StageName.SOURCE)
        assert fetched["commit"] == commit
        context = self.context.with_commit(commit)
        await self.run(StageName.BUILD_SITE, context)
        await self.run(StageName.BUILD_API, context)
        await self.upload_configuration(context)
        return await self.run(StageName.CONFIGURE, context)

    def current(self) -> str:
        return self.sandbox.path(self.context.current_link).readlink().as_posix()


@pytest.fixture
async def host(sandbox: SandboxHost, session: SshSession, tmp_path: Path) -> Host:
    repo, first_commit = make_fixture_repo(tmp_path / "platform")
    context = HostContext(domain="shop.example.com", instance_name="shop", repository=str(repo),
                          revision="main", tls_email="ops@example.com", health_attempts=2,
                          health_interval_seconds=0, apps=("forum-core",))
    host = Host(sandbox, session, repo, first_commit, context)
    await host.run(StageName.RUNTIME)
    return host


def assert_no_canary(host: Host) -> None:
    """No secret in the log, and nothing even needed masking: the scripts never print one."""
    text = "\n".join(host.log)
    assert ENV_CANARY not in text
    assert TOKEN_CANARY not in text
    assert "[REDACTED]" not in text


async def test_runtime_setup_installs_once_then_only_checks(host: Host) -> None:
    state = host.sandbox.shim_state()
    assert {"curl", "xz-utils", "nginx", "certbot", "git", "ca-certificates", "build-essential",
            "python3"} <= set(state["packages"])
    assert "nodejs" not in state["packages"]
    node_dir = host.sandbox.path(host.context.node_dir)
    assert host.sandbox.path("/usr/local/bin/node").resolve() == node_dir / "bin/node"
    assert state["npm_global"] == ["pm2", "pnpm"]
    assert state["npm_versions"] == {"pnpm": "10.25.0", "pm2": "6.0.14"}
    assert host.sandbox.path("/usr/local/lib/node_modules/pnpm/package.json").exists()
    assert state["users"] == [host.context.app_user]
    unit = f"pm2-{host.context.app_user}"
    assert host.sandbox.path(f"/etc/systemd/system/{unit}.service").exists()
    assert {unit, "nginx"} <= set(state["enabled"]) and {unit, "nginx"} <= set(state["active"])
    calls_before = len(host.sandbox.commands())
    results = await host.run(StageName.RUNTIME)
    assert results == {"node": "v22.18.0", "runtime": "ready"}
    changing = {"apt-get", "useradd", "curl"}
    again = host.sandbox.commands()[calls_before:]
    assert [c for c in again if c.name in changing or (c.name == "npm" and "install" in c.args)] == []
    assert [c.args[:1] for c in again if c.name == "systemctl" and c.args[:1] in (("start",), ("restart",))] == []


async def test_fetch_source_resolves_the_branch_to_its_commit(host: Host) -> None:
    results = await host.run(StageName.SOURCE)
    assert results["commit"] == host.first_commit
    second = commit_files(host.repo, {"CHANGELOG.md": "second\n"}, "Second")
    assert (await host.run(StageName.SOURCE))["commit"] == second
    pinned = host.context.with_commit(host.first_commit)
    assert (await host.run(StageName.SOURCE, pinned))["commit"] == host.first_commit
    assert_no_canary(host)


async def test_unknown_revision_is_permanent(host: Host) -> None:
    with pytest.raises(PermanentError) as caught:
        await host.run(StageName.SOURCE, dataclasses.replace(host.context, revision="no-such-branch"))
    assert caught.value.reason == "RevisionNotFound"


async def test_unreachable_repository_is_reported(host: Host) -> None:
    missing = dataclasses.replace(host.context, repository=str(host.repo.parent / "missing"))
    with pytest.raises(StageError) as caught:
        await host.run(StageName.SOURCE, missing)
    assert caught.value.reason in {"SourceAccessDenied", "SourceUnavailable"}


async def test_a_changed_repository_is_cloned_afresh_and_the_old_ones_refs_do_not_answer(
        host: Host, tmp_path: Path) -> None:
    old_only = commit_files(host.repo, {"OLD.md": "only in the first repository\n"}, "Old only")
    tag_commit(host.repo, "v1", old_only)
    assert (await host.run(StageName.SOURCE, dataclasses.replace(host.context, revision="v1")))["commit"] == old_only
    other, _ = make_fixture_repo(tmp_path / "fork")
    fork_commit = commit_files(other, {"FORK.md": "the fork\n"}, "Fork")
    moved = dataclasses.replace(host.context, repository=str(other))

    assert (await host.run(StageName.SOURCE, moved))["commit"] == fork_commit
    for revision in ("v1", old_only):
        with pytest.raises(PermanentError) as caught:
            await host.run(StageName.SOURCE, dataclasses.replace(moved, revision=revision))
        assert caught.value.reason == "RevisionNotFound"


async def test_first_deploy_builds_activates_and_passes_its_health_check(host: Host) -> None:
    results = await host.deploy(host.first_commit)
    assert results == {"nginxSite": "http", "rollbackTo": "", "release": host.first_commit}
    release = host.sandbox.path(host.context.release_dir(host.first_commit))
    assert (release / "apps/main-site/dist/index.html").exists()
    assert (release / "apps/api-server/dist/main.js").exists()
    assert host.current() == f"releases/{host.first_commit}"
    assert host.sandbox.shim_state()["live_release"] == host.first_commit
    enabled = host.sandbox.path(host.context.nginx_enabled_path)
    assert enabled.readlink().as_posix() == "../sites-available/o4o-default.shop.http.conf"
    env_file = host.sandbox.path(host.context.env_path)
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert ENV_CANARY in env_file.read_text()
    # Everything done inside the instance's directories was done as the instance's user.
    user = host.context.app_user
    as_user = [c.args[c.args.index("--") + 1:] for c in host.sandbox.commands("runuser") if c.args[:2] == ("-u", user)]
    for expected in (("git", "clone"), ("git", "-C"), ("tar", "-x"), ("touch",), ("ln", "-sfn"), ("mv", "-Tf"),
                     ("bash", "-c")):  # bash -c: the .env and ecosystem uploads
        assert any(args[:len(expected)] == expected for args in as_user), expected
    root_may = {("--version",), ("startup",)}  # the runtime stage's checks, and PM2's boot unit
    assert {c.user for c in host.sandbox.commands("pnpm") if c.args[:1] not in root_may} == {user}
    assert {c.user for c in host.sandbox.commands("pm2") if c.args[:1] not in root_may} == {user}
    assert host.sandbox.shim_state()["pm2"] == {user: {host.context.pm2_app_name: host.first_commit}}
    health = [c for c in host.sandbox.commands("curl") if "http://127.0.0.1/api/health" in c.args]
    assert health and "Host: shop.example.com" in health[-1].args
    assert ("install", "--frozen-lockfile") in [c.args[:2] for c in host.sandbox.commands("pnpm")]
    assert_no_canary(host)


async def test_builds_and_configure_are_idempotent(host: Host) -> None:
    await host.deploy(host.first_commit)
    context = host.context.with_commit(host.first_commit)
    pnpm_calls = len(host.sandbox.commands("pnpm"))
    reloads = host.sandbox.shim_state().get("reloads", {}).get("nginx", 0)
    assert (await host.run(StageName.BUILD_SITE, context)) == {"built": "site"}
    assert (await host.run(StageName.BUILD_API, context)) == {"built": "api"}
    await host.run(StageName.CONFIGURE, context)
    assert len(host.sandbox.commands("pnpm")) == pnpm_calls
    assert host.sandbox.shim_state().get("reloads", {}).get("nginx", 0) == reloads
    assert host.current() == f"releases/{host.first_commit}"


async def test_a_site_nginx_rejects_is_not_left_enabled(host: Host) -> None:
    await host.deploy(host.first_commit)
    await host.run(StageName.TLS)
    enabled = host.sandbox.path(host.context.nginx_enabled_path)
    enabled.unlink()
    host.sandbox.fail_command("nginx", exit_code=1, stderr="nginx: [emerg] invalid\n", args_contain="-t")
    with pytest.raises(PermanentError) as caught:
        await host.run(StageName.TLS)
    assert caught.value.reason == "NginxConfigInvalid"
    assert not enabled.is_symlink()


async def test_failed_health_check_rolls_back_to_the_previous_release(host: Host) -> None:
    await host.deploy(host.first_commit)
    broken = commit_files(host.repo, {"apps/api-server/src/main.js": "process.exit(1)\n"}, "Broken API")
    host.sandbox.set_http_response(502, url_contains="/api/health", live_release=broken)
    with pytest.raises(PermanentError) as caught:
        await host.deploy(broken)
    assert caught.value.reason == "RolledBack"
    assert broken in caught.value.message
    assert host.current() == f"releases/{host.first_commit}"
    assert host.sandbox.shim_state()["live_release"] == host.first_commit
    assert host.context.activation_log(broken) in caught.value.message
    log = host.sandbox.path(host.context.activation_log(broken))
    assert log.with_suffix(".failed").exists()
    assert "HTTP 502" in log.read_text()
    assert not list(host.sandbox.path(host.context.release_dir(broken)).glob(".o4o-*.log"))
    assert_no_canary(host)


async def test_a_redirect_is_not_a_healthy_site(host: Host) -> None:
    host.sandbox.set_http_response(301, url_contains="http://127.0.0.1/")
    host.sandbox.set_http_response(200, url_contains="/api/health")
    with pytest.raises(TransientError) as caught:
        await host.deploy(host.first_commit)
    assert caught.value.reason == "HealthCheckFailed"
    log = host.sandbox.path(host.context.activation_log(host.first_commit))
    assert "HTTP 301 http://127.0.0.1/\n" in log.read_text()
    assert "HTTP 200 http://127.0.0.1/api/health" in log.read_text()


async def test_configure_starts_nginx_and_pm2_when_stopped_by_hand_instead_of_rolling_back(host: Host) -> None:
    await host.deploy(host.first_commit)
    second = commit_files(host.repo, {"VERSION": "2\n"}, "Second")
    await host.deploy(second)
    state_file = host.sandbox.root / ".shim-state.json"
    state = json.loads(state_file.read_text())
    pm2_unit = f"pm2-{host.context.app_user}"
    state["active"] = [unit for unit in state["active"] if unit not in ("nginx", pm2_unit)]  # systemctl stop
    state_file.write_text(json.dumps(state))
    results = await host.run(StageName.CONFIGURE, host.context.with_commit(second))
    assert results["release"] == second
    assert {"nginx", pm2_unit} <= set(host.sandbox.shim_state()["active"])
    starts = [c.args for c in host.sandbox.commands("systemctl") if c.args[:1] == ("start",)]
    assert ("start", "nginx") in starts and ("start", pm2_unit) in starts


async def test_releases_are_pruned_to_the_newest(host: Host) -> None:
    host.context = dataclasses.replace(host.context, keep_releases=2)
    commits = [host.first_commit]
    await host.deploy(host.first_commit)
    for number in (2, 3):
        commits.append(commit_files(host.repo, {"VERSION": f"{number}\n"}, f"Release {number}"))
        await host.deploy(commits[-1])
    releases = sorted(p.name for p in host.sandbox.path(host.context.releases_dir).iterdir())
    assert releases == sorted(commits[1:])


async def test_certificate_is_issued_reused_and_nginx_switches_to_https(host: Host) -> None:
    await host.deploy(host.first_commit)
    results = await host.run(StageName.TLS)
    not_after = datetime.datetime.fromisoformat(results["notAfter"].replace("Z", "+00:00"))
    assert not_after > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=60)
    assert "shop.example.com" in results["issuer"]
    assert results["nginxSite"] == "https"
    enabled = host.sandbox.path(host.context.nginx_enabled_path)
    assert enabled.readlink().as_posix() == "../sites-available/o4o-default.shop.https.conf"
    certbot = host.sandbox.commands("certbot")
    assert len(certbot) == 1
    assert {"--webroot", "--non-interactive", "--agree-tos", "--keep-until-expiring"} <= set(certbot[0].args)
    assert certbot[0].args[certbot[0].args.index("--server") + 1] == host.context.acme_server
    assert "--email=ops@example.com" in certbot[0].args
    assert "REQUESTS_CA_BUNDLE" not in certbot[0].env  # no acmeCABundle: the system roots
    again = await host.run(StageName.TLS)
    assert again["notAfter"] == results["notAfter"]
    assert len(host.sandbox.commands("certbot")) == 1
    # Once HTTPS serves, the next activation checks health over HTTPS.
    await host.run(StageName.CONFIGURE, host.context.with_commit(host.first_commit))
    last_health = [c for c in host.sandbox.commands("curl") if "/api/health" in " ".join(c.args)][-1]
    assert "https://shop.example.com/api/health" in last_health.args


async def test_a_certificate_from_another_acme_server_is_issued_again_not_reused(host: Host) -> None:
    """staging -> production: certbot keeps a lineage that is not due whatever --server says, so the
    script must force the renewal; the same server again reuses what it issued."""
    staging = dataclasses.replace(host.context, acme_server=STAGING)
    await host.deploy(host.first_commit)
    first = await host.run(StageName.TLS, staging)
    assert first["server"] == STAGING
    # A certbot that succeeds yet keeps the staging certificate is caught, not reported as production's.
    host.sandbox.fail_command("certbot", exit_code=0, stdout="Certificate not yet due for renewal; no action taken.\n")
    with pytest.raises(PermanentError) as kept:
        await host.run(StageName.TLS)  # host.context: Let's Encrypt production
    assert kept.value.reason == "AcmeServerMismatch"

    moved = await host.run(StageName.TLS)

    first_call, kept_call, second_call = host.sandbox.commands("certbot")
    assert "--force-renewal" not in first_call.args
    assert "--force-renewal" in kept_call.args and "--force-renewal" in second_call.args
    assert second_call.args[second_call.args.index("--server") + 1] == host.context.acme_server
    assert moved["server"] == host.context.acme_server
    assert moved["issuer"] != first["issuer"] and "acme-v02.api.letsencrypt.org" in moved["issuer"]
    assert await host.run(StageName.TLS) == moved  # reused: from this server and valid for long
    assert len(host.sandbox.commands("certbot")) == 3


@pytest.mark.parametrize(("stderr", "error", "reason"), [
    ("Error creating new order :: too many certificates already issued "
     "(urn:ietf:params:acme:error:rateLimited)", PermanentError, "AcmeRateLimited"),
    ("Detail: DNS problem: NXDOMAIN looking up A for shop.example.com",
     TransientError, "AcmeDnsNotResolving"),
    ("Detail: Invalid response from http://shop.example.com/.well-known/acme-challenge/x: 404",
     PermanentError, "AcmeChallengeFailed"),
    ("requests.exceptions.SSLError: HTTPSConnectionPool(host='198.51.100.1', port=14000): [SSL: "
     "CERTIFICATE_VERIFY_FAILED] certificate verify failed", PermanentError, "AcmeServerUntrusted"),
    ("An unexpected error occurred", TransientError, "AcmeRequestFailed"),
])
async def test_acme_failures_are_classified(host: Host, stderr: str, error: type[StageError],
                                            reason: str) -> None:
    host.sandbox.fail_command("certbot", exit_code=1, stderr=stderr + "\n")
    with pytest.raises(error) as caught:
        await host.run(StageName.TLS)
    assert caught.value.reason == reason
    assert not host.sandbox.path(host.context.certificate_path).exists()


async def test_a_private_acme_ca_bundle_reaches_certbot_and_the_https_check_uses_the_certificate_roots(
        host: Host, tmp_path: Path) -> None:
    acme_roots = make_pki(tmp_path / "acme").ca_cert.read_text()
    certificate_roots = make_pki(tmp_path / "issued").ca_cert.read_text()
    host.context = dataclasses.replace(host.context, acme_server="https://198.51.100.1:14000/dir",
                                       acme_ca_bundle=acme_roots, certificate_ca_bundle=certificate_roots)
    await host.deploy(host.first_commit)
    assert host.context.acme_ca_path is not None and host.context.certificate_ca_path is not None
    bundle = host.sandbox.path(host.context.acme_ca_path)
    bundle.unlink()
    with pytest.raises(TransientError) as missing:  # never a request against the system roots instead
        await host.run(StageName.TLS)
    assert missing.value.reason == "ConfigMissing"
    assert host.sandbox.commands("certbot") == []
    await host.upload_ca_bundles(host.context)
    await host.run(StageName.TLS)
    (certbot,) = host.sandbox.commands("certbot")
    assert certbot.env["REQUESTS_CA_BUNDLE"] == str(bundle)
    assert bundle.read_text() == acme_roots
    assert certbot.args[certbot.args.index("--server") + 1] == "https://198.51.100.1:14000/dir"
    await host.run(StageName.CONFIGURE, host.context.with_commit(host.first_commit))
    https_checks = [c.args for c in host.sandbox.commands("curl") if "https://shop.example.com/api/health" in c.args]
    assert https_checks
    assert https_checks[-1][https_checks[-1].index("--cacert") + 1] == str(
        host.sandbox.path(host.context.certificate_ca_path))
    assert all("REQUESTS_CA_BUNDLE" not in c.env for c in host.sandbox.commands() if c.name != "certbot")


async def test_no_certificate_is_requested_before_the_name_resolves(host: Host) -> None:
    host.sandbox.fail_command("getent", exit_code=2)
    with pytest.raises(TransientError) as caught:
        await host.run(StageName.TLS)
    assert caught.value.reason == "AcmeDnsNotResolving"
    assert host.sandbox.commands("certbot") == []
