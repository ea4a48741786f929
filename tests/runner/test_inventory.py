"""The inventory (issue 19): what provision and dns record, host identity, a stopped server, DNS that moves,
and teardown from the inventory alone, on a recording cloud and DNS (no processes)."""

from __future__ import annotations

import copy
import dataclasses
import datetime
from typing import Any

import asyncssh
import pytest
from cloud_fakes import FakeCloud, FakeDns
from stage_fakes import FakeKube, RecordingConnector, RecordingSession, make_context, make_runtime, spec_body
from stage_fakes import static_resolver as resolver
from test_host_teardown import TeardownKube

from o4o_operator import kopf_watch_trim
from o4o_operator.models import DeploymentInstanceSpec, DeploymentInstanceStatus, ServerStatus
from o4o_operator.models_inventory import CloudAccess, InventoryItem, ItemKind, ItemState
from o4o_operator.pipeline.decisions import RunStage, decide
from o4o_operator.pipeline.facts import Facts
from o4o_operator.pipeline.stages import STAGES, StageName
from o4o_operator.providers.ownership import RecordOwner, key_pair_name, ownership_tags, server_name
from o4o_operator.providers.protocols import ServerFacts
from o4o_operator.runner.teardown import teardown

PRIVATE_KEY = asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()
NAME = server_name("team", "shop")
OURS = ownership_tags("team", "shop", "uid-1")
ACCESS = CloudAccess(region="eu-west-1", credentials_secret="aws")
SPEC = spec_body(provider={"lightsail": {"region": "eu-west-1", "credentialsSecretRef": {"name": "aws"}}},
                 ssh={"privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}})
SECRETS = {"ssh-key": {"ssh-privatekey": PRIVATE_KEY},
           "aws": {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "not-a-real-secret"}}


class EventKube(FakeKube):
    def __init__(self) -> None:
        super().__init__(SECRETS)
        self.events: list[tuple[str, str]] = []

    async def post_event(self, body: Any, reason: str, message: str, *, warning: bool = False) -> None:
        self.events.append((reason, message))


def present(kind: ItemKind, name: str, **fields: Any) -> InventoryItem:
    return InventoryItem(kind=kind, name=name, state=ItemState.PRESENT, access=ACCESS, **fields)


def provisioned(cloud_id: str) -> DeploymentInstanceStatus:
    return DeploymentInstanceStatus(
        server=ServerStatus(name=NAME, ip_address="198.51.100.20", static_ip_name=f"{NAME}-ip", region="eu-west-1"),
        inventory=(present(ItemKind.SERVER, NAME, id=cloud_id), present(ItemKind.STATIC_IP, f"{NAME}-ip")))


def provision_world(cloud: FakeCloud) -> tuple[EventKube, Any]:
    kube = EventKube()
    runtime = make_runtime(kube, RecordingConnector(RecordingSession({})), resolver({}))
    runtime.cloud_factory = lambda region, settings, poll: cloud
    return kube, runtime


async def test_a_new_server_is_recorded_pending_before_it_is_made_then_present_with_its_arn() -> None:
    cloud = FakeCloud()
    _, runtime = provision_world(cloud)
    driver = make_context(runtime, SPEC, DeploymentInstanceStatus())

    await driver.run(StageName.PROVISION)

    [intent] = driver.checkpoints
    assert {(i.kind.value, i.name, i.state.value) for i in intent.inventory} == {
        ("Server", NAME, "Pending"), ("StaticIp", f"{NAME}-ip", "Pending"),
        ("KeyPair", key_pair_name("team", "shop"), "Pending")}
    items = {item.kind: item for item in driver.status.inventory}
    assert all(item.state is ItemState.PRESENT and item.access == ACCESS for item in items.values())
    assert items[ItemKind.SERVER].cloud_id == cloud.servers[NAME].cloud_id
    assert items[ItemKind.KEY_PAIR].cloud_id == cloud.key_pairs[key_pair_name("team", "shop")].fingerprint
    assert "not-a-real-secret" not in repr(driver.status.to_body())


async def test_a_server_replaced_under_its_name_is_reported_and_recorded_with_its_new_identity() -> None:
    cloud = FakeCloud({NAME: ServerFacts(NAME, "running", OURS, cloud_id="arn:new")})
    kube, runtime = provision_world(cloud)
    driver = make_context(runtime, SPEC, provisioned("arn:old"))

    await driver.run(StageName.PROVISION)

    assert [reason for reason, _ in kube.events] == ["ServerReplaced"]
    assert "arn:old" in kube.events[0][1]
    server = next(item for item in driver.status.inventory if item.kind is ItemKind.SERVER)
    assert server.cloud_id == "arn:new"


async def test_a_stopped_server_is_started_and_the_start_is_recorded() -> None:
    cloud = FakeCloud({NAME: ServerFacts(NAME, "stopped", OURS, cloud_id="arn:one")})
    kube, runtime = provision_world(cloud)
    driver = make_context(runtime, SPEC, provisioned("arn:one"))

    message = await driver.run(StageName.PROVISION)

    assert cloud.calls == [f"start server {NAME}"]
    assert [reason for reason, _ in kube.events] == ["ServerStarted"]
    assert message.startswith(f"Found server {NAME} (running)")
    assert driver.checkpoints == []  # everything was recorded already: no extra write


def test_a_replaced_server_makes_every_host_stage_run_again() -> None:
    """The address is the same (the static IP outlives the server); the machine is not."""
    spec = DeploymentInstanceSpec.model_validate(SPEC)
    before = Facts(server_address="198.51.100.20", commit="a" * 40, server_id="arn:old")
    from o4o_operator.models import StageState, StageStatus
    from o4o_operator.pipeline.decisions import current_inputs
    hashes = current_inputs(SPEC, before)
    status = DeploymentInstanceStatus(stages=tuple(
        StageStatus(name=stage.name.value, state=StageState.SUCCEEDED, inputs_hash=hashes[stage.name.value])
        for stage in STAGES), last_check_time="2026-01-01T00:00:00Z")
    now = datetime.datetime(2026, 1, 1, 0, 1, tzinfo=datetime.UTC)
    assert not isinstance(decide(spec, SPEC, status, before, {}, now), RunStage)

    after = dataclasses.replace(before, server_id="arn:new")
    decision = decide(spec, SPEC, status, after, {}, now)

    assert isinstance(decision, RunStage) and decision.stage.name is StageName.RUNTIME
    rerun = {stage.name for stage in STAGES if current_inputs(SPEC, after)[stage.name.value]
             != hashes[stage.name.value]}
    assert rerun == {stage.name for stage in STAGES if stage.script is not None}


# ---- DNS ------------------------------------------------------------------------------------------


def dns_world(dns_by_kind: dict[str, FakeDns]) -> Any:
    runtime = make_runtime(FakeKube(SECRETS), RecordingConnector(RecordingSession({})),
                           resolver({"shop.example.com": ["198.51.100.20"]}))
    runtime.dns_factory = lambda kind, settings: dns_by_kind[kind.value]
    return runtime


def record_set(provider: str, zone: str) -> tuple[InventoryItem, InventoryItem]:
    owner = RecordOwner("team", "shop", "uid-1")
    return (present(ItemKind.DNS_RECORD, "shop.example.com", provider=provider, zone=zone, type="A",
                    value="198.51.100.20"),
            present(ItemKind.DNS_RECORD, "shop.example.com", provider=provider, zone=zone, type="TXT",
                    value=owner.txt_value()))


async def test_dns_records_its_a_and_txt_records() -> None:
    dns = {"lightsail": FakeDns()}
    driver = make_context(dns_world(dns), {**SPEC, "dns": {"provider": "lightsail", "zone": "example.com"}},
                          DeploymentInstanceStatus(server=ServerStatus(ip_address="198.51.100.20")))

    await driver.run(StageName.DNS)

    [intent] = driver.checkpoints
    assert [(i.record_type, i.state.value) for i in intent.inventory] == [("A", "Pending"), ("TXT", "Pending")]
    records = driver.status.inventory
    assert [(r.provider, r.zone, r.name, r.record_type, r.state.value) for r in records] == [
        ("lightsail", "example.com", "shop.example.com", "A", "Present"),
        ("lightsail", "example.com", "shop.example.com", "TXT", "Present")]
    assert records[0].access == CloudAccess(region="us-east-1", credentials_secret="aws")


@pytest.mark.parametrize("now", [{"provider": "route53", "zone": "example.com"}, {"provider": "none"},
                                 {"provider": "lightsail", "zone": "other.example.com"}],
                         ids=["another-provider", "managed-elsewhere", "another-zone"])
async def test_dns_that_moves_removes_the_records_it_made_before(now: dict[str, str]) -> None:
    dns = {"lightsail": FakeDns(), "route53": FakeDns()}
    old = record_set("lightsail", "example.com")
    driver = make_context(dns_world(dns), {**SPEC, "dns": now}, DeploymentInstanceStatus(
        server=ServerStatus(ip_address="198.51.100.20"), inventory=old))

    message = await driver.run(StageName.DNS)

    assert ("delete", "shop.example.com", "example.com", "198.51.100.20", "uid-1") in dns["lightsail"].calls
    assert "removed the records it had made before" in message
    assert all(item not in driver.status.inventory for item in old)
    if now["provider"] != "none":
        assert {item.provider for item in driver.status.inventory} == {now["provider"]}


# ---- teardown -------------------------------------------------------------------------------------


@dataclasses.dataclass
class TeardownWorld:
    kube: TeardownKube
    cloud: FakeCloud
    dns: dict[str, FakeDns]
    regions: list[str]

    async def delete(self, spec: Any, status: DeploymentInstanceStatus) -> str:
        runtime = make_runtime(self.kube, RecordingConnector(RecordingSession({})), resolver({}))
        runtime.cloud_factory = lambda region, settings, poll: (self.regions.append(region), self.cloud)[1]
        runtime.dns_factory = lambda kind, settings: self.dns[kind.value]
        body = {"metadata": {"namespace": "team", "name": "shop", "uid": "uid-1", "generation": 3},
                "spec": spec, "status": status.to_body()}
        return await teardown(runtime, body)


@pytest.fixture
def teardown_world() -> TeardownWorld:
    kube = TeardownKube()
    kube.secrets.update(SECRETS)
    return TeardownWorld(kube, FakeCloud({NAME: ServerFacts(NAME, "running", OURS)}),
                         {"lightsail": FakeDns(), "route53": FakeDns()}, [])


def everything() -> DeploymentInstanceStatus:
    status = provisioned("arn:one")
    keys = present(ItemKind.KEY_PAIR, key_pair_name("team", "shop"))
    return status.model_copy(update={"inventory": (*status.inventory, keys, *record_set("lightsail", "example.com"))})


@pytest.mark.parametrize("spec", [
    {**SPEC, "build": {"site": {"env": {"VITE_X": "ends in a newline\n"}}}},
    {**SPEC, "tls": {"email": "ops@example.com", "acmeCABundle": "not a certificate"}},
    {},
], ids=["env-value-with-newline", "ca-bundle-not-pem", "no-spec"])
async def test_a_spec_that_no_longer_parses_still_deletes_everything_recorded(
        teardown_world: TeardownWorld, spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="validation error"):
        DeploymentInstanceSpec.model_validate(spec)

    message = await teardown_world.delete(spec, everything())

    assert f"delete server {NAME}" in teardown_world.cloud.calls
    assert f"delete key pair {key_pair_name('team', 'shop')}" not in teardown_world.cloud.calls  # not imported here
    assert teardown_world.dns["lightsail"].calls == [
        ("delete", "shop.example.com", "example.com", "198.51.100.20", "uid-1")]
    assert set(teardown_world.regions) == {"eu-west-1"}
    assert "DNS record shop.example.com" in message and f"server {NAME}" in message


async def test_teardown_uses_the_provider_each_record_was_made_with(teardown_world: TeardownWorld) -> None:
    """The spec says route53 now, but the dns stage never ran again: the lightsail record is what exists."""
    spec = {**SPEC, "dns": {"provider": "route53", "zone": "example.com"}}

    await teardown_world.delete(spec, everything())

    assert teardown_world.dns["route53"].calls == []
    assert [call[0] for call in teardown_world.dns["lightsail"].calls] == ["delete"]


async def test_a_key_pair_is_deleted_only_when_it_is_ours(teardown_world: TeardownWorld) -> None:
    name = key_pair_name("team", "shop")
    await teardown_world.cloud.ensure_key_pair(name, PRIVATE_KEY_PUBLIC, OURS)
    await teardown_world.delete(SPEC, everything())
    assert f"delete key pair {name}" in teardown_world.cloud.calls


async def test_a_server_that_is_no_longer_ours_is_left(teardown_world: TeardownWorld) -> None:
    teardown_world.cloud.servers[NAME] = ServerFacts(NAME, "running", {**OURS, "o4o.io/uid": "uid-2"})

    message = await teardown_world.delete(SPEC, everything())

    assert f"delete server {NAME}" not in teardown_world.cloud.calls
    assert "which is not ours" in message


async def test_teardown_reads_the_whole_status_from_the_api_since_kopf_keeps_only_its_summary(
        teardown_world: TeardownWorld) -> None:
    runtime = make_runtime(teardown_world.kube, RecordingConnector(RecordingSession({})), resolver({}))
    runtime.cloud_factory = lambda region, settings, poll: teardown_world.cloud
    runtime.dns_factory = lambda kind, settings: teardown_world.dns[kind.value]
    stored = {"metadata": {"namespace": "team", "name": "shop", "uid": "uid-1", "generation": 3}, "spec": SPEC,
              "status": everything().to_body()}
    teardown_world.kube.instances[("team", "shop")] = stored
    as_kopf_keeps = kopf_watch_trim.compacted({"type": "MODIFIED", "object": copy.deepcopy(stored)},
                                              summarize_status=True)["object"]
    assert "inventory" not in as_kopf_keeps["status"]

    message = await teardown(runtime, as_kopf_keeps)

    assert f"delete server {NAME}" in teardown_world.cloud.calls
    assert [call[0] for call in teardown_world.dns["lightsail"].calls] == ["delete"]
    assert "DNS record shop.example.com" in message and f"server {NAME}" in message
    assert teardown_world.kube.status_patches[0]["inventory"]  # the Deleting status keeps what the API held


PRIVATE_KEY_PUBLIC = asyncssh.import_private_key(PRIVATE_KEY).export_public_key("openssh").decode()


async def test_teardown_waits_for_cloud_calls_still_running_and_retries_when_they_take_too_long(
        teardown_world: TeardownWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    import concurrent.futures

    from o4o_operator import errors
    from o4o_operator.runner import teardown as teardown_module

    monkeypatch.setattr(teardown_module, "IN_FLIGHT_WAIT_SECONDS", 0.05)
    running: concurrent.futures.Future[Any] = concurrent.futures.Future()
    runtime = make_runtime(teardown_world.kube, RecordingConnector(RecordingSession({})), resolver({}))
    runtime.cloud_factory = lambda region, settings, poll: teardown_world.cloud
    runtime.in_flight_for("uid-1").add(running)
    body = {"metadata": {"namespace": "team", "name": "shop", "uid": "uid-1"}, "spec": SPEC,
            "status": everything().to_body()}

    with pytest.raises(errors.TransientError) as caught:
        await teardown(runtime, body)
    assert caught.value.reason == "CloudCallsInFlight"
    assert teardown_world.cloud.calls == []  # nothing looked up or deleted while a create may still land

    running.set_result({})
    await teardown(runtime, body)
    assert f"delete server {NAME}" in teardown_world.cloud.calls
    assert "uid-1" not in runtime.in_flight


async def test_provision_records_the_dns_intents_so_the_dns_stage_writes_nothing_before_its_call() -> None:
    cloud, dns = FakeCloud(), {"lightsail": FakeDns()}
    _, runtime = provision_world(cloud)
    runtime.dns_factory = lambda kind, settings: dns[kind.value]
    spec = {**SPEC, "dns": {"provider": "lightsail", "zone": "example.com"}}
    driver = make_context(runtime, spec, DeploymentInstanceStatus())

    await driver.run(StageName.PROVISION)
    pending = [(i.record_type, i.state.value) for i in driver.status.inventory if i.kind is ItemKind.DNS_RECORD]
    assert pending == [("A", "Pending"), ("TXT", "Pending")]
    checkpoints = len(driver.checkpoints)
    await driver.run(StageName.DNS)

    assert len(driver.checkpoints) == checkpoints, "the intent was written with provision's outcome"
    assert [(i.record_type, i.state.value) for i in driver.status.inventory if i.kind is ItemKind.DNS_RECORD] == [
        ("A", "Present"), ("TXT", "Present")]
