"""The apps stage's API step (runner/apps_step.py) as the worker runs it: the host script's report, then the
instance's API through the session's tunnel (here to a real local aiohttp server acting O4O), each change
recorded with an apps-ledger script, and the reasons and messages users see."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from stage_fakes import FakeKube, RecordingConnector, RecordingSession, make_context, make_runtime, spec_body
from stage_fakes import static_resolver as resolver
from test_host_stage_rows import FETCHED

from o4o_operator.errors import PermanentError, TransientError
from o4o_operator.pipeline.stages import StageName
from o4o_operator.rendering import render_script
from o4o_operator.rendering.apps_script import AppsLedger, step_marker
from o4o_operator.runner import apps_step
from o4o_operator.spec_install import PostInstallStep
from o4o_operator.testing.stage_driver import StageDriver

PASSWORD = "n0t-rendered-Passw0rd"
EMAIL = "admin@shop.example.com"
TOKEN = "tok-3a9f-canary"


class FakeO4O:
    """O4O's login and admin apps endpoints over ``apps`` (id -> status); ``market`` lists the ids it offers;
    ``refuse`` answers an install with 500 and O4O's words. Every call is recorded."""

    def __init__(self) -> None:
        self.apps: dict[str, str] = {}
        self.market = ("forum-core", "signage")
        self.refuse = {"signage": "No manifest found for app: signage"}
        self.calls: list[tuple[str, str, Any]] = []
        self.login_body: dict[str, Any] = {"success": True, "data": {"tokens": {"accessToken": TOKEN}}}
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read() or b"null")
        self.calls.append((request.method, request.path, body))
        if request.path == "/api/v1/auth/login":
            ok = body == {"email": EMAIL, "password": PASSWORD, "includeLegacyTokens": True}
            return web.json_response(self.login_body if ok else {"message": "Invalid credentials"},
                                     status=200 if ok else 401)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "Authentication required"}, status=401)
        if request.path == "/api/v1/admin/apps/market":
            return web.json_response({"apps": [{"appId": app} for app in self.market]})
        if request.path == "/api/v1/admin/apps":
            return web.json_response({"apps": [{"appId": a, "status": s} for a, s in self.apps.items()]})
        action = request.path.removeprefix("/api/v1/admin/apps/")
        app = (body or {}).get("appId", "") if isinstance(body, dict) else ""
        if action == "install" and app in self.refuse:
            return web.json_response({"ok": False, "error": "INSTALL_FAILED", "message": self.refuse[app]},
                                     status=500)
        if action in ("install", "activate", "deactivate"):
            self.apps[app] = {"install": "installed", "activate": "active", "deactivate": "inactive"}[action]
            return web.json_response({"ok": True})
        if action == "uninstall":
            self.apps.pop(app, None)
            return web.json_response({"ok": True})
        if request.path == "/api/v1/admin/settings":
            return web.json_response({"ok": True})
        return web.json_response({"error": f"Cannot {request.method} {request.path}"}, status=404)

    def posted(self) -> list[tuple[str, str]]:
        return [(path.rsplit("/", 1)[-1], body["appId"]) for method, path, body in self.calls
                if method == "POST" and path.startswith("/api/v1/admin/apps/")]


@pytest.fixture
async def o4o() -> AsyncIterator[FakeO4O]:
    fake = FakeO4O()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield fake
    await runner.cleanup()


@pytest.fixture(autouse=True)
def admin_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    async def credentials(instance: Any) -> tuple[dict[str, str], dict[str, str]]:
        return {"O4O_ADMIN_PASSWORD": PASSWORD}, {"O4O_ADMIN_EMAIL": EMAIL}
    monkeypatch.setattr(apps_step, "admin_credentials", credentials)


def driver_for(o4o: FakeO4O, reported: dict[str, str], **spec: Any) -> tuple[StageDriver, RecordingSession]:
    session = RecordingSession(reported)
    session.api_url = o4o.url
    driver = make_context(make_runtime(FakeKube(), RecordingConnector(session), resolver({})),
                          spec_body(apiPort=3101, **spec), FETCHED)
    return driver, session


def ledgers(driver: StageDriver, session: RecordingSession, *changes: AppsLedger) -> list[str]:
    host = driver.instance.host_context()
    return [render_script("apps", host), *(render_script("apps-ledger", host, ledger=c) for c in changes)]


async def test_wanted_apps_are_installed_and_activated_through_the_tunnel_and_recorded(o4o: FakeO4O) -> None:
    o4o.apps = {"lms-core": "active"}  # by other hands: reported, never touched
    driver, session = driver_for(o4o, {"recordedApps": "", "stepsRun": ""}, apps=["forum-core"])

    message = await driver.run(StageName.APPS)

    assert message == "Apps up to date (installed forum-core)"
    assert driver.status.installed_apps == ("forum-core", "lms-core")
    assert session.tunnels == [3101]  # spec.apiPort on the host's loopback
    assert o4o.posted() == [("install", "forum-core"), ("activate", "forum-core")]
    assert session.scripts == ledgers(driver, session, AppsLedger(record=("forum-core",)))
    assert session.envs == [{"O4O_ADMIN_PASSWORD": PASSWORD}] * 2
    assert all(PASSWORD not in script and TOKEN not in script for script in session.scripts)
    assert PASSWORD not in driver.instance.log.full_text and TOKEN not in driver.instance.log.full_text


