"""SshSession.tunnel over a real sshd (direct-tcpip): the shipped connector forwards to 127.0.0.1:<port> on
the host, the test-peer connector to the sandbox's stand-in API (O4O_SANDBOX_API), and the tunnel closes
with its context."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from o4o_operator.providers.ssh import SshConnector, SshSession
from o4o_operator.testing import SandboxHost


@pytest.fixture
async def loopback_api() -> AsyncIterator[int]:
    """An HTTP server on the host's (this machine's) 127.0.0.1, as the instance's API listens on a server."""
    async def hello(request: web.Request) -> web.StreamResponse:
        return web.json_response({"path": request.path, "via": request.remote})
    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield runner.addresses[0][1]
    await runner.cleanup()


async def get(url: str) -> tuple[int, object]:
    async with aiohttp.ClientSession(trust_env=False) as http, http.get(url) as response:
        return response.status, await response.json(content_type=None)


async def test_the_shipped_connector_tunnels_to_the_hosts_loopback_port(sandbox: SandboxHost,
                                                                        loopback_api: int) -> None:
    connector = SshConnector(use_sudo=False)
    try:
        session = await connector.connect(sandbox.address, sandbox.port, sandbox.user, sandbox.private_key_pem,
                                          sandbox.host_key_fingerprint, timeout=30)
        async with session.tunnel(loopback_api) as base_url:
            assert base_url.startswith("http://127.0.0.1:")
            assert not base_url.endswith(f":{loopback_api}")  # a local port of its own
            status, body = await get(f"{base_url}/api/health")
        assert (status, body) == (200, {"path": "/api/health", "via": "127.0.0.1"})
        with pytest.raises(aiohttp.ClientConnectionError):  # closed with its context
            await asyncio.wait_for(get(f"{base_url}/api/health"), timeout=10)
    finally:
        await connector.close_all()


async def test_the_test_peer_connector_tunnels_to_the_sandboxs_stand_in_whatever_the_port(
        sandbox: SandboxHost, session: SshSession) -> None:
    async with session.tunnel(3001) as base_url:
        status, body = await get(f"{base_url}/api/v1/admin/apps/market")
    assert (status, body) == (401, {"success": False, "error": "Authentication required"})
