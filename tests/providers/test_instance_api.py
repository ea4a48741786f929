"""The instance API client (providers/instance_api.py) against a real local HTTP server (aiohttp.web on
127.0.0.1): O4O's login and apps shapes, the instance's refusals, bad JSON, timeouts, redirects (never
followed, so no other host is ever asked), no proxy from the environment, and no credential or token in
anything it raises."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from o4o_operator.providers.instance_api import (
    AdminCredentials,
    ApiFailure,
    AppAction,
    InstalledApp,
    InstanceApiError,
    field_at,
    instance_api,
)

EMAIL = "admin@shop.example.com"
PASSWORD = "pw-canary-7f3a&$x"
TOKEN = "tok-canary-31c9e0"
CREDENTIALS = AdminCredentials(EMAIL, PASSWORD)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """One aiohttp.web server on a free port of 127.0.0.1; ``routes`` answer by ``METHOD path``; every
    request is recorded (method, path, headers, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path, dict(request.headers), body))
        handler = self.routes.get(f"{request.method} {request.path}")
        if handler is None:
            return web.json_response({"success": False, "error": f"Cannot {request.method} {request.path}"},
                                     status=404)
        return await handler(request)

    async def start(self) -> Server:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def answer(status: int, body: Any) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if isinstance(body, str):
            return web.Response(status=status, text=body, content_type="text/html")
        return web.json_response(body, status=status)
    return handler


async def o4o_login(request: web.Request) -> web.StreamResponse:
    """As O4O: the token in the body only with includeLegacyTokens."""
    sent = await request.json()
    if (sent.get("email"), sent.get("password")) != (EMAIL, PASSWORD):
        return web.json_response({"success": False, "error": "INVALID_CREDENTIALS",
                                  "message": "Invalid credentials"}, status=401)
    data: dict[str, Any] = {"message": "Login successful"}
    if sent.get("includeLegacyTokens") is True:
        data["tokens"] = {"accessToken": TOKEN, "refreshToken": "r", "expiresIn": 900}
    return web.json_response({"success": True, "data": data})


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    served = await Server().start()
    served.routes["POST /api/v1/auth/login"] = o4o_login
    yield served
    await served.stop()


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in (EMAIL, PASSWORD, TOKEN):
            assert secret not in text


# ---- what O4O answers -------------------------------------------------------------------------


async def test_logs_in_lists_and_installs_with_o4os_shapes_and_the_token_only_in_a_header(server: Server) -> None:
    server.routes["GET /api/v1/admin/apps/market"] = answer(200, {"apps": [
        {"appId": "forum-core", "name": "Forum"}, {"appId": "signage"}, {"appId": "Bad Id"}, {"name": "no id"}]})
    server.routes["GET /api/v1/admin/apps"] = answer(200, {"success": True, "data": {"apps": [
        {"appId": "forum-core", "status": "active"}, {"appId": "lms-core"}]}})
    server.routes["POST /api/v1/admin/apps/install"] = answer(200, {"ok": True, "message": "installed"})

    async with instance_api(server.url, timeout=10) as api:
        await api.login(CREDENTIALS)
        assert await api.market() == ("forum-core", "signage")
        assert await api.installed() == (InstalledApp("forum-core", "active"), InstalledApp("lms-core", "unknown"))
        await api.app_action(AppAction.INSTALL, "signage")

    login, *calls = server.requests
    assert json.loads(login[3]) == {"email": EMAIL, "password": PASSWORD, "includeLegacyTokens": True}
    assert "Authorization" not in login[2]
    assert all(headers["Authorization"] == f"Bearer {TOKEN}" for _, _, headers, _ in calls)
    assert json.loads(calls[-1][3]) == {"appId": "signage"}
    assert calls[-1][2]["Content-Type"] == "application/json"
    assert "Cookie" not in calls[-1][2]


