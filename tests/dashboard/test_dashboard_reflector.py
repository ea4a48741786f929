"""The list+watch loop against a scripted API server: bookmarks, 410 Gone, lost connections."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from dashboard_fleet_samples import fleet_body, fleet_spec
from dashboard_samples import body, spec, status_ready

from o4o_dashboard.cache import InstanceCache
from o4o_dashboard.credentials import ApiCredentials
from o4o_dashboard.kubeapi import KubeApi, watch_lines
from o4o_dashboard.metrics import DashboardMetrics
from o4o_dashboard.reflector import Backoff, Reflector, fleets_resource, instances_resource

FAST = Backoff(initial=0.01, maximum=0.05)
PATH = "/apis/deploy.o4o.io/v1alpha1/namespaces/shop/deploymentinstances"


def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


def with_version(obj: dict[str, Any], version: str) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}}


class ScriptedApi:
    """Lists ``items``. An open watch waits for the next batch in ``streams``, sends it and ends;
    a watch opened while ``next_status`` is set is refused with that HTTP status instead."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = [body("a", "shop", spec("a.example.com"))]
        self.list_version = "10"
        self.streams: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        self.next_status: int | None = None
        self.requests: list[tuple[str, str]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            self.requests.append(("list", ""))
            listing = {"items": self.items, "metadata": {"resourceVersion": self.list_version}}
            return web.json_response(listing)
        assert request.query["allowWatchBookmarks"] == "true"
        self.requests.append(("watch", request.query["resourceVersion"]))
        if self.next_status is not None:
            status, self.next_status = self.next_status, None
            refusal = {"kind": "Status", "code": status, "message": "too old resource version"}
            return web.json_response(refusal, status=status)
        response = web.StreamResponse()
        await response.prepare(request)
        for item in await self.streams.get():  # an idle watch until the test sends something
            await response.write(json.dumps(item).encode() + b"\n")
        return response

    def end_stream_with(self, *events: dict[str, Any]) -> None:
        self.streams.put_nowait(list(events))


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedApi, str]]:
    api = ScriptedApi()
    app = web.Application()
    app.router.add_get(PATH, api.handle)
    server = TestServer(app)
    await server.start_server()
    yield api, str(server.make_url("")).rstrip("/")
    for _ in range(8):  # release idle watches so the server can close
        api.end_stream_with()
    await server.close()


@pytest.fixture
async def running(scripted: tuple[ScriptedApi, str]) -> AsyncIterator[tuple[ScriptedApi, Reflector,
                                                                          InstanceCache, DashboardMetrics]]:
    api, server = scripted
    metrics = DashboardMetrics()
    cache = InstanceCache(metrics)
    client = KubeApi(ApiCredentials(server=server, ssl_context=None, tokens=None), metrics)
    reflector = Reflector(client, instances_resource("shop"), cache.instance_store, cache, metrics,
                          backoff=FAST)
    task = asyncio.create_task(reflector.run())
    yield api, reflector, cache, metrics
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.close()


async def settle(reflector: Reflector, **expected: int) -> None:
    await asyncio.wait_for(reflector.wait_until(
        lambda r: all(getattr(r, name) >= value for name, value in expected.items())), 10)


async def test_lists_then_follows_changes_and_bookmarks(running: Any) -> None:
    api, reflector, cache, _ = running
    await settle(reflector, relists=1, watches_opened=1)
    assert [row.name for row in cache.rows()] == ["a"] and not cache.stale
    ready = with_version({**body("a", "shop", spec("a.example.com")), "status": status_ready()}, "11")
    api.end_stream_with(event("MODIFIED", ready),
                        event("ADDED", with_version(body("b", "shop", spec("b.example.com")), "12")),
                        event("BOOKMARK", {"metadata": {"resourceVersion": "20"}}))
    await settle(reflector, watches_opened=2)  # the stream ended; the next watch resumes
    assert api.requests == [("list", ""), ("watch", "10"), ("watch", "20")]
    assert sorted((row.name, row.phase) for row in cache.rows()) == [("a", "Ready"), ("b", "Pending")]
    assert reflector.relists == 1


async def test_an_expired_event_in_the_stream_means_list_again(running: Any) -> None:
    api, reflector, cache, metrics = running
    await settle(reflector, watches_opened=1)
    api.items = [body("c", "shop", spec("c.example.com"))]
    api.list_version = "30"
    api.end_stream_with(event("ERROR", {"kind": "Status", "code": 410, "reason": "Expired"}))
    await settle(reflector, relists=2, watches_opened=2)
    assert [row.name for row in cache.rows()] == ["c"]  # "a" vanished while we were away
    assert api.requests[-2:] == [("list", ""), ("watch", "30")]
    assert metrics.registry.get_sample_value(
        "o4o_dashboard_watch_restarts_total", {"resource": "deploymentinstances", "reason": "expired"}) == 1


