"""provision and dns on a recording cloud, one case per row: given what the cloud holds and the spec,
expect these cloud calls, this checkpoint, this status and this message (or this refusal). The instances
here bring no credentials: their namespace is granted the operator's identity for example.com
(O4O_AMBIENT_GRANTS), and one that is not stalls before any cloud or DNS call."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncssh
import pytest
from cloud_fakes import HOST_KEY, FakeCloud, FakeDns
from stage_fakes import (
    FakeKube,
    RecordingConnector,
    RecordingSession,
    instance_body,
    make_context,
    make_runtime,
    spec_body,
    static_resolver,
)

from o4o_operator import errors
from o4o_operator.models import BUILD_RAM_GB, DeploymentInstanceStatus, ServerStatus
from o4o_operator.pipeline.ambient_grants import AmbientGrants
from o4o_operator.pipeline.stages import StageName
from o4o_operator.providers.ownership import key_pair_name, ownership_tags, server_name
from o4o_operator.providers.protocols import ServerFacts
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.worker import InstanceWorker

PRIVATE_KEY = asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()
NAME = server_name("team", "shop")
OURS = ownership_tags("team", "shop", "uid-1")
LIGHTSAIL = {"lightsail": {"region": "eu-west-1"}}
GRANTED = AmbientGrants.parse("team=example.com")


def _granted(runtime: Runtime, grants: AmbientGrants = GRANTED) -> Runtime:
    runtime.settings = dataclasses.replace(runtime.settings, ambient_grants=grants)
    return runtime


def _running(tags: dict[str, str], **facts: Any) -> ServerFacts:
    return ServerFacts(NAME, "running", tags, bundle_id="small_3_0", blueprint_id="ubuntu_22_04", **facts)


@dataclasses.dataclass(frozen=True)
class Row:
    case: str
    servers: dict[str, ServerFacts]
    calls: list[str]
    message: str | None = None
    refused: str | None = None
    adopt: bool = False
    checkpoints: tuple[tuple[bool, tuple[str, ...]], ...] = ()
    """Each checkpoint written: (server.createPending, the inventory's kinds and states)."""
    lightsail: dict[str, Any] = dataclasses.field(default_factory=dict)


ROWS = [
    Row("created", {}, [f"import key pair {key_pair_name('team', 'shop')}", f"create server {NAME}"],
        message=f"Created server {NAME} (running) at 198.51.100.20",
        checkpoints=((True, ("StaticIp:Pending", "Server:Pending", "KeyPair:Pending")),)),
    # Found, with nothing recorded (made before inventories): the static IP's intent is written first.
    Row("found ours", {NAME: _running(OURS)}, [], message=f"Found server {NAME} (running) at 198.51.100.20",
        checkpoints=((False, ("StaticIp:Pending",)),)),
    Row("another instance's is refused", {NAME: _running({**OURS, "o4o.io/uid": "uid-2"})}, [],
        refused="ServerOwnedElsewhere"),
    Row("an unclaimed one is refused without the annotation", {NAME: _running({})}, [], refused="AlreadyExists"),
    Row("an unclaimed one is adopted with the annotation", {NAME: _running({})}, [f"tag server {NAME}"],
        message=f"Found server {NAME} (running) at 198.51.100.20", adopt=True,
        checkpoints=((False, ("StaticIp:Pending",)),)),
    Row("an unclaimed one unlike the spec is not adopted", {NAME: _running({})}, [], adopt=True,
        refused="AdoptionMismatch", lightsail={"bundleId": "medium_3_0"}),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.case for row in ROWS])