@pytest.mark.parametrize(("status", "body", "failure", "words"), [
    (500, {"ok": False, "error": "INSTALL_FAILED", "message": "No manifest found for app: signage"},
     ApiFailure.REFUSED, "No manifest found for app: signage"),
    (500, {"success": False, "error": {"message": "App signage is not installed"}},
     ApiFailure.REFUSED, "App signage is not installed"),
    (400, {"error": "appId is required"}, ApiFailure.REFUSED, "appId is required"),
    (404, "<html>Cannot POST</html>", ApiFailure.REFUSED, "<html>Cannot POST</html>"),
    (403, {"message": "Admin only"}, ApiFailure.UNAUTHORISED, "Admin only"),
    (401, {"error": "Authentication required"}, ApiFailure.UNAUTHORISED, "Authentication required"),
    (503, {"message": "Starting\nup\x07"}, ApiFailure.UNAVAILABLE, "Starting up"),
    (502, "Bad gateway", ApiFailure.UNAVAILABLE, "Bad gateway"),
], ids=["refused-message", "refused-error-object", "refused-error-string", "refused-html", "forbidden",
        "unauthorised", "unavailable-control-characters", "bad-gateway"])
async def test_the_instances_refusals_carry_its_status_and_own_words(
        server: Server, status: int, body: Any, failure: ApiFailure, words: str) -> None:
    server.routes["POST /api/v1/admin/apps/install"] = answer(status, body)
    async with instance_api(server.url, timeout=10) as api:
        await api.login(CREDENTIALS)
        with pytest.raises(InstanceApiError) as caught:
            await api.app_action(AppAction.INSTALL, "signage")
    assert (caught.value.failure, caught.value.status, caught.value.words) == (failure, status, words)
    assert caught.value.call == "POST /api/v1/admin/apps/install"


async def test_long_words_are_bounded(server: Server) -> None:
    server.routes["GET /api/v1/admin/apps"] = answer(500, {"message": "x" * 5000})
    async with instance_api(server.url, timeout=10) as api:
        await api.login(CREDENTIALS)
        with pytest.raises(InstanceApiError) as caught:
            await api.installed()
    assert caught.value.words == "x" * 300


async def test_a_free_request_returns_whatever_status_the_instance_answers(server: Server) -> None:
    server.routes["PUT /api/v1/admin/settings"] = answer(200, {"ok": True})
    async with instance_api(server.url, timeout=10) as api:
        await api.login(CREDENTIALS)
        assert (await api.request("PUT", "/api/v1/admin/settings", {"siteName": "Shop"})).ok
        missing = await api.request("POST", "/api/v1/sites/1/scaffold")
    assert (missing.status, missing.ok, missing.words) == (404, False, "Cannot POST /api/v1/sites/1/scaffold")
    assert json.loads(server.requests[1][3]) == {"siteName": "Shop"}
    assert server.requests[2][3] == b""


# ---- bad JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["<html>not json</html>", {"apps": "forum-core"}, {"data": {}}, [1, 2]],
                         ids=["html", "apps-not-a-list", "no-apps", "a-list"])
async def test_a_list_that_is_not_o4os_json_is_a_bad_answer(server: Server, body: Any) -> None:
    server.routes["GET /api/v1/admin/apps/market"] = answer(200, body)
    async with instance_api(server.url, timeout=10) as api:
        await api.login(CREDENTIALS)
        with pytest.raises(InstanceApiError) as caught:
            await api.market()
    assert (caught.value.failure, caught.value.status) == (ApiFailure.BAD_ANSWER, 200)
    assert caught.value.words == "the answer carried no apps list"


@pytest.mark.parametrize("body", ["{not json", {"success": True, "data": {"message": "cookie only"}},
                                  {"data": {"tokens": {"accessToken": ""}}}],
                         ids=["not-json", "no-token", "empty-token"])
async def test_a_login_answer_without_a_token_is_a_bad_answer(server: Server, body: Any) -> None:
    server.routes["POST /api/v1/auth/login"] = answer(200, body)
    async with instance_api(server.url, timeout=10) as api:
        with pytest.raises(InstanceApiError) as caught:
            await api.login(CREDENTIALS)
    assert caught.value.failure is ApiFailure.BAD_ANSWER
    assert caught.value.words == "the answer carried no data.tokens.accessToken"