async def test_http_410_on_the_watch_request_means_list_again(running: Any) -> None:
    api, reflector, _, _ = running
    await settle(reflector, watches_opened=1)
    api.next_status = 410
    api.end_stream_with()  # the server ends the watch; the next one is refused with 410
    await settle(reflector, relists=2, watches_opened=2)
    assert [kind for kind, _ in api.requests] == ["list", "watch", "watch", "list", "watch"]


async def test_other_errors_back_off_and_resume_from_the_last_version(running: Any) -> None:
    api, reflector, cache, metrics = running
    await settle(reflector, watches_opened=1)
    api.next_status = 500
    api.end_stream_with()
    await settle(reflector, watches_opened=2)
    assert api.requests == [("list", ""), ("watch", "10"), ("watch", "10"), ("watch", "10")]
    assert not cache.stale  # reachable again once the second watch opened
    assert metrics.registry.get_sample_value(
        "o4o_dashboard_watch_restarts_total", {"resource": "deploymentinstances", "reason": "error"}) == 1


async def test_restart_watch_resumes_from_the_requested_version(running: Any) -> None:
    api, reflector, _, metrics = running
    await settle(reflector, watches_opened=1)
    reflector.restart_watch("1")
    await settle(reflector, watches_opened=2)
    assert api.requests[-1] == ("watch", "1")
    assert metrics.registry.get_sample_value(
        "o4o_dashboard_watch_restarts_total", {"resource": "deploymentinstances", "reason": "requested"}) == 1


async def test_an_unreachable_server_marks_the_cache_stale() -> None:
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cache = InstanceCache()
    client = KubeApi(ApiCredentials(server=f"http://127.0.0.1:{port}", ssl_context=None, tokens=None))
    reflector = Reflector(client, instances_resource(None), cache.instance_store, cache, backoff=FAST)
    task = asyncio.create_task(reflector.run())
    try:
        await asyncio.wait_for(cache.wait_until(lambda c: c.stale), 10)
        await asyncio.wait_for(reflector.wait_until(lambda r: client.calls >= 3), 10)  # it keeps trying
        assert not reflector.synced.is_set()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.close()


async def test_fleets_not_served_yet_are_none_not_stale() -> None:
    """A cluster without the DeploymentFleet CRD: no fleets, no stale banner, and they appear once served."""
    served, release = asyncio.Event(), asyncio.Event()
    requests: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        requests.append(request.query.get("watch", "list"))
        if not served.is_set():
            return web.json_response({"kind": "Status", "code": 404, "message": "not found"}, status=404)
        if request.query.get("watch") == "true":
            response = web.StreamResponse()
            await response.prepare(request)
            await release.wait()
            return response
        return web.json_response({"items": [fleet_body("shop", fleet_spec(), None)],
                                  "metadata": {"resourceVersion": "5"}})

    app = web.Application()
    app.router.add_get("/apis/deploy.o4o.io/v1alpha1/namespaces/shop/deploymentfleets", handle)
    server = TestServer(app)
    await server.start_server()
    cache = InstanceCache()
    client = KubeApi(ApiCredentials(server=str(server.make_url("")).rstrip("/"), ssl_context=None, tokens=None))
    reflector = Reflector(client, fleets_resource("shop"), cache.fleet_store, cache, backoff=FAST)
    task = asyncio.create_task(reflector.run())
    try:
        await asyncio.wait_for(reflector.wait_until(lambda r: r.synced.is_set() and requests.count("list") >= 2),
                               10)
        assert reflector.not_served and not cache.stale and cache.fleet_rows() == []
        assert "true" not in requests  # nothing to watch
        served.set()
        await asyncio.wait_for(cache.wait_until(lambda c: len(c.fleet_rows()) == 1), 10)
        await settle(reflector, watches_opened=1)
        assert not reflector.not_served and not cache.stale
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        await client.close()
        await server.close()


def feed(chunks: list[bytes]) -> aiohttp.StreamReader:
    reader = aiohttp.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    return reader


async def test_watch_lines_rejoin_split_chunks_and_allow_long_lines() -> None:
    long_line = b'{"x":"' + b"y" * 300_000 + b'"}'
    chunks = [b'{"a":1}\n{"b"', b":2}\n\n", long_line[:100_000], long_line[100_000:] + b"\n", b'{"tail":3}']
    lines = [line async for line in watch_lines(feed(chunks))]
    assert lines == [b'{"a":1}', b'{"b":2}', long_line, b'{"tail":3}']
