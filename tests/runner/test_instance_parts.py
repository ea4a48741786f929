"""The parts InstanceContext is made of (issue 19), each with its one job: Secrets read once per pass and
redacted, client settings made the one way the stages and teardown share, Route 53 at its own endpoint, the
host-key policy as a pure function. Fakes only."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import pytest
from stage_fakes import FINGERPRINT, FakeKube, RecordingConnector, RecordingSession, make_context, make_runtime
from stage_fakes import spec_body as base_spec
from stage_fakes import static_resolver as resolver

from o4o_operator.errors import InvalidSpecError
from o4o_operator.kubeapi import SecretData
from o4o_operator.models import DeploymentInstanceSpec, DeploymentInstanceStatus, DnsProviderKind
from o4o_operator.models_inventory import CloudAccess
from o4o_operator.providers.aws import ClientSettings, StaticCredentials
from o4o_operator.redaction import MASK
from o4o_operator.runner import host_keys
from o4o_operator.runner.inventory import client_settings_for
from o4o_operator.runner.settings import OperatorSettings

SPEC = base_spec(provider={"lightsail": {"region": "eu-west-1", "credentialsSecretRef": {
    "name": "aws", "accessKeyIdKey": "id", "secretAccessKeyKey": "secret"}}},
    ssh={"privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}},
    dns={"provider": "route53", "zone": "example.com"})


class CountingKube(FakeKube):
    def __init__(self, secrets: dict[str, dict[str, str]]) -> None:
        super().__init__(secrets)
        self.reads: list[str] = []

    async def read_secret(self, namespace: str, name: str, field: str) -> SecretData:
        self.reads.append(name)
        return await super().read_secret(namespace, name, field)


def world(secrets: dict[str, dict[str, str]]) -> tuple[CountingKube, Any]:
    kube = CountingKube(secrets)
    runtime = make_runtime(kube, RecordingConnector(RecordingSession({})), resolver({}))
    runtime.settings = dataclasses.replace(OperatorSettings(), route53_endpoint_url="http://route53.test")
    made: list[tuple[DnsProviderKind, ClientSettings]] = []
    runtime.dns_factory = lambda kind, settings: made.append((kind, settings)) or object()
    return kube, (runtime, made)


async def test_the_stages_client_settings_are_teardowns_with_the_instances_in_flight_calls() -> None:
    kube, (runtime, _) = world({"aws": {"id": "AKIDEXAMPLE", "secret": "aws-secret-value"}})
    instance = make_context(runtime, SPEC, DeploymentInstanceStatus()).instance

    settings = await instance.client_settings()
    again = await instance.client_settings()

    assert settings.credentials == StaticCredentials("AKIDEXAMPLE", "aws-secret-value")
    assert settings.in_flight is runtime.in_flight_for("uid-1")
    recorded = await client_settings_for(functools.partial(kube.read_secret, "team"), CloudAccess(
        region="eu-west-1", credentials_secret="aws", access_key_id_key="id", secret_access_key_key="secret"),
        runtime.settings)
    assert dataclasses.replace(settings, in_flight=None) == recorded
    assert kube.reads.count("aws") == 2, "once for the pass, once for the recorded item"
    assert again == settings
    assert instance.log.redactor("key aws-secret-value") == f"key {MASK}"


async def test_a_missing_key_stalls_naming_the_spec_field() -> None:
    _, (runtime, _) = world({"aws": {"id": "AKIDEXAMPLE"}})
    instance = make_context(runtime, SPEC, DeploymentInstanceStatus()).instance

    with pytest.raises(InvalidSpecError) as caught:
        await instance.client_settings()

    assert (caught.value.field, caught.value.reason) == ("spec.provider.lightsail.credentialsSecretRef",
                                                         "SecretKeyMissing")


async def test_route53_is_reached_at_its_own_endpoint() -> None:
    _, (runtime, made) = world({"aws": {"id": "AKIDEXAMPLE", "secret": "aws-secret-value"}})
    instance = make_context(runtime, SPEC, DeploymentInstanceStatus()).instance

    await instance.dns()

    assert [(kind, settings.endpoint_url) for kind, settings in made] == [
        (DnsProviderKind.ROUTE53, "http://route53.test")]


def test_the_host_key_policy_is_a_function_of_spec_and_status() -> None:
    pinned = DeploymentInstanceSpec.model_validate(base_spec(ssh={
        "privateKeySecretRef": {"name": "ssh-key", "key": "k"}, "hostKeyFingerprint": FINGERPRINT}))
    trusting = DeploymentInstanceSpec.model_validate(base_spec())
    unpinned = DeploymentInstanceSpec.model_validate(base_spec(ssh={
        "privateKeySecretRef": {"name": "ssh-key", "key": "k"}}))
    nothing = DeploymentInstanceStatus()

    assert host_keys.host_key_pins(pinned, nothing) == (FINGERPRINT,)
    assert host_keys.host_key_pins(trusting, nothing) == () and host_keys.trusts_first_use(trusting)
    with pytest.raises(InvalidSpecError) as caught:
        host_keys.host_key_pins(unpinned, nothing)
    assert caught.value.field == host_keys.PIN_FIELD
    assert host_keys.ssh_target(trusting, nothing) == ("shop-host.test", 22)


async def test_a_pass_s_context_is_freed_by_reference_counting_alone() -> None:
    """No reference cycle: 1000 idle instances' passes would otherwise leave their contexts (spec, Secrets read)
    as garbage until a full collection (bench p4_memory found 10 KiB of each instance's RSS there)."""
    import gc
    import weakref

    from o4o_operator.models_database import generated_secret_name
    from o4o_operator.redaction import Redactor
    from o4o_operator.runner.instance import InstanceContext
    from o4o_operator.runner.log import InstanceLog

    kube = FakeKube({"ssh-key": {"ssh-privatekey": "not a real key"}, generated_secret_name("shop"): {"k": "v"}})
    runtime = make_runtime(kube, RecordingConnector(RecordingSession({})), resolver({}))
    spec = base_spec()
    body = {"metadata": {"namespace": "team", "name": "shop", "uid": "uid-1", "generation": 1}, "spec": spec}
    gc.disable()
    try:
        context = InstanceContext(runtime, body, DeploymentInstanceSpec.model_validate(spec),
                                  DeploymentInstanceStatus(), InstanceLog(Redactor()))
        assert await context.private_key() == "not a real key"
        await context.observe_facts(context.status)
        freed = weakref.ref(context)
        del context
        assert freed() is None
    finally:
        gc.enable()
