"""A call waiting for one of the client's connections is not timed out for the wait.

The operator's Kubernetes client keeps a bounded pool of connections. With hundreds of instances at once
(bench P1 at 500), calls queue for a connection; the call's timeout used to count that queueing too, so a
busy pool failed calls the API server never saw ("Kubernetes API unreachable", a failed stage and its
retry). The bound is on the API server's silence, not on the queue.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestServer

from o4o_operator.errors import TransientError
from o4o_operator.kubeapi_transport import Credentials, KubeTransport


async def _slow_server(seconds: float) -> TestServer:
    async def answer(request: web.Request) -> web.Response:
        await asyncio.sleep(seconds)
        return web.json_response({"kind": "Status", "path": request.path})

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_calls_queued_behind_a_busy_connection_wait_their_turn() -> None:
    server = await _slow_server(0.3)
    transport = KubeTransport(Credentials(server=str(server.make_url(""))), connections=1, read_timeout=1.0,
                              attempts=1)
    try:
        answers = await asyncio.gather(*(transport.request("GET", f"/api/v1/x{index}") for index in range(6)))
    finally:
        await transport.close()
        await server.close()
    assert [answer["path"] for answer in answers] == [f"/api/v1/x{index}" for index in range(6)]


async def test_a_silent_api_server_still_times_out() -> None:
    server = await _slow_server(2.0)
    transport = KubeTransport(Credentials(server=str(server.make_url(""))), connections=1, read_timeout=0.3,
                              attempts=1)
    try:
        try:
            await transport.request("GET", "/api/v1/namespaces")
        except TransientError as error:
            assert error.reason == "ApiUnavailable"
        else:
            raise AssertionError("a server that never answers must time out")
    finally:
        await transport.close()
        await server.close()
