"""The apps stage over real SSH in a SandboxHost: its host script, then the operator's API step through an SSH
tunnel (sshd's direct-tcpip) to the sandbox's stand-in for the instance's own API
(operator/o4o_operator/testing/sandbox_apps_api.py, served by sandbox_api_listener.py): the admin account once,
apps added and removed through /api/v1/admin/apps/*, an unknown app and a refused one stalling, the instance
unavailable, and spec.postInstall steps run once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_scripts_sandbox import Host

from o4o_operator.errors import PermanentError, TransientError
from o4o_operator.pipeline.stages import StageName, script_for
from o4o_operator.providers.ssh import SshSession
from o4o_operator.rendering import HostContext, render_script
from o4o_operator.runner.apps_step import apply_apps
from o4o_operator.spec_install import PostInstallStep
from o4o_operator.testing import SandboxHost, make_fixture_repo
from o4o_operator.testing.sandbox_apps_api import load_state

ADMIN = {"O4O_ADMIN_EMAIL": "admin@shop.example.com", "O4O_ADMIN_PASSWORD": "pw-canary-7f3a&$x"}


@pytest.fixture
async def host(sandbox: SandboxHost, session: SshSession, tmp_path: Path) -> Host:
    repo, first_commit = make_fixture_repo(tmp_path / "platform")
    context = HostContext(domain="shop.example.com", instance_name="shop", repository=str(repo),
                          revision="main", tls_email="ops@example.com", health_attempts=2,
                          health_interval_seconds=0)
    host = Host(sandbox, session, repo, first_commit, context)
    await host.run(StageName.RUNTIME)
    await host.deploy(first_commit)
    host.context = context.with_commit(first_commit)
    return host


async def apps(host: Host, *wanted: str, steps: tuple[PostInstallStep, ...] = ()) -> dict[str, str]:
    """As the runner does the stage: the apps script, then the API step with the script's results."""
    lines: list[str] = []
    context = dataclasses.replace(host.context, apps=wanted, post_install=steps)
    secret, public = {"O4O_ADMIN_PASSWORD": ADMIN["O4O_ADMIN_PASSWORD"]}, {"O4O_ADMIN_EMAIL": ADMIN["O4O_ADMIN_EMAIL"]}
    try:
        result = await host.session.run(render_script(script_for(StageName.APPS), context), timeout=120,
                                        log=lines.append, env=secret, public_env=public)
        return await apply_apps(host.session, context, lines.append, (secret, public), result.results)
    finally:
        host.log.extend(lines)


def calls(host: Host) -> list[tuple[str, str]]:
    return [(call["path"].rsplit("/", 1)[-1], call["appId"]) for call in load_state(host.sandbox.root)["calls"]]




def assert_no_credential(host: Host) -> None:
    text = "\n".join(host.log)
    assert ADMIN["O4O_ADMIN_PASSWORD"] not in text and "[REDACTED]" not in text


async def test_apps_are_added_and_removed_through_the_instance_api_as_the_admin_made_once(host: Host) -> None:
    assert await apps(host, "forum-core") == {"installed": "forum-core", "added": "forum-core", "removed": ""}
    assert calls(host) == [("install", "forum-core"), ("activate", "forum-core")]
    [admin] = host.sandbox.commands("npx")
    assert admin.user == host.context.app_user
    assert Path(admin.cwd) == host.sandbox.path(f"{host.context.current_link}/{host.context.api_dir}").resolve()
    assert admin.args[:2] == ("tsx", "src/scripts/create-admin-user.ts")
    assert load_state(host.sandbox.root)["admin"]["email"] == ADMIN["O4O_ADMIN_EMAIL"]
    assert not [c for c in host.sandbox.commands() if c.name in ("curl", "node") and "/api/v1/" in " ".join(c.args)]
    assert host.sandbox.path(f"{host.context.apps_state_dir}/apps/forum-core").exists()  # root's record

    assert await apps(host, "forum-core") == {"installed": "forum-core", "added": "", "removed": ""}
    assert len(calls(host)) == 2 and len(host.sandbox.commands("npx")) == 1

    assert await apps(host) == {"installed": "", "added": "", "removed": "forum-core"}
    assert calls(host)[2:] == [("deactivate", "forum-core"), ("uninstall", "forum-core")]
    assert not host.sandbox.path(f"{host.context.apps_state_dir}/apps/forum-core").exists()
    assert_no_credential(host)


