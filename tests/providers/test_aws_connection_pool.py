"""Every thread of the shared AWS pool can keep its HTTP connection: boto3's own pool is as large.

botocore keeps 10 connections per client by default. With 500 pipelines (``O4O_MAX_PIPELINES``, and as many
threads), every call beyond the tenth at once opened a connection of its own and threw it away afterwards
(a new TCP and TLS handshake for the next call, and urllib3's "Connection pool is full" warning).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from o4o_operator.providers import aws
from o4o_operator.providers.aws import ClientSettings, make_boto3_client


@pytest.fixture
def pool_size() -> Iterator[None]:
    yield
    aws.configure_pool(aws.DEFAULT_POOL_SIZE)


@pytest.mark.usefixtures("pool_size")
def test_clients_keep_as_many_connections_as_the_pool_has_threads() -> None:
    settings = ClientSettings(endpoint_url="http://127.0.0.1:9")
    aws.configure_pool(500)
    assert make_boto3_client("lightsail", "us-east-1", settings).meta.config.max_pool_connections >= 500


@pytest.mark.usefixtures("pool_size")
def test_a_client_made_before_the_pool_grew_is_not_reused() -> None:
    settings = ClientSettings(endpoint_url="http://127.0.0.1:10")
    small = make_boto3_client("lightsail", "us-east-1", settings)
    aws.configure_pool(64)
    larger = make_boto3_client("lightsail", "us-east-1", settings)
    assert larger.meta.config.max_pool_connections >= 64
    assert small.meta.config.max_pool_connections >= aws.DEFAULT_POOL_SIZE
