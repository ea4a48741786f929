"""The runtime stage's Node.js install and the health probe, run for real over SSH in a SandboxHost.

curl, npm, systemctl and friends are shims; the download lands in a file, and sha256sum and tar run for
real against the sandbox's nodejs.org/dist-shaped mirror (``sandbox_node_mirror``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from o4o_operator.errors import StageError, TransientError
from o4o_operator.markers import parse_results
from o4o_operator.pipeline.stages import StageName, script_for
from o4o_operator.providers.ssh import SshSession
from o4o_operator.rendering import HostContext, render_script
from o4o_operator.testing import SandboxHost, sandbox_node_mirror
from o4o_operator.testing.pki import make_pki

# The probes' status codes and TLS, without Node.js installed: the status code alone decides here (the
# health body, read with the server's node, is tests/host/test_activation_sandbox.py's).
CONTEXT = HostContext(domain="shop.example.com", instance_name="shop", repository="https://example.com/o4o.git",
                      revision="main", tls_email="ops@example.com", node_mirror="https://mirror.example.com/node",
                      health_body_field="")
TARBALL = "node-v22.18.0-linux-x64.tar.xz"
RELEASE_URL = "https://mirror.example.com/node/v22.18.0"


async def run(session: SshSession, script_name: StageName | str, context: HostContext = CONTEXT) -> dict[str, str]:
    lines: list[str] = []
    name = script_for(script_name) if isinstance(script_name, StageName) else script_name
    await session.run(render_script(name, context), timeout=120, log=lines.append)
    return parse_results(lines)


def npm_installs(sandbox: SandboxHost) -> list[str]:
    return [c.args[-1] for c in sandbox.commands("npm") if "install" in c.args]


def tarball_digest(sandbox: SandboxHost, version: str = "22.18.0") -> str:
    return hashlib.sha256(sandbox_node_mirror.node_tarball(version, "x64", sandbox.shim_dir)).hexdigest()


# ---- Node.js ----------------------------------------------------------------------------------


async def test_node_is_the_release_tarball_from_the_mirror_checked_against_its_shasums(
        sandbox: SandboxHost, session: SshSession) -> None:
    results = await run(session, StageName.RUNTIME)
    assert results["node"] == "v22.18.0"
    downloads = [c.args for c in sandbox.commands("curl")]
    assert [args[-1] for args in downloads] == [f"{RELEASE_URL}/SHASUMS256.txt", f"{RELEASE_URL}/{TARBALL}"]
    node_dir = sandbox.path("/opt/o4o/node/v22.18.0")
    assert (node_dir / ".o4o-release").read_text() == f"{tarball_digest(sandbox)}  {TARBALL}\n"
    for tool in ("node", "npm", "npx"):
        assert sandbox.path(f"/usr/local/bin/{tool}").readlink() == node_dir / "bin" / tool
    # npm's global prefix is /usr/local, so pnpm and pm2 land on PATH, outside the versioned directory.
    assert (node_dir / "lib/node_modules/npm/npmrc").read_text() == f"prefix={sandbox.path('/usr/local')}\n"
    assert npm_installs(sandbox) == ["pnpm@10.25.0", "pm2@6.0.14"]
    assert sandbox.path("/usr/local/bin/pnpm").exists() and sandbox.path("/usr/local/bin/pm2").exists()
    assert not (node_dir / "bin/pnpm").exists()
    assert sandbox.commands("corepack") == []
    # Nothing runs pm2 as root but `pm2 startup`: any other pm2 command would start a root PM2 daemon.
    assert [c.args[0] for c in sandbox.commands("pm2") if not c.user] == ["startup"]


async def test_a_checksum_mismatch_fails_the_runtime_stage_and_installs_nothing(
        sandbox: SandboxHost, session: SshSession) -> None:
    wrong = "0" * 64
    sandbox.set_http_response(200, f"{wrong}  {TARBALL}\n", url_contains="SHASUMS256.txt")
    with pytest.raises(TransientError) as caught:
        await run(session, StageName.RUNTIME)
    assert caught.value.reason == "NodeChecksumMismatch"
    assert f"SHA-256 {tarball_digest(sandbox)} but SHASUMS256.txt says {wrong}" in caught.value.message
    assert not sandbox.path("/opt/o4o/node/v22.18.0").exists()
    assert not sandbox.path("/usr/local/bin/node").is_symlink()
    assert npm_installs(sandbox) == []
    # The mirror is fixed: the next attempt installs.
    honest = sandbox_node_mirror.serve(f"{RELEASE_URL}/SHASUMS256.txt", sandbox.shim_dir)
    assert honest is not None
    sandbox.set_http_response(200, honest.decode(), url_contains="SHASUMS256.txt")
    assert (await run(session, StageName.RUNTIME))["node"] == "v22.18.0"


@pytest.mark.parametrize(("status", "shasums", "reason"), [
    (404, "Not Found", "NodeDownloadFailed"),
    (200, f"{'1' * 64}  node-v22.18.0-linux-arm64.tar.xz\n", "NodeReleaseNotFound"),
])
async def test_a_mirror_without_the_release_is_a_clear_transient_failure(
        sandbox: SandboxHost, session: SshSession, status: int, shasums: str, reason: str) -> None:
    sandbox.set_http_response(status, shasums, url_contains="SHASUMS256.txt")
    with pytest.raises(TransientError) as caught:
        await run(session, StageName.RUNTIME)
    assert caught.value.reason == reason
    assert RELEASE_URL in caught.value.message
    assert [c.args[-1] for c in sandbox.commands("curl")] == [f"{RELEASE_URL}/SHASUMS256.txt"]


async def test_an_installed_release_is_left_alone_and_a_half_installed_one_is_installed_again(
        sandbox: SandboxHost, session: SshSession) -> None:
    await run(session, StageName.RUNTIME)
    downloads = len(sandbox.commands("curl"))
    await run(session, StageName.RUNTIME)
    assert len(sandbox.commands("curl")) == downloads
    sandbox.path("/opt/o4o/node/v22.18.0/.o4o-release").unlink()  # as if unpacking had been cut short
    await run(session, StageName.RUNTIME)
    assert len(sandbox.commands("curl")) == downloads + 2
    assert sandbox.path("/opt/o4o/node/v22.18.0/.o4o-release").exists()


async def test_a_new_pinned_version_is_installed_beside_the_old_one_and_linked(
        sandbox: SandboxHost, session: SshSession) -> None:
    await run(session, StageName.RUNTIME)
    newer = dataclasses.replace(CONTEXT, node_version="22.19.0")
    assert (await run(session, StageName.RUNTIME, newer))["node"] == "v22.19.0"
    assert sandbox.path("/opt/o4o/node/v22.18.0/bin/node").exists()
    assert sandbox.path("/usr/local/bin/node").readlink() == sandbox.path("/opt/o4o/node/v22.19.0/bin/node")
    assert len(npm_installs(sandbox)) == 2  # pnpm and PM2 stay: they live in /usr/local


# ---- the health probe -------------------------------------------------------------------------

@pytest.fixture
def roots_pem(tmp_path: Path) -> str:
    return make_pki(tmp_path).ca_cert.read_text()


def probes(sandbox: SandboxHost) -> list[tuple[str, ...]]:
    return [c.args for c in sandbox.commands("curl")]


@pytest.mark.parametrize(("root_status", "api_status", "healthy"), [
    (200, 200, True),
    (301, 200, False),  # nginx redirecting to HTTPS is not a site that serves
    (200, 502, False),  # nginx up, the API behind it down
    (200, 301, False),
])
async def test_before_the_certificate_every_path_must_answer_200_over_http(
        sandbox: SandboxHost, session: SshSession, root_status: int, api_status: int, healthy: bool) -> None:
    sandbox.set_http_response(root_status, "", url_contains="")
    sandbox.set_http_response(api_status, "", url_contains="/api/health")
    if healthy:
        assert await run(session, "check-health") == {"health": "ok"}
    else:
        with pytest.raises(TransientError) as caught:
            await run(session, "check-health")
        assert caught.value.reason == "HealthCheckFailed"
        failing = "http://127.0.0.1/api/health" if api_status != 200 else "http://127.0.0.1/"
        assert f"HTTP {api_status if api_status != 200 else root_status} {failing}" in caught.value.message
    assert [args[-1] for args in probes(sandbox)] == ["http://127.0.0.1/", "http://127.0.0.1/api/health"]
    for args in probes(sandbox):
        assert "Host: shop.example.com" in args
        assert not {"-L", "--location", "-f", "--fail"} & set(args)


async def test_once_the_certificate_exists_the_probe_is_https_to_the_domain_verified_by_the_bundle(
        sandbox: SandboxHost, session: SshSession, roots_pem: str) -> None:
    context = dataclasses.replace(CONTEXT, certificate_ca_bundle=roots_pem)
    assert context.certificate_ca_path is not None
    with pytest.raises(TransientError) as missing:
        await run(session, "check-health", context)
    assert missing.value.reason == "ConfigMissing"
    await session.upload(context.certificate_ca_path, roots_pem.encode(), mode=0o644)
    sandbox.path(context.certificate_path).parent.mkdir(parents=True)
    sandbox.path(context.certificate_path).write_text("(a certificate)\n")
    assert await run(session, "check-health", context) == {"health": "ok"}
    calls = probes(sandbox)
    assert [args[-1] for args in calls] == ["https://shop.example.com/", "https://shop.example.com/api/health"]
    bundle = str(sandbox.path(context.certificate_ca_path))
    for args in calls:
        assert args[args.index("--resolve") + 1] == "shop.example.com:443:127.0.0.1"
        assert args[args.index("--cacert") + 1] == bundle
    assert sandbox.path(context.certificate_ca_path).read_text() == roots_pem
    # Without a bundle, the system roots verify it: no --cacert.
    await run(session, "check-health")
    assert all("--cacert" not in args for args in probes(sandbox)[2:])


async def test_a_tls_failure_is_reported_with_curls_own_words(sandbox: SandboxHost, session: SshSession) -> None:
    sandbox.path(CONTEXT.certificate_path).parent.mkdir(parents=True)
    sandbox.path(CONTEXT.certificate_path).write_text("(a certificate)\n")
    sandbox.fail_command("curl", exit_code=60, stdout="\n000\n", times=-1,
                         stderr="curl: (60) SSL certificate problem: unable to get local issuer certificate\n")
    with pytest.raises(StageError) as caught:
        await run(session, "check-health")
    assert caught.value.reason == "HealthCheckFailed"
    assert ("HTTP 000 https://shop.example.com/ (curl: (60) SSL certificate problem: unable to get local "
            "issuer certificate)") in caught.value.message
