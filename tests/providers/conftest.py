"""Fixtures for provider tests: a local Lightsail per test, clients pointed at it, an SSH key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from o4o_operator.providers.aws import ClientSettings, StaticCredentials
from o4o_operator.providers.lightsail import LightsailCloud
from o4o_operator.testing import LocalLightsail

REGION = "eu-west-2"
TEST_ACCESS_KEY_ID = "AKIAO4OLOCALTESTKEY1"
TEST_SECRET_ACCESS_KEY = "local-secret-access-key-never-shown"


@pytest.fixture
def local_lightsail() -> Iterator[LocalLightsail]:
    """A fresh local Lightsail; any answer it gives outside the model fails the test."""
    with LocalLightsail(pending_polls=1, seed=20240601) as local:
        yield local
        assert local.protocol_errors == []


@pytest.fixture
def aws_settings(local_lightsail: LocalLightsail) -> ClientSettings:
    return ClientSettings(
        endpoint_url=local_lightsail.endpoint_url,
        credentials=StaticCredentials(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY),
        max_attempts=3, connect_timeout=5, read_timeout=15,
    )


@pytest.fixture
def cloud(aws_settings: ClientSettings) -> LightsailCloud:
    return LightsailCloud(REGION, aws_settings, poll_interval=0)


@pytest.fixture
def raw_lightsail(local_lightsail: LocalLightsail) -> Any:
    """A plain boto3 client on the local endpoint, for arranging the world behind the provider's back."""
    return boto3.client("lightsail", region_name=REGION, endpoint_url=local_lightsail.endpoint_url,
                        aws_access_key_id=TEST_ACCESS_KEY_ID, aws_secret_access_key=TEST_SECRET_ACCESS_KEY)


@pytest.fixture(scope="session")
def public_key_openssh() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} o4o-test"
