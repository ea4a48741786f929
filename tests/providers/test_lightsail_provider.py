"""LightsailCloud against the local Lightsail endpoint: idempotence, crashes, faults, validation."""

from __future__ import annotations

import dataclasses
from typing import Any

import botocore.exceptions
import pytest

from o4o_operator import errors, metrics
from o4o_operator.models import BUILD_RAM_GB
from o4o_operator.providers.aws import AwsClient, ClientSettings, CloudCallError
from o4o_operator.providers.lightsail import LightsailCloud
from o4o_operator.providers.ownership import ownership_tags, server_owned_by
from o4o_operator.providers.protocols import CloudProvider, ServerRequest
from o4o_operator.testing import LocalLightsail
from o4o_operator.testing.lightsail_catalog import default_host_keys, host_key_entry

REGION = "eu-west-2"  # the conftest's cloud fixture works in this region
UID = "6f1c2d7e-0000-4000-8000-000000000001"
SERVER = "o4o-default-shop"
STATIC_IP = "o4o-default-shop-ip"
KEY_PAIR = "o4o-default-shop-key"


def server_request(**overrides: Any) -> ServerRequest:
    request = ServerRequest(name=SERVER, region=REGION, availability_zone=None, bundle_id="nano_3_0",
                            blueprint_id="ubuntu_22_04", key_pair_name=KEY_PAIR,
                            tags=ownership_tags("default", "shop", UID))
    return dataclasses.replace(request, **overrides)


async def provision(cloud: CloudProvider, public_key: str, ssh_cidrs: tuple[str, ...] = ()) -> str:
    """The provisioning steps the runner takes, in order; returns the static IP."""
    await cloud.validate(REGION, None, "nano_3_0", "ubuntu_22_04")
    await cloud.ensure_key_pair(KEY_PAIR, public_key)
    if await cloud.find_server(SERVER) is None:
        await cloud.create_server(server_request())
    await cloud.wait_running(SERVER, timeout=30)
    address = await cloud.ensure_static_ip(SERVER, STATIC_IP)
    await cloud.ensure_ports(SERVER, ssh_cidrs)
    return address


def operations_sent(local: LocalLightsail, operation: str) -> int:
    return local.request_log.count(operation)


async def test_happy_path_gives_a_running_server_with_ip_ports_key_and_fingerprint(
        cloud: LightsailCloud, local_lightsail: LocalLightsail, public_key_openssh: str) -> None:
    address = await provision(cloud, public_key_openssh, ssh_cidrs=("203.0.113.0/24", "2001:db8::/32"))

    [server] = local_lightsail.servers()
    assert (server.name, server.state, server.static_ip_name, server.public_ip) == (
        SERVER, "running", STATIC_IP, address)
    assert server.key_pair_name == KEY_PAIR and server.availability_zone == f"{REGION}a"
    assert local_lightsail.static_ips()[0].attached_to == SERVER
    ports = {p["fromPort"]: (p.get("cidrs"), p.get("ipv6Cidrs")) for p in server.ports}
    assert ports == {80: (["0.0.0.0/0"], ["::/0"]), 443: (["0.0.0.0/0"], ["::/0"]),
                     22: (["203.0.113.0/24"], ["2001:db8::/32"])}
    assert operations_sent(local_lightsail, "ImportKeyPair") == 1
    facts = await cloud.find_server(SERVER)
    assert facts is not None and facts.static_ip == address and server_owned_by(facts, UID)
    expected = default_host_keys(SERVER)[0]["fingerprintSHA256"]
    assert await cloud.host_key_fingerprint(SERVER) == expected
    assert expected.startswith("SHA256:") and not expected.endswith("=")


async def test_every_step_twice_changes_nothing_the_second_time(
        cloud: LightsailCloud, local_lightsail: LocalLightsail, public_key_openssh: str) -> None:
    first = await provision(cloud, public_key_openssh)
    await cloud.create_server(server_request())  # even called directly, it reads first
    second = await provision(cloud, public_key_openssh)

    assert first == second
    for changing in ("CreateInstances", "ImportKeyPair", "AllocateStaticIp", "AttachStaticIp",
                     "PutInstancePublicPorts"):
        assert operations_sent(local_lightsail, changing) == 1, changing
    assert len(local_lightsail.servers()) == 1


