"""The local Lightsail speaks JSON 1.1 as botocore's model describes it, and keeps state like AWS."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import boto3
import botocore.exceptions
import botocore.session
import botocore.validate
import pytest

from o4o_operator.testing import LocalLightsail
from o4o_operator.testing.lightsail_state import supported_operations

MODEL = botocore.session.get_session().get_service_model("lightsail")
REGION = "eu-west-2"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test"


def raw_request(local: LocalLightsail, operation: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """POST without botocore, so nothing is validated on the client side."""
    request = urllib.request.Request(local.endpoint_url + "/", data=body, method="POST", headers={  # noqa: S310
        "X-Amz-Target": f"Lightsail_20161128.{operation}", "Content-Type": "application/x-amz-json-1.1"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback only)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refusal:
        with refusal:
            return refusal.code, json.loads(refusal.read())


def client(local: LocalLightsail, region: str = REGION) -> Any:
    return boto3.client("lightsail", region_name=region, endpoint_url=local.endpoint_url,
                        aws_access_key_id="AKIAO4OLOCALTESTKEY1", aws_secret_access_key="local-secret")


def wire_problems(value: Any, shape: Any, path: str = "") -> list[str]:
    """Where a JSON 1.1 answer departs from the output shape: unknown members, wrong types, enums."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: expected object"]
        unknown = [f"{path}.{k}: not in {shape.name}" for k in value if k not in shape.members]
        return unknown + [p for k, v in value.items() if k in shape.members
                          for p in wire_problems(v, shape.members[k], f"{path}.{k}")]
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: expected array"]
        return [p for i, item in enumerate(value) for p in wire_problems(item, shape.member, f"{path}[{i}]")]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{path}: expected object"]
        return [p for k, v in value.items() for p in wire_problems(v, shape.value, f"{path}[{k}]")]
    expected: dict[str, tuple[type, ...]] = {
        "string": (str,), "blob": (str,), "boolean": (bool,), "integer": (int,), "long": (int,),
        "float": (int, float), "double": (int, float), "timestamp": (int, float)}
    if not isinstance(value, expected[kind]) or (kind != "boolean" and isinstance(value, bool)):
        return [f"{path}: {value!r} is not a {kind}"]
    if kind == "string" and shape.enum and value not in shape.enum:
        return [f"{path}: {value!r} is not one of {shape.name}"]
    return []


def exercise_every_operation(local: LocalLightsail) -> None:
    regional, dns = client(local), client(local, "us-east-1")
    regional.get_regions(includeAvailabilityZones=True, includeRelationalDatabaseAvailabilityZones=True)
    regional.get_bundles()
    regional.get_blueprints()
    regional.import_key_pair(keyPairName="key-1", publicKeyBase64=PUBLIC_KEY)
    regional.get_key_pair(keyPairName="key-1")
    regional.get_key_pairs()
    regional.tag_resource(resourceName="key-1", tags=[{"key": "o4o.io/uid", "value": "uid-1"}])
    created = regional.create_instances(instanceNames=["web-1"], availabilityZone="eu-west-2a",
                                        bundleId="micro_3_0", blueprintId="ubuntu_24_04", keyPairName="key-1",
                                        tags=[{"key": "o4o.io/uid", "value": "uid-1"}])
    regional.get_operation(operationId=created["operations"][0]["id"])
    regional.get_instance(instanceName="web-1")
    regional.get_instances()
    regional.get_instance_access_details(instanceName="web-1", protocol="ssh")
    regional.put_instance_public_ports(instanceName="web-1", portInfos=[
        {"fromPort": 443, "toPort": 443, "protocol": "tcp", "cidrs": ["0.0.0.0/0"]}])
    regional.get_instance_port_states(instanceName="web-1")
    regional.stop_instance(instanceName="web-1")
    assert regional.get_instance(instanceName="web-1")["instance"]["state"]["name"] == "stopped"
    regional.start_instance(instanceName="web-1")
    regional.allocate_static_ip(staticIpName="web-1-ip")
    regional.attach_static_ip(staticIpName="web-1-ip", instanceName="web-1")
    regional.get_static_ip(staticIpName="web-1-ip")
    regional.get_static_ips()
    regional.detach_static_ip(staticIpName="web-1-ip")
    regional.release_static_ip(staticIpName="web-1-ip")
    dns.create_domain(domainName="example.org")
    entry = {"name": "www.example.org", "type": "A", "target": "192.0.2.80"}
    dns.create_domain_entry(domainName="example.org", domainEntry=entry)
    [created_entry] = [e for e in dns.get_domain(domainName="example.org")["domain"]["domainEntries"]
                       if e["type"] == "A"]
    dns.update_domain_entry(domainName="example.org", domainEntry={**entry, "id": created_entry["id"],
                                                                   "target": "192.0.2.81"})
    dns.create_domain_entry(domainName="example.org", domainEntry={
        "name": "www.example.org", "type": "TXT", "target": '"heritage=o4o-operator,o4o/uid=uid-1"'})
    dns.get_domains()
    dns.delete_domain_entry(domainName="example.org", domainEntry={**entry, "id": created_entry["id"]})
    dns.delete_domain(domainName="example.org")
    regional.create_bucket(bucketName="backups-1", bundleId="small_1_0", tags=[{"key": "o4o.io/uid", "value": "u"}])
    regional.get_buckets(bucketName="backups-1")
    regional.create_bucket_access_key(bucketName="backups-1")
    [key] = regional.get_bucket_access_keys(bucketName="backups-1")["accessKeys"]
    regional.delete_bucket_access_key(bucketName="backups-1", accessKeyId=key["accessKeyId"])
    regional.delete_bucket(bucketName="backups-1")
    regional.delete_instance(instanceName="web-1")
    regional.delete_key_pair(keyPairName="key-1")


