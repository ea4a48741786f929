"""provision and dns on a recording cloud, one case per row: given what the cloud holds and the spec,
expect these cloud calls, this checkpoint, this status and this message (or this refusal)."""

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
from o4o_operator.pipeline.stages import StageName
from o4o_operator.providers.ownership import key_pair_name, ownership_tags, server_name
from o4o_operator.providers.protocols import ServerFacts
from o4o_operator.runner.worker import InstanceWorker

PRIVATE_KEY = asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()
NAME = server_name("team", "shop")
OURS = ownership_tags("team", "shop", "uid-1")
LIGHTSAIL = {"lightsail": {"region": "eu-west-1"}}


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
    runtime = make_runtime(FakeKube({"ssh-key": {"ssh-privatekey": PRIVATE_KEY}}),
                           RecordingConnector(RecordingSession({})), static_resolver({}))
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
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), static_resolver({}))
    runtime.dns_factory = lambda kind, settings: dns
    spec = spec_body(dns={"provider": provider, "zone": "example.com"})
    driver = make_context(runtime, spec, DeploymentInstanceStatus(server=ServerStatus(ip_address="198.51.100.20")))

    message = await driver.run(StageName.DNS)

    assert message == f"Pointed shop.example.com at 198.51.100.20 ({provider})"
    assert dns.calls == expected


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
    runtime = make_runtime(kube, RecordingConnector(RecordingSession({})), static_resolver({}))
    runtime.cloud_factory = lambda region, settings, poll: cloud
    await cloud.ensure_key_pair(key_pair_name("team", "shop"), stale, OURS)  # ours, from a rotated key
    cloud.calls.clear()
    body = instance_body(spec_body(provider=LIGHTSAIL, ssh={
        "privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}}))
    worker = InstanceWorker(runtime, lambda: body)

    assert await worker.step(body) is None

    assert cloud.calls[-1] == f"create server {NAME}"
    _started, checkpoint, finished = kube.status_patches  # start, create pending, end: nothing more
    assert checkpoint["server"]["createPending"] is True
    replaced = [line for line in finished["logTail"] if "Replaced key pair" in line]
    assert replaced, finished["logTail"]  # logged before the checkpoint, kept in the end
    assert any("Created server" in line for line in finished["logTail"])
    assert worker.status.stage("provision").state.value == "Succeeded"  # type: ignore[union-attr]