async def test_crash_between_create_and_static_ip_resumes_to_one_server_with_its_ip(
        aws_settings: ClientSettings, local_lightsail: LocalLightsail, public_key_openssh: str) -> None:
    before_crash = LightsailCloud(REGION, aws_settings, poll_interval=0)
    await before_crash.ensure_key_pair(KEY_PAIR, public_key_openssh)
    await before_crash.create_server(server_request())
    del before_crash  # the operator died here: no wait, no static IP

    after_restart = LightsailCloud(REGION, aws_settings, poll_interval=0)
    address = await provision(after_restart, public_key_openssh)

    [server] = local_lightsail.servers()
    assert server.static_ip_name == STATIC_IP and server.public_ip == address
    assert operations_sent(local_lightsail, "CreateInstances") == 1
    assert [ip.name for ip in local_lightsail.static_ips()] == [STATIC_IP]


async def test_changes_whose_answers_were_lost_are_not_repeated(
        cloud: LightsailCloud, local_lightsail: LocalLightsail, public_key_openssh: str) -> None:
    """AWS did the work but the 500 made botocore retry: the retry is refused, the provider re-reads."""
    local_lightsail.faults.lose_response_once = {"ImportKeyPair", "CreateInstances", "AllocateStaticIp"}

    address = await provision(cloud, public_key_openssh)

    [server] = local_lightsail.servers()
    assert server.public_ip == address
    assert len(local_lightsail.static_ips()) == 1
    assert operations_sent(local_lightsail, "CreateInstances") == 2  # the lost one and the refused retry


@pytest.mark.slow  # botocore's throttling backoff is real time: a few seconds
async def test_throttling_storm_converges_through_standard_retries(
        aws_settings: ClientSettings, local_lightsail: LocalLightsail, public_key_openssh: str) -> None:
    local_lightsail.faults.throttle_rate = 0.3
    local_lightsail.faults.seed(7)
    cloud = LightsailCloud(REGION, dataclasses.replace(aws_settings, max_attempts=12), poll_interval=0)

    address = await provision(cloud, public_key_openssh)
    await cloud.delete_server(SERVER, STATIC_IP)

    throttled = [e for e in local_lightsail.exchanges if e.response.get("__type") == "ThrottlingException"]
    assert throttled, "the storm never hit"
    assert address and local_lightsail.servers() == [] and local_lightsail.static_ips() == []


async def test_delete_releases_ip_and_deletes_server_and_not_found_is_success(
        cloud: LightsailCloud, local_lightsail: LocalLightsail, public_key_openssh: str) -> None:
    await provision(cloud, public_key_openssh)

    await cloud.delete_server(SERVER, STATIC_IP)
    await cloud.delete_server(SERVER, STATIC_IP)
    await cloud.delete_server("never-existed", "never-existed-ip")
    await cloud.delete_server("never-existed", None)

    assert local_lightsail.servers() == [] and local_lightsail.static_ips() == []
    assert local_lightsail.resources_for_uid(UID) == []
    assert await cloud.find_server(SERVER) is None


@pytest.mark.parametrize(("region", "zone", "bundle", "blueprint", "field", "reason", "a_choice"), [
    ("mars-north-1", None, "nano_3_0", "ubuntu_22_04", "region", "UnknownRegion", "ap-northeast-2"),
    (REGION, "eu-west-2z", "nano_3_0", "ubuntu_22_04", "availabilityZone", "UnknownAvailabilityZone",
     "eu-west-2b"),
    (REGION, None, "huge_9_0", "ubuntu_22_04", "bundleId", "UnknownBundle", "micro_3_0"),
    (REGION, None, "nano_3_0", "windows_2022", "blueprintId", "UnknownBlueprint", "debian_12"),
])
async def test_validate_names_the_field_and_lists_the_choices(
        cloud: LightsailCloud, region: str, zone: str | None, bundle: str, blueprint: str,
        field: str, reason: str, a_choice: str) -> None:
    with pytest.raises(errors.InvalidSpecError) as caught:
        await cloud.validate(region, zone, bundle, blueprint)

    assert caught.value.field == f"spec.provider.lightsail.{field}"
    assert caught.value.reason == reason and not caught.value.transient
    assert a_choice in caught.value.message


