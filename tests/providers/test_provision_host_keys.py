"""Provisioning on the local Lightsail pins what GetInstanceAccessDetails reports, and waits until it does.

Nothing is trusted on first use on Lightsail: while the instance reports no host keys the provision stage
fails transiently (HostKeyUnavailable), and once it reports several, every one of them is pinned.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import asyncssh
import pytest

from o4o_operator.errors import InvalidSpecError, TransientError
from o4o_operator.kubeapi import SecretData
from o4o_operator.models import DeploymentInstanceSpec, DeploymentInstanceStatus, HostKeySource
from o4o_operator.pipeline.ambient_grants import AmbientGrants
from o4o_operator.pipeline.stages import StageName
from o4o_operator.providers.aws import ClientSettings
from o4o_operator.providers.lightsail import LightsailCloud
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.settings import OperatorSettings
from o4o_operator.testing import LocalLightsail
from o4o_operator.testing.lightsail_catalog import host_key_entry
from o4o_operator.testing.stage_driver import StageDriver

REGION = "eu-west-2"


class _Secrets:
    def __init__(self, private_key: str) -> None:
        self.private_key = private_key

    async def read_secret(self, namespace: str, name: str, field: str) -> SecretData:
        return SecretData(name=name, resource_version="1", data={"ssh-privatekey": self.private_key})


class _HostKeys:
    """What the local Lightsail reports: nothing until ``publish``, then one key per algorithm."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []

    def __call__(self, instance_name: str) -> list[dict[str, Any]]:
        return list(self.keys)

    def publish(self) -> list[str]:
        algorithms = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256")
        blobs = [asyncssh.generate_private_key(algorithm).public_data for algorithm in algorithms]
        self.keys = [host_key_entry(algorithm, blob) for algorithm, blob in zip(algorithms, blobs, strict=True)]
        return ["SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=") for blob in blobs]


def _context(settings: ClientSettings, ssh: dict[str, Any] | None = None,
             status: DeploymentInstanceStatus | None = None) -> StageDriver:
    spec = DeploymentInstanceSpec.model_validate({
        "domain": "shop.example.com", "provider": {"lightsail": {"region": REGION}},
        "ssh": {"privateKeySecretRef": {"name": "ssh", "key": "ssh-privatekey"}, **(ssh or {})},
        "source": {"repository": "https://example.com/o4o.git"}, "tls": {"email": "ops@example.com"}})
    key = asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()
    # The instance brings no credentials: its namespace may use the operator's (here: the test's) identity.
    granted = OperatorSettings(ambient_grants=AmbientGrants.parse("team="))
    runtime = Runtime(settings=granted, kube=_Secrets(key), connector=None,  # type: ignore[arg-type]
                      pipelines=None, cloud_factory=lambda region, _, __: LightsailCloud(region, settings,
                                                                                      poll_interval=0))
    body = {"metadata": {"namespace": "team", "name": "shop", "uid": "uid-shop", "generation": 1}}

    return StageDriver(runtime, body, spec, status)


@pytest.fixture
def host_keys() -> _HostKeys:
    return _HostKeys()


@pytest.fixture
def lightsail(host_keys: _HostKeys) -> Any:
    with LocalLightsail(pending_polls=1, seed=7, host_keys=host_keys) as local:
        yield local
        assert local.protocol_errors == []


@pytest.fixture
def settings(lightsail: LocalLightsail) -> ClientSettings:
    from o4o_operator.providers.aws import StaticCredentials
    return ClientSettings(endpoint_url=lightsail.endpoint_url, credentials=StaticCredentials("AKIALOCAL", "local"),
                          max_attempts=3, connect_timeout=5, read_timeout=15)


async def test_provision_waits_for_reported_host_keys_then_pins_all_of_them(
        settings: ClientSettings, host_keys: _HostKeys) -> None:
    context = _context(settings)
    with pytest.raises(TransientError) as caught:
        await context.run(StageName.PROVISION)
    assert caught.value.reason == "HostKeyUnavailable"
    assert context.status.server.ip_address  # what provisioning learnt is kept for the retry
    assert context.status.server.host_key_fingerprints == ()
    with pytest.raises(InvalidSpecError, match="HostKeyNotPinned"):
        context.host_key_pins()  # nothing would be trusted on first use either

    reported = host_keys.publish()
    retry = _context(settings, status=context.status)
    assert "server" in await retry.run(StageName.PROVISION)
    server = retry.status.server
    assert set(server.host_key_fingerprints) == set(reported)
    assert server.host_key_fingerprints[0] == reported[1]  # ed25519 preferred for display
    assert server.host_key_fingerprint == reported[1]
    assert server.host_key_source is HostKeySource.PROVIDER
    assert set(retry.host_key_pins()) == set(reported)


async def test_a_pin_in_the_spec_needs_no_reported_host_key(settings: ClientSettings) -> None:
    pin = "SHA256:" + "P" * 43
    context = _context(settings, ssh={"hostKeyFingerprint": pin})
    await context.run(StageName.PROVISION)
    assert context.status.server.host_key_fingerprints == (pin,)
    assert context.status.server.host_key_source is HostKeySource.SPEC
    assert context.host_key_pins() == (pin,)


async def test_an_unreadable_private_key_stalls_provisioning_naming_the_field(settings: ClientSettings) -> None:
    context = _context(settings)
    context.instance.runtime.kube = _Secrets("-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n")  # type: ignore[assignment]
    with pytest.raises(InvalidSpecError) as caught:
        await context.run(StageName.PROVISION)
    assert caught.value.reason == "InvalidSshKey"
    assert caught.value.field == "spec.ssh.privateKeySecretRef"
    assert "garbage" not in str(caught.value)