async def test_provision_on_the_cloud(row: Row) -> None:
    cloud = FakeCloud(row.servers)
    runtime = _granted(make_runtime(FakeKube({"ssh-key": {"ssh-privatekey": PRIVATE_KEY}}),
                                    RecordingConnector(RecordingSession({})), static_resolver({})))
    runtime.cloud_factory = lambda region, settings, poll: cloud
    spec = spec_body(provider={"lightsail": {**LIGHTSAIL["lightsail"], **row.lightsail}}, ssh={
        "privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}})
    driver = make_context(runtime, spec, DeploymentInstanceStatus())
    if row.adopt:
        driver.instance.body["metadata"]["annotations"] = {"deploy.o4o.io/adopt": "true"}

    if row.refused:
        with pytest.raises(errors.StageError) as caught:
            await driver.run(StageName.PROVISION)
        assert caught.value.reason == row.refused and not caught.value.transient
        assert cloud.calls == row.calls
        return
    message = await driver.run(StageName.PROVISION)

    assert message == row.message
    assert cloud.calls == row.calls
    assert cloud.validated_min_ram_gb == BUILD_RAM_GB  # a bundle that cannot build O4O stalls (BundleTooSmall)
    # The intents (and create-pending) are written before the calls, in one write.
    assert tuple((status.server.create_pending, tuple(f"{item.kind}:{item.state}" for item in status.inventory))
                 for status in driver.checkpoints) == row.checkpoints
    # What was made is then recorded as present, with the cloud's own id for the server.
    present = {item.kind.value: item for item in driver.status.inventory}
    assert all(item.state == "Present" for item in driver.status.inventory)
    assert present["Server"].adopted == row.adopt
    assert present["StaticIp"].value == "198.51.100.20"
    server = driver.status.server
    assert (server.name, server.ip_address, server.create_pending) == (NAME, "198.51.100.20", False)
    assert server.host_key_fingerprints == (HOST_KEY,)


@pytest.mark.parametrize(("provider", "expected"), [
    ("lightsail", [("upsert", "shop.example.com", "example.com", "198.51.100.20", "uid-1")]),
    ("route53", [("upsert", "shop.example.com", "example.com", "198.51.100.20", "uid-1")]),
])
async def test_dns_writes_the_record_as_its_owner(provider: str, expected: list[tuple[str, ...]]) -> None:
    dns = FakeDns()
    runtime = _granted(make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), static_resolver({})))
    runtime.dns_factory = lambda kind, settings: dns
    spec = spec_body(dns={"provider": provider, "zone": "example.com"})
    driver = make_context(runtime, spec, DeploymentInstanceStatus(server=ServerStatus(ip_address="198.51.100.20")))

    message = await driver.run(StageName.DNS)

    assert message == f"Pointed shop.example.com at 198.51.100.20 ({provider})"
    assert dns.calls == expected


# ---- the operator's own identity is granted, not assumed (O4O_AMBIENT_GRANTS) -----------------------