@pytest.mark.parametrize("bundle", ["nano_3_0", "micro_3_0"])
async def test_a_bundle_below_the_builds_memory_stalls_naming_bundle_id(cloud: LightsailCloud, bundle: str) -> None:
    with pytest.raises(errors.InvalidSpecError) as caught:
        await cloud.validate(REGION, None, bundle, "ubuntu_22_04", min_ram_gb=BUILD_RAM_GB)

    assert caught.value.field == "spec.provider.lightsail.bundleId"
    assert caught.value.reason == "BundleTooSmall" and not caught.value.transient
    assert "small_3_0" in caught.value.message and "medium_3_0" in caught.value.message
    assert "nano_3_0, " not in caught.value.message  # the choices offered are the large-enough ones


async def test_a_bundle_with_the_builds_memory_passes(cloud: LightsailCloud) -> None:
    await cloud.validate(REGION, None, "small_3_0", "ubuntu_22_04", min_ram_gb=BUILD_RAM_GB)


async def test_catalog_is_read_once_per_client(
        cloud: LightsailCloud, local_lightsail: LocalLightsail) -> None:
    await cloud.validate(REGION, "eu-west-2b", "small_3_0", "debian_12")
    await cloud.validate("ap-northeast-2", None, "medium_3_0", "ubuntu_24_04")

    reads = [operations_sent(local_lightsail, op) for op in ("GetRegions", "GetBundles", "GetBlueprints")]
    assert reads == [1, 1, 1]


async def test_instance_with_our_name_but_not_our_uid_is_not_ours(
        cloud: LightsailCloud, local_lightsail: LocalLightsail, raw_lightsail: Any) -> None:
    raw_lightsail.create_instances(instanceNames=[SERVER], availabilityZone=f"{REGION}a", bundleId="nano_3_0",
                                   blueprintId="debian_12", tags=[{"key": "owner", "value": "someone-else"}])

    facts = await cloud.find_server(SERVER)
    await cloud.create_server(server_request())

    assert facts is not None and not server_owned_by(facts, UID)
    assert not server_owned_by(dataclasses.replace(facts, tags={"o4o.io/uid": "another-uid"}), UID)
    assert operations_sent(local_lightsail, "CreateInstances") == 1  # only the foreign one


async def test_rejected_credentials_are_permanent_and_never_quoted(
        cloud: LightsailCloud, local_lightsail: LocalLightsail, aws_settings: ClientSettings) -> None:
    credentials = aws_settings.credentials
    assert credentials is not None
    local_lightsail.faults.reject_credentials = True

    with pytest.raises(errors.PermanentError) as caught:
        await cloud.find_server(SERVER)

    assert caught.value.reason == "CloudCredentialsRejected"
    assert credentials.secret_access_key not in str(caught.value)
    assert credentials.access_key_id not in str(caught.value)


async def test_server_errors_beyond_the_retries_are_transient(
        cloud: LightsailCloud, local_lightsail: LocalLightsail) -> None:
    local_lightsail.faults.server_error_rate = 1.0

    with pytest.raises(errors.TransientError) as caught:
        await cloud.find_server(SERVER)

    assert caught.value.reason == "CloudUnavailable"
    assert operations_sent(local_lightsail, "GetInstance") == 3  # max_attempts


async def test_wait_running_gives_up_after_the_timeout(
        cloud: LightsailCloud, local_lightsail: LocalLightsail, public_key_openssh: str) -> None:
    local_lightsail.state.pending_polls = 1000
    await cloud.ensure_key_pair(KEY_PAIR, public_key_openssh)
    await cloud.create_server(server_request())

    with pytest.raises(errors.TransientError) as caught:
        await cloud.wait_running(SERVER, timeout=0)

    assert caught.value.reason == "ServerNotRunning" and "pending" in caught.value.message
    assert await cloud.host_key_fingerprint(SERVER) is None  # no host keys while pending


async def test_too_many_tags_are_refused_before_any_call(
        cloud: LightsailCloud, local_lightsail: LocalLightsail) -> None:
    tags = {f"k{i}": "v" for i in range(51)}

    with pytest.raises(errors.PermanentError) as caught:
        await cloud.create_server(server_request(tags=tags))

    assert caught.value.reason == "TagLimitExceeded"
    assert local_lightsail.request_log == []