def test_every_modelled_operation_answers_in_its_output_shape(local_lightsail: LocalLightsail) -> None:
    exercise_every_operation(local_lightsail)

    answered = {e.operation for e in local_lightsail.exchanges if e.status == 200}
    assert answered == set(supported_operations())
    for exchange in local_lightsail.exchanges:
        shape = MODEL.operation_model(exchange.operation).output_shape
        assert wire_problems(exchange.response, shape) == [], exchange.operation


@pytest.mark.parametrize(("operation", "params"), [
    ("GetInstance", {}),
    ("GetInstance", {"instanceName": 42}),
    ("CreateInstances", {"instanceNames": "web-1", "availabilityZone": "eu-west-2a", "bundleId": "nano_3_0",
                         "blueprintId": "debian_12"}),
    ("PutInstancePublicPorts", {"instanceName": "web-1", "portInfos": [{"fromPort": "80"}], "extra": True}),
])
def test_malformed_requests_get_botocores_own_complaint(
        local_lightsail: LocalLightsail, operation: str, params: dict[str, Any]) -> None:
    input_shape = MODEL.operation_model(operation).input_shape
    report = botocore.validate.ParamValidator().validate(params, input_shape).generate_report()

    status, answer = raw_request(local_lightsail, operation, json.dumps(params).encode())

    assert status == 400 and answer["__type"] == "InvalidInputException"
    assert answer["message"] == str(botocore.exceptions.ParamValidationError(report=report))


def test_model_patterns_are_enforced_like_the_service_does(local_lightsail: LocalLightsail) -> None:
    status, answer = raw_request(local_lightsail, "GetInstance", json.dumps({"instanceName": "x"}).encode())

    assert (status, answer["__type"]) == (400, "InvalidInputException")
    assert "instanceName" in answer["message"]


@pytest.mark.parametrize(("operation", "body", "code"), [
    ("GetInstance", b"{not json", "SerializationException"),
    ("DescribeEverything", b"{}", "UnknownOperationException"),
    ("CreateDisk", b'{"diskName": "d-1", "availabilityZone": "eu-west-2a", "sizeInGb": 8}',
     "UnknownOperationException"),
])
def test_unparseable_or_unknown_requests_are_refused(
        local_lightsail: LocalLightsail, operation: str, body: bytes, code: str) -> None:
    status, answer = raw_request(local_lightsail, operation, body)

    assert (status, answer["__type"]) == (400, code)


