"""The health fetch (InstanceApi.health) against a real local HTTP server: whatever status and body the
health path answers, bytes as sent and bounded; a redirect is an answer, never followed; an unanswered call
(timeout, nothing listening, a closed connection) is an answer without a status, with what happened."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from test_instance_api import Server, answer

from o4o_operator.pipeline.health import HealthRule, HealthVerdict, judge_health
from o4o_operator.providers.instance_api import BODY_LIMIT, HealthAnswer, instance_api

HEALTHY = {"status": "alive", "database": {"status": "healthy"}}


async def _fetch(server: Server, *, timeout: float = 10) -> HealthAnswer:  # noqa: ASYNC109 - per call
    async with instance_api(server.url, timeout=timeout) as api:
        return await api.health("/api/health")


async def test_a_healthy_body_is_fetched_and_judged_healthy() -> None:
    server = await Server().start()
    try:
        server.routes["GET /api/health"] = answer(200, HEALTHY)
        fetched = await _fetch(server)
    finally:
        await server.stop()
    assert (fetched.status, json.loads(fetched.body)) == (200, HEALTHY)
    assert judge_health(HealthRule(), fetched.status, fetched.body) == HealthVerdict(True, "database.status=healthy")
    method, path, headers, _ = server.requests[0]
    assert (method, path, "Authorization" in headers) == ("GET", "/api/health", False)


@pytest.mark.parametrize(("status", "body", "said"), [
    (200, "<html>maintenance</html>", "the body is not JSON, expected database.status=healthy"),
    (200, {"status": "alive"}, "database.status=(absent), expected healthy"),
    (200, {"database": {"status": "not_initialized"}}, "database.status=not_initialized, expected healthy"),
    (500, HEALTHY, ""),
    (503, "Service Unavailable", ""),
])
async def test_what_the_instance_answers_is_judged_unhealthy(status: int, body: object, said: str) -> None:
    server = await Server().start()
    try:
        server.routes["GET /api/health"] = answer(status, body)
        fetched = await _fetch(server)
    finally:
        await server.stop()
    assert fetched.status == status
    assert judge_health(HealthRule(), fetched.status, fetched.body) == HealthVerdict(False, said)


async def test_a_huge_body_is_read_bounded() -> None:
    server = await Server().start()
    try:
        server.routes["GET /api/health"] = answer(200, "x" * (BODY_LIMIT + 4096))
        fetched = await _fetch(server)
    finally:
        await server.stop()
    assert (fetched.status, len(fetched.body)) == (200, BODY_LIMIT)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_an_answer_never_followed(status: int) -> None:
    server, elsewhere = await Server().start(), await Server().start()
    try:
        elsewhere.routes["GET /api/health"] = answer(200, HEALTHY)

        async def redirect(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": f"{elsewhere.url}/api/health"})

        server.routes["GET /api/health"] = redirect
        fetched = await _fetch(server)
    finally:
        await server.stop()
        await elsewhere.stop()
    assert fetched.status == status
    assert elsewhere.requests == []
    assert not judge_health(HealthRule(), fetched.status, fetched.body).healthy


async def test_no_answer_in_time_is_an_answer_without_a_status() -> None:
    server = await Server().start()
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        await never.wait()
        return web.json_response(HEALTHY)

    server.routes["GET /api/health"] = hang
    try:
        fetched = await _fetch(server, timeout=0.5)
    finally:
        never.set()
        await server.stop()
    assert (fetched.status, fetched.status_text, fetched.words) == (None, "000", "no answer within 0.5 seconds")
    assert not judge_health(HealthRule(), fetched.status, fetched.body).healthy


async def test_nothing_listening_is_an_answer_without_a_status() -> None:
    stopped = await Server().start()
    await stopped.stop()
    fetched = await _fetch(stopped)
    assert (fetched.status, fetched.body) == (None, b"")
    assert fetched.words.startswith("ClientConnectorError")