async def test_static_ip_attached_elsewhere_is_not_taken(
        cloud: LightsailCloud, raw_lightsail: Any, public_key_openssh: str) -> None:
    raw_lightsail.create_instances(instanceNames=["other-server"], availabilityZone=f"{REGION}a",
                                   bundleId="nano_3_0", blueprintId="debian_12")
    raw_lightsail.allocate_static_ip(staticIpName=STATIC_IP)
    raw_lightsail.attach_static_ip(staticIpName=STATIC_IP, instanceName="other-server")
    await cloud.ensure_key_pair(KEY_PAIR, public_key_openssh)
    await cloud.create_server(server_request())

    with pytest.raises(errors.PermanentError) as caught:
        await cloud.ensure_static_ip(SERVER, STATIC_IP)
    await cloud.delete_server(SERVER, STATIC_IP)

    assert caught.value.reason == "StaticIpInUse"
    assert raw_lightsail.get_static_ip(staticIpName=STATIC_IP)["staticIp"]["attachedTo"] == "other-server"


async def test_calls_are_counted_by_operation_and_outcome(cloud: LightsailCloud) -> None:
    def count(operation: str, outcome: str) -> float:
        value = metrics.REGISTRY.get_sample_value(
            "o4o_cloud_requests_total", {"operation": operation, "outcome": outcome})
        return value or 0.0
    before = (count("GetInstance", "NotFoundException"), count("GetRegions", "success"))

    await cloud.find_server("nobody")
    await cloud.validate(REGION, None, "nano_3_0", "ubuntu_22_04")

    assert (count("GetInstance", "NotFoundException"), count("GetRegions", "success")) == (
        before[0] + 1, before[1] + 1)


async def test_sandbox_hooks_choose_addresses_and_host_keys(
        aws_settings: ClientSettings, public_key_openssh: str) -> None:
    wire_format = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))
    sandbox_key = host_key_entry("ssh-ed25519", wire_format)
    addresses = {STATIC_IP: "127.0.0.42"}
    with LocalLightsail(pending_polls=0, ip_allocator=lambda name: addresses.get(name, "127.0.0.41"),
                        host_keys=lambda name: [sandbox_key]) as local:
        cloud = LightsailCloud(REGION, dataclasses.replace(aws_settings, endpoint_url=local.endpoint_url),
                               poll_interval=0)
        address = await provision(cloud, public_key_openssh)
        fingerprint = await cloud.host_key_fingerprint(SERVER)

    assert address == "127.0.0.42"
    assert fingerprint == sandbox_key["fingerprintSHA256"]


@pytest.mark.parametrize(("code", "status", "transient", "reason"), [
    ("ThrottlingException", 400, True, "CloudThrottled"),
    ("ServiceException", 500, True, "CloudUnavailable"),
    ("Timeout", None, True, "CloudUnavailable"),
    ("InvalidInputException", 400, True, "CloudRequestFailed"),
    ("AccessDeniedException", 400, False, "CloudCredentialsRejected"),
    ("UnrecognizedClientException", 400, False, "CloudCredentialsRejected"),
    ("NoCredentials", None, False, "CloudCredentialsRejected"),
    ("ParamValidation", None, False, "CloudRequestInvalid"),
])
def test_failures_map_onto_the_error_vocabulary(
        code: str, status: int | None, transient: bool, reason: str) -> None:
    mapped = CloudCallError("GetInstance", code, "it failed", http_status=status).to_stage_error()

    assert (mapped.transient, mapped.reason) == (transient, reason)
    assert "GetInstance" in mapped.message and code in mapped.message


def test_aws_messages_are_redacted_of_the_credentials(aws_settings: ClientSettings) -> None:
    credentials = aws_settings.credentials
    assert credentials is not None
    client = AwsClient("lightsail", REGION, aws_settings)
    echoed = f"Credential={credentials.access_key_id}/x, secret {credentials.secret_access_key}"
    failure = botocore.exceptions.ClientError(
        {"Error": {"Code": "SignatureDoesNotMatch", "Message": echoed}}, "GetInstance")

    described = client._describe("GetInstance", failure)

    assert credentials.access_key_id not in described.message
    assert credentials.secret_access_key not in described.message
    assert "[REDACTED]" in described.message