def test_names_are_unique_and_missing_things_are_not_found(local_lightsail: LocalLightsail) -> None:
    lightsail = client(local_lightsail)
    lightsail.allocate_static_ip(staticIpName="ip-1")
    lightsail.import_key_pair(keyPairName="key-1", publicKeyBase64=PUBLIC_KEY)
    create = {"availabilityZone": "eu-west-2a", "bundleId": "nano_3_0", "blueprintId": "debian_12"}
    lightsail.create_instances(instanceNames=["web-1"], **create)

    duplicates: list[tuple[str, dict[str, Any]]] = [
        ("create_instances", {"instanceNames": ["web-1"], **create}),
        ("allocate_static_ip", {"staticIpName": "ip-1"}),
        ("import_key_pair", {"keyPairName": "key-1", "publicKeyBase64": PUBLIC_KEY})]
    for operation, params in duplicates:
        with pytest.raises(lightsail.exceptions.InvalidInputException, match="already in use"):
            getattr(lightsail, operation)(**params)
    missing: list[tuple[str, dict[str, Any]]] = [
        ("get_instance", {"instanceName": "web-2"}),
        ("delete_instance", {"instanceName": "web-2"}),
        ("release_static_ip", {"staticIpName": "ip-2"}),
        ("create_instances", {"instanceNames": ["web-3"], "keyPairName": "key-2", **create})]
    for operation, params in missing:
        with pytest.raises(lightsail.exceptions.NotFoundException):
            getattr(lightsail, operation)(**params)
    with pytest.raises(lightsail.exceptions.InvalidInputException, match="availability zone"):
        lightsail.create_instances(instanceNames=["web-4"], **{**create, "availabilityZone": "us-east-1a"})


def test_domains_exist_only_in_us_east_1(local_lightsail: LocalLightsail) -> None:
    with pytest.raises(botocore.exceptions.ClientError, match="us-east-1"):
        client(local_lightsail).get_domains()

    assert client(local_lightsail, "us-east-1").get_domains()["domains"] == []


def test_instances_are_pending_for_the_configured_reads_then_running() -> None:
    with LocalLightsail(pending_polls=2) as local:
        lightsail = client(local)
        lightsail.create_instances(instanceNames=["web-1"], availabilityZone="eu-west-2a",
                                   bundleId="nano_3_0", blueprintId="debian_12")
        states = [lightsail.get_instance(instanceName="web-1")["instance"]["state"]["name"] for _ in range(3)]

    assert states == ["pending", "pending", "running"]


def test_instances_can_be_pending_for_a_time_on_a_clock_the_test_moves() -> None:
    now = [1000.0]
    with LocalLightsail(pending_polls=0, pending_seconds=30, clock=lambda: now[0]) as local:
        lightsail = client(local)
        lightsail.create_instances(instanceNames=["web-1"], availabilityZone="eu-west-2a",
                                   bundleId="nano_3_0", blueprintId="debian_12")
        before = lightsail.get_instance(instanceName="web-1")["instance"]["state"]["name"]
        now[0] += 30
        after = lightsail.get_instance(instanceName="web-1")["instance"]["state"]["name"]

    assert (before, after) == ("pending", "running")


def test_faults_drawn_from_the_same_seed_repeat() -> None:
    def throttled_sequence() -> list[int]:
        with LocalLightsail(seed=99) as local:
            local.faults.throttle_rate = 0.5
            return [raw_request(local, "GetBundles", b"{}")[0] for _ in range(12)]

    first = throttled_sequence()

    assert first == throttled_sequence() and {400, 200} <= set(first)


def test_leftovers_of_an_instance_are_found_by_its_uid(local_lightsail: LocalLightsail) -> None:
    lightsail, dns = client(local_lightsail), client(local_lightsail, "us-east-1")
    lightsail.create_instances(instanceNames=["web-1"], availabilityZone="eu-west-2a", bundleId="nano_3_0",
                               blueprintId="debian_12", tags=[{"key": "o4o.io/uid", "value": "uid-1"}])
    lightsail.allocate_static_ip(staticIpName="web-1-ip")
    lightsail.attach_static_ip(staticIpName="web-1-ip", instanceName="web-1")
    local_lightsail.add_domain("example.org")
    address = lightsail.get_static_ip(staticIpName="web-1-ip")["staticIp"]["ipAddress"]
    dns.create_domain_entry(domainName="example.org",
                            domainEntry={"name": "shop.example.org", "type": "A", "target": address})

    lightsail.delete_instance(instanceName="web-1")  # forgot the static IP and the record

    assert local_lightsail.resources_for_uid("uid-1") == ["DomainEntry/shop.example.org", "StaticIp/web-1-ip"]
    assert local_lightsail.resources_for_uid("uid-2") == []


def test_runs_standalone_and_prints_its_url() -> None:
    command = [sys.executable, "-m", "o4o_operator.testing.lightsail", "--domain", "example.org"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        lightsail = boto3.client("lightsail", region_name="us-east-1", endpoint_url=url,
                                 aws_access_key_id="AKIAO4OLOCALTESTKEY1",
                                 aws_secret_access_key="local-secret")
        domains = lightsail.get_domains()["domains"]
    finally:
        process.terminate()
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()

    assert url.startswith("http://127.0.0.1:") and [d["name"] for d in domains] == ["example.org"]
