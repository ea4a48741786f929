"""Fixtures for the dashboard tests: a web client over a cache filled with sample instances."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from dashboard_samples import state_bodies

from o4o_dashboard.cache import InstanceCache
from o4o_dashboard.metrics import DashboardMetrics
from o4o_dashboard.web import create_app

FIXED_NOW = datetime.datetime(2025, 3, 2, 10, 0, tzinfo=datetime.UTC)
Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
def cache() -> InstanceCache:
    cache = InstanceCache(DashboardMetrics())
    cache.replace_instances(state_bodies())
    return cache


@pytest.fixture
async def make_client(cache: InstanceCache) -> AsyncIterator[ClientFactory]:
    """Start a web client over ``cache``; keyword arguments go to :func:`create_app`."""
    clients: list[Client] = []

    async def start(**options: Any) -> Client:
        client: Client = TestClient(TestServer(create_app(cache, DashboardMetrics(), clock=lambda: FIXED_NOW,
                                                          **options)))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: ClientFactory) -> Client:
    return await make_client()