async def test_an_active_wanted_app_is_left_alone_but_recorded_once(o4o: FakeO4O) -> None:
    o4o.apps = {"forum-core": "active"}
    driver, session = driver_for(o4o, {"recordedApps": "", "stepsRun": ""}, apps=["forum-core"])
    assert await driver.run(StageName.APPS) == "Apps up to date (no change)"
    assert o4o.posted() == []
    assert session.scripts == ledgers(driver, session, AppsLedger(record=("forum-core",)))

    driver, session = driver_for(o4o, {"recordedApps": "forum-core", "stepsRun": ""}, apps=["forum-core"])
    assert await driver.run(StageName.APPS) == "Apps up to date (no change)"
    assert len(session.scripts) == 1  # nothing changed: no ledger run


async def test_recorded_apps_no_longer_wanted_are_deactivated_uninstalled_and_forgotten(o4o: FakeO4O) -> None:
    o4o.apps = {"forum-core": "active", "lms-core": "active"}
    driver, session = driver_for(o4o, {"recordedApps": "forum-core", "stepsRun": ""})

    assert await driver.run(StageName.APPS) == "Apps up to date (removed forum-core)"
    assert o4o.posted() == [("deactivate", "forum-core"), ("uninstall", "forum-core")]
    assert session.scripts == ledgers(driver, session, AppsLedger(forget=("forum-core",)))
    assert driver.status.installed_apps == ("lms-core",)


async def test_an_unknown_app_stalls_before_anything_changes(o4o: FakeO4O) -> None:
    driver, session = driver_for(o4o, {"recordedApps": "", "stepsRun": ""}, apps=["forum-core", "blog"])
    with pytest.raises(PermanentError) as caught:
        await driver.run(StageName.APPS)
    assert (caught.value.reason, caught.value.message) == (
        "UnknownApp", "spec.apps[1]: the instance lists no app named blog; it lists: forum-core, signage")
    assert o4o.posted() == [] and len(session.scripts) == 1


async def test_a_refused_install_stalls_with_the_instances_words(o4o: FakeO4O) -> None:
    driver, _ = driver_for(o4o, {"recordedApps": "", "stepsRun": ""}, apps=["forum-core", "signage"])
    with pytest.raises(PermanentError) as caught:
        await driver.run(StageName.APPS)
    assert (caught.value.reason, caught.value.message) == (
        "AppRefused", "spec.apps[1]: the instance refused to install app signage (HTTP 500): "
                      "No manifest found for app: signage")


@pytest.mark.parametrize(("login_body", "message"), [
    ({"success": True, "data": {"message": "cookie only"}},
     "The instance's login answer carried no data.tokens.accessToken"),
    ("not json", "The instance's login answer carried no data.tokens.accessToken"),
])
async def test_a_login_without_a_token_is_retried(o4o: FakeO4O, login_body: Any, message: str) -> None:
    o4o.login_body = login_body
    driver, _ = driver_for(o4o, {"recordedApps": "", "stepsRun": ""}, apps=["forum-core"])
    with pytest.raises(TransientError) as caught:
        await driver.run(StageName.APPS)
    assert (caught.value.reason, caught.value.message) == ("AdminLoginFailed", message)


async def test_wrong_credentials_are_a_refused_login_without_them_in_the_message(
        o4o: FakeO4O, monkeypatch: pytest.MonkeyPatch) -> None:
    async def wrong(instance: Any) -> tuple[dict[str, str], dict[str, str]]:
        return {"O4O_ADMIN_PASSWORD": "wrong-password-canary"}, {"O4O_ADMIN_EMAIL": EMAIL}
    monkeypatch.setattr(apps_step, "admin_credentials", wrong)
    driver, _ = driver_for(o4o, {"recordedApps": "", "stepsRun": ""})
    with pytest.raises(TransientError) as caught:
        await driver.run(StageName.APPS)
    assert (caught.value.reason, caught.value.message) == (
        "AdminLoginFailed", "The instance refused the operator's admin login (HTTP 401): Invalid credentials")


async def test_post_install_steps_run_in_order_once_each_requests_here_commands_on_the_host(o4o: FakeO4O) -> None:
    steps = [{"name": "seed", "command": ["node", "seed.js"]},
             {"name": "title", "request": {"method": "PUT", "path": "/api/v1/admin/settings",
                                           "body": {"siteName": "Shop"}}},
             {"name": "done", "request": {"path": "/api/v1/admin/settings"}}]
    seed, title, done = (PostInstallStep.model_validate(step) for step in steps)
    driver, session = driver_for(o4o, {"recordedApps": "", "stepsRun": step_marker(done)}, postInstall=steps)

    assert await driver.run(StageName.APPS) == "Apps up to date (no change)"
    assert session.scripts == ledgers(driver, session, AppsLedger(steps=(step_marker(seed),), command=0),
                                      AppsLedger(steps=(step_marker(title),)))
    assert [(m, p, b) for m, p, b in o4o.calls if p == "/api/v1/admin/settings"] == [
        ("PUT", "/api/v1/admin/settings", {"siteName": "Shop"})]  # "done" ran before


async def test_a_post_install_request_the_instance_refuses_stalls_naming_the_step(o4o: FakeO4O) -> None:
    steps = [{"name": "scaffold", "request": {"path": "/api/v1/sites/1/scaffold"}}]
    driver, session = driver_for(o4o, {"recordedApps": "", "stepsRun": ""}, postInstall=steps)
    with pytest.raises(PermanentError) as caught:
        await driver.run(StageName.APPS)
    assert (caught.value.reason, caught.value.message) == (
        "PostInstallFailed", "spec.postInstall[0] (scaffold): POST /api/v1/sites/1/scaffold answered HTTP 404: "
                             "Cannot POST /api/v1/sites/1/scaffold")
    assert len(session.scripts) == 1  # not recorded as run