async def test_an_app_the_instance_does_not_list_stalls_naming_its_index_before_anything_changes(
        host: Host) -> None:
    with pytest.raises(PermanentError) as caught:
        await apps(host, "forum-core", "blog")
    assert caught.value.reason == "UnknownApp"
    assert "spec.apps[1]" in caught.value.message and "blog" in caught.value.message
    assert "forum-core, signage" in caught.value.message
    assert calls(host) == []


async def test_an_app_the_instance_refuses_stalls_with_its_own_words(host: Host) -> None:
    with pytest.raises(PermanentError) as caught:
        await apps(host, "forum-core", "signage")
    assert caught.value.reason == "AppRefused"
    assert caught.value.message.startswith("spec.apps[1]: the instance refused to install app signage (HTTP 500)")
    assert "No manifest found for app: signage" in caught.value.message
    assert_no_credential(host)


async def test_post_install_steps_run_once_and_a_missing_target_stalls_naming_the_step(host: Host) -> None:
    listed = PostInstallStep.model_validate({"name": "list", "request": {"method": "GET",
                                                                         "path": "/api/v1/admin/apps/market"}})
    await apps(host, steps=(listed,))
    assert host.log.count("==> Post-install step list (spec.postInstall[0])") == 1
    await apps(host, steps=(listed,))
    assert host.log.count("==> Post-install step list (spec.postInstall[0])") == 1  # it ran once
    assert host.log.count("==> Post-install step list ran before") == 1

    missing = PostInstallStep.model_validate({"name": "seed", "command": ["no-such-seed", "--run"]})
    with pytest.raises(PermanentError) as caught:
        await apps(host, steps=(listed, missing))
    assert caught.value.reason == "PostInstallFailed"
    assert caught.value.message.startswith("spec.postInstall[1] (seed): command not found: no-such-seed")

    gone = PostInstallStep.model_validate({"name": "scaffold", "request": {"path": "/api/v1/sites/1/scaffold"}})
    with pytest.raises(PermanentError) as caught:
        await apps(host, steps=(listed, gone))
    assert caught.value.reason == "PostInstallFailed"
    assert caught.value.message.startswith("spec.postInstall[1] (scaffold): POST /api/v1/sites/1/scaffold "
                                           "answered HTTP 404")


async def test_an_unavailable_or_silent_instance_is_retried_and_a_refused_admin_too(host: Host) -> None:
    host.sandbox.api.fail_next("/admin/apps/market", status=503, body={"message": "Starting"})
    with pytest.raises(TransientError) as caught:
        await apps(host, "forum-core")
    assert caught.value.reason == "AppsApiUnavailable"
    assert caught.value.message == "Listing the instance's apps: the instance's API is unavailable (HTTP 503)"

    host.sandbox.api.fail_next("/auth/login", close=True)
    with pytest.raises(TransientError) as caught:
        await apps(host, "forum-core")
    assert caught.value.reason == "AppsApiUnavailable"
    assert caught.value.message.startswith("The instance's API on 127.0.0.1:3001 did not answer "
                                           "POST /api/v1/auth/login: ")

    host.sandbox.api.fail_next("/auth/login", status=401, body={"message": f"no {ADMIN['O4O_ADMIN_PASSWORD']}"})
    with pytest.raises(TransientError) as caught:
        await apps(host, "forum-core")
    assert caught.value.reason == "AdminLoginFailed"
    assert caught.value.message == ("The instance refused the operator's admin login (HTTP 401): "
                                    "no [redacted]")
    assert calls(host) == []
    assert await apps(host, "forum-core") == {"installed": "forum-core", "added": "forum-core", "removed": ""}