# ---- no answer -----------------------------------------------------------------------------------


async def test_an_instance_that_does_not_answer_in_time_is_unavailable(server: Server) -> None:
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        await never.wait()
        return web.json_response({"apps": []})

    server.routes["GET /api/v1/admin/apps"] = hang
    try:
        async with instance_api(server.url, timeout=0.5) as api:
            await api.login(CREDENTIALS)
            with pytest.raises(InstanceApiError) as caught:
                await api.installed()
    finally:
        never.set()  # the server's shutdown waits for its handlers
    assert (caught.value.failure, caught.value.status, caught.value.status_text) == (
        ApiFailure.UNAVAILABLE, None, "000")
    assert caught.value.words == "no answer within 0.5 seconds"


async def test_nothing_listening_is_unavailable() -> None:
    stopped = await Server().start()
    await stopped.stop()
    async with instance_api(stopped.url, timeout=10) as api:
        with pytest.raises(InstanceApiError) as caught:
            await api.login(CREDENTIALS)
    assert (caught.value.failure, caught.value.status) == (ApiFailure.UNAVAILABLE, None)
    assert caught.value.words.startswith("ClientConnectorError")


async def test_the_environments_proxy_is_never_used(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    async with instance_api(server.url, timeout=10) as api:
        await api.login(CREDENTIALS)
    assert len(server.requests) == 1


# ---- redirects -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_an_answer_never_followed_to_another_host(server: Server, status: int) -> None:
    elsewhere = await Server().start()
    try:
        elsewhere.routes["POST /api/v1/auth/login"] = o4o_login

        async def redirect(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": f"{elsewhere.url}{request.path}"})

        server.routes["POST /api/v1/auth/login"] = redirect
        async with instance_api(server.url, timeout=10) as api:
            with pytest.raises(InstanceApiError) as caught:
                await api.login(CREDENTIALS)
        assert (caught.value.failure, caught.value.status) == (ApiFailure.REFUSED, status)
        assert elsewhere.requests == []  # the credentials went nowhere else
    finally:
        await elsewhere.stop()


# ---- redaction by construction ---------------------------------------------------------------------


async def test_no_credential_or_token_reaches_an_error_even_when_the_instance_echoes_them(server: Server) -> None:
    async def echo_login(request: web.Request) -> web.StreamResponse:
        sent = await request.json()
        return web.json_response({"message": f"No user {sent['email']} with password {sent['password']}"},
                                 status=401)

    async def echo_token(request: web.Request) -> web.StreamResponse:
        return web.json_response({"message": f"token {request.headers['Authorization']} expired"}, status=500)

    async with instance_api(server.url, timeout=10) as api:
        server.routes["POST /api/v1/auth/login"] = echo_login
        with pytest.raises(InstanceApiError) as refused:
            await api.login(CREDENTIALS)
        server.routes["POST /api/v1/auth/login"] = o4o_login
        await api.login(CREDENTIALS)
        server.routes["GET /api/v1/admin/apps"] = echo_token
        with pytest.raises(InstanceApiError) as expired:
            await api.installed()
        server.routes["PUT /api/v1/echo"] = echo_token
        echoed = await api.request("PUT", "/api/v1/echo", {"x": 1})

    assert refused.value.words == "No user [redacted] with password [redacted]"
    assert expired.value.words == "token Bearer [redacted] expired"
    for error in (refused.value, expired.value):
        assert_no_secret(str(error), repr(error), error.words, repr(error.args))
    assert_no_secret(echoed.words, repr(echoed), repr(CREDENTIALS))


def test_field_at_reads_a_dotted_field() -> None:
    document = {"database": {"status": "healthy"}, "uptime": 3}
    assert field_at(document, "database.status") == (True, "healthy")
    assert field_at(document, "database.missing") == (False, None)
    assert field_at(document, "uptime.x") == (False, None)
    assert field_at(None, "database") == (False, None)
