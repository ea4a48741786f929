"""Instances sharing a host, and what they may trust: InstanceContext.session() against a real sshd.

Two instances (two Secrets, two keys) name the same sandbox host; an existing host needs a pinned
host key or an explicit ``spec.ssh.trustOnFirstUse``; SSH failures that retrying cannot fix stall
naming the spec field to change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncssh
import pytest

from o4o_operator.errors import InvalidSpecError
from o4o_operator.kubeapi import SecretData
from o4o_operator.models import DeploymentInstanceSpec, DeploymentInstanceStatus, HostKeySource
from o4o_operator.pipeline.stages import StageName
from o4o_operator.providers.ssh import SshConnector
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.settings import OperatorSettings
from o4o_operator.testing import SandboxHost
from o4o_operator.testing.stage_driver import StageDriver


class FakeKube:
    """The two calls a InstanceContext makes: Secrets by name, and Events (recorded)."""

    def __init__(self, secrets: dict[str, dict[str, str]]) -> None:
        self.secrets = secrets
        self.events: list[tuple[str, str, bool]] = []

    async def read_secret(self, namespace: str, name: str, field: str) -> SecretData:
        if name not in self.secrets:
            raise InvalidSpecError(field, f"Secret {name!r} not found", reason="SecretNotFound")
        return SecretData(name=name, resource_version="1", data=self.secrets[name])

    async def post_event(self, instance: Any, reason: str, message: str, *, warning: bool = False) -> None:
        self.events.append((reason, message, warning))


@pytest.fixture
async def connector() -> AsyncIterator[SshConnector]:
    connector = SshConnector(max_sessions=4)
    yield connector
    await connector.close_all()


def _context(kube: FakeKube, connector: SshConnector, sandbox: SandboxHost, name: str, secret: str, *,
             ssh: dict[str, Any] | None = None,
             status: DeploymentInstanceStatus | None = None) -> StageDriver:
    spec = DeploymentInstanceSpec.model_validate({
        "domain": f"{name}.example.com",
        "provider": {"existing": {"host": sandbox.address, "port": sandbox.port}},
        "ssh": {"user": sandbox.user, "privateKeySecretRef": {"name": secret, "key": "ssh-privatekey"},
                **(ssh or {})},
        "source": {"repository": "https://example.com/o4o.git"},
        "tls": {"email": "ops@example.com"},
    })
    runtime = Runtime(settings=OperatorSettings(ssh_connect_timeout=3), kube=kube,  # type: ignore[arg-type]
                      connector=connector, pipelines=None)
    body = {"metadata": {"namespace": "team", "name": name, "uid": f"uid-{name}", "generation": 1}}

    return StageDriver(runtime, body, spec, status)


def _new_key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()


async def test_a_second_instance_with_an_unauthorised_key_fails_even_while_the_first_is_connected(
        sandbox: SandboxHost, connector: SshConnector) -> None:
    kube = FakeKube({"ssh-a": {"ssh-privatekey": sandbox.private_key_pem},
                     "ssh-b": {"ssh-privatekey": _new_key()}})
    pin = {"hostKeyFingerprint": sandbox.host_key_fingerprint}
    first = await _context(kube, connector, sandbox, "a", "ssh-a", ssh=pin).instance.session()
    await first.run("true", timeout=30, log=lambda line: None)

    with pytest.raises(InvalidSpecError) as caught:
        await _context(kube, connector, sandbox, "b", "ssh-b", ssh=pin).instance.session()
    assert caught.value.reason == "SshAuthenticationFailed"
    assert caught.value.field == "spec.ssh.privateKeySecretRef"
    assert not caught.value.transient
    await first.run("true", timeout=30, log=lambda line: None)
    assert sandbox.sshd_log().count("Accepted publickey") == 1


async def test_an_unreadable_private_key_stalls_naming_the_secret_field(
        sandbox: SandboxHost, connector: SshConnector) -> None:
    kube = FakeKube({"ssh-a": {"ssh-privatekey": "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n"}})
    context = _context(kube, connector, sandbox, "a", "ssh-a", ssh={"hostKeyFingerprint": sandbox.host_key_fingerprint})
    for attempt in (context.instance.session, context.instance.public_key):
        with pytest.raises(InvalidSpecError) as caught:
            await attempt()
        assert caught.value.reason == "InvalidSshKey"
        assert caught.value.field == "spec.ssh.privateKeySecretRef"
        assert "not a key" not in str(caught.value)
    assert "Accepted publickey" not in sandbox.sshd_log()


async def test_an_existing_host_without_a_pin_stalls_naming_the_field_and_never_connects(
        sandbox: SandboxHost, connector: SshConnector) -> None:
    kube = FakeKube({"ssh-a": {"ssh-privatekey": sandbox.private_key_pem}})
    context = _context(kube, connector, sandbox, "a", "ssh-a")
    for attempt in (lambda: context.run(StageName.PROVISION), context.instance.session):
        with pytest.raises(InvalidSpecError) as caught:
            await attempt()
        assert caught.value.reason == "HostKeyNotPinned"
        assert caught.value.field == "spec.ssh.hostKeyFingerprint"
        assert "spec.ssh.trustOnFirstUse" in caught.value.message
    assert sandbox.sshd_log().count("Accepted publickey") == 0
    assert sandbox.commands() == []


async def test_trust_on_first_use_is_explicit_visible_and_then_pinned(
        sandbox: SandboxHost, connector: SshConnector) -> None:
    kube = FakeKube({"ssh-a": {"ssh-privatekey": sandbox.private_key_pem}})
    context = _context(kube, connector, sandbox, "a", "ssh-a", ssh={"trustOnFirstUse": True})
    assert "trusted on first use" in await context.run(StageName.PROVISION)
    await context.instance.session()
    server = context.status.server
    assert server.host_key_source is HostKeySource.TRUSTED_ON_FIRST_USE
    assert server.host_key_fingerprint == sandbox.host_key_fingerprint
    assert server.host_key_fingerprints == (sandbox.host_key_fingerprint,)
    assert server.to_body()["hostKeySource"] == "TrustedOnFirstUse"
    [(reason, message, warning)] = kube.events
    assert reason == "HostKeyTrustedOnFirstUse" and warning
    assert sandbox.host_key_fingerprint in message
    logged = context.instance.log.full_text.splitlines()
    assert any("trusted" in line.lower() and sandbox.host_key_fingerprint in line for line in logged)

    # The next pass pins what was trusted: a provision re-run keeps it, no second Event.
    later = _context(kube, connector, sandbox, "a", "ssh-a", ssh={"trustOnFirstUse": True}, status=context.status)
    await later.run(StageName.PROVISION)
    assert later.host_key_pins() == (sandbox.host_key_fingerprint,)
    await later.instance.session()
    assert len(kube.events) == 1


async def test_a_pinned_existing_host_records_its_pin_in_status(
        sandbox: SandboxHost, connector: SshConnector) -> None:
    kube = FakeKube({"ssh-a": {"ssh-privatekey": sandbox.private_key_pem}})
    context = _context(kube, connector, sandbox, "a", "ssh-a",
                       ssh={"hostKeyFingerprint": sandbox.host_key_fingerprint + "="})
    await context.run(StageName.PROVISION)
    assert context.status.server.host_key_source is HostKeySource.SPEC
    assert context.status.server.host_key_fingerprints == (sandbox.host_key_fingerprint,)
    await context.instance.session()
    assert kube.events == []