@pytest.mark.parametrize("grants", [AmbientGrants(), AmbientGrants.parse("team-a=example.com;team-*=b.example")])
async def test_an_instance_without_credentials_in_a_namespace_without_the_grant_stalls_and_writes_nothing(
        grants: AmbientGrants) -> None:
    """Namespace "team" is granted nothing (by default, or only other namespaces and zones are): provision stalls
    naming the credentials it lacks, dns naming the zone, and neither calls the cloud or the DNS at all."""
    cloud, dns = FakeCloud(), FakeDns()
    kube = FakeKube({"ssh-key": {"ssh-privatekey": PRIVATE_KEY}})
    runtime = _granted(make_runtime(kube, RecordingConnector(RecordingSession({})), static_resolver({})), grants)
    runtime.cloud_factory = lambda region, settings, poll: cloud
    runtime.dns_factory = lambda kind, settings: dns
    body = instance_body(spec_body(provider=LIGHTSAIL, dns={"provider": "lightsail", "zone": "example.com"},
                                   ssh={"privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}}))
    worker = InstanceWorker(runtime, lambda: body, body.get("status"))

    await worker.step(body)

    stalled = worker.status.condition("Stalled")
    assert stalled is not None and stalled.status.value == "True"
    assert stalled.reason == "AmbientIdentityNotGranted"
    assert "spec.provider.lightsail.credentialsSecretRef" in stalled.message
    assert cloud.calls == [] and cloud.validated_min_ram_gb is None and dns.calls == []

    # An existing host (so no server to create) with DNS through the operator's identity: the zone stalls.
    driver = make_context(runtime, spec_body(dns={"provider": "lightsail", "zone": "example.com"}),
                          DeploymentInstanceStatus(server=ServerStatus(ip_address="198.51.100.20")))
    with pytest.raises(errors.InvalidSpecError) as caught:
        await driver.run(StageName.DNS)
    assert (caught.value.field, caught.value.reason) == ("spec.dns.zone", "ZoneNotGranted")
    assert dns.calls == []


async def test_an_instance_with_its_own_credentials_needs_no_grant() -> None:
    cloud, dns = FakeCloud(), FakeDns()
    kube = FakeKube({"ssh-key": {"ssh-privatekey": PRIVATE_KEY},
                     "aws": {"aws_access_key_id": "AKIA0123", "aws_secret_access_key": "secret-0123456789"}})
    runtime = make_runtime(kube, RecordingConnector(RecordingSession({})), static_resolver({}))  # no grants
    runtime.cloud_factory = lambda region, settings, poll: cloud
    runtime.dns_factory = lambda kind, settings: dns
    spec = spec_body(provider={"lightsail": {**LIGHTSAIL["lightsail"], "credentialsSecretRef": {"name": "aws"}}},
                     dns={"provider": "lightsail", "zone": "a-corp.com"}, domain="login.a-corp.com",
                     ssh={"privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}})
    driver = make_context(runtime, spec, DeploymentInstanceStatus())

    await driver.run(StageName.PROVISION)
    await driver.run(StageName.DNS)

    assert cloud.calls[-1] == f"create server {NAME}"
    assert dns.calls == [("upsert", "login.a-corp.com", "a-corp.com", "198.51.100.20", "uid-1")]


async def test_dns_none_only_checks_the_name_and_touches_no_provider() -> None:
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})),
                           static_resolver({"shop.example.com": ["198.51.100.20"]}))
    runtime.dns_factory = lambda kind, settings: pytest.fail("no DNS provider for dns.provider none")
    driver = make_context(runtime, spec_body(dns={"provider": "none"}),
                          DeploymentInstanceStatus(server=ServerStatus(ip_address="198.51.100.20")))

    assert await driver.run(StageName.DNS) == "Checked that shop.example.com resolves to 198.51.100.20"


# ---- the worker writes a checkpoint, and keeps what was logged before it ---------------------------


async def test_provision_writes_three_times_and_lines_logged_before_the_checkpoint_reach_the_final_tail() -> None:
    stale = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    cloud = FakeCloud()
    kube = FakeKube({"ssh-key": {"ssh-privatekey": PRIVATE_KEY}})
    runtime = _granted(make_runtime(kube, RecordingConnector(RecordingSession({})), static_resolver({})))
    runtime.cloud_factory = lambda region, settings, poll: cloud
    await cloud.ensure_key_pair(key_pair_name("team", "shop"), stale, OURS)  # ours, from a rotated key
    cloud.calls.clear()
    body = instance_body(spec_body(provider=LIGHTSAIL, ssh={
        "privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}}))
    worker = InstanceWorker(runtime, lambda: body, body.get("status"))

    assert await worker.step(body) is None

    assert cloud.calls[-1] == f"create server {NAME}"
    _started, checkpoint, finished = kube.status_patches  # start, create pending, end: nothing more
    assert checkpoint["server"]["createPending"] is True
    replaced = [line for line in finished["logTail"] if "Replaced key pair" in line]
    assert replaced, finished["logTail"]  # logged before the checkpoint, kept in the end
    assert any("Created server" in line for line in finished["logTail"])
    assert worker.status.stage("provision").state.value == "Succeeded"  # type: ignore[union-attr]
