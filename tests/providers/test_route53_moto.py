"""Route53Dns against moto running as a real HTTP server (the same code path as AWS, through boto3)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from o4o_operator import errors
from o4o_operator.providers.aws import AwsClient, ClientSettings, StaticCredentials
from o4o_operator.providers.dns import Route53Dns
from o4o_operator.providers.ownership import RecordOwner

OWNER = RecordOwner("default", "shop", "uid-shop")
ZONE = "example.net"
DOMAIN = "shop.example.net"
CREDENTIALS = StaticCredentials("AKIAO4OMOTOTESTKEY01", "moto-secret")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def route53(moto_endpoint: str) -> Any:
    return boto3.client("route53", region_name="us-east-1", endpoint_url=moto_endpoint,
                        aws_access_key_id=CREDENTIALS.access_key_id,
                        aws_secret_access_key=CREDENTIALS.secret_access_key)


@pytest.fixture
def zone_id(route53: Any) -> Iterator[str]:
    """A fresh public hosted zone per test (moto keeps state for the module's server)."""
    created = route53.create_hosted_zone(Name=ZONE, CallerReference=str(uuid.uuid4()))
    hosted_zone_id = str(created["HostedZone"]["Id"]).removeprefix("/hostedzone/")
    yield hosted_zone_id
    records = route53.list_resource_record_sets(HostedZoneId=hosted_zone_id)["ResourceRecordSets"]
    changes = [{"Action": "DELETE", "ResourceRecordSet": r} for r in records
               if r["Type"] not in {"NS", "SOA"}]
    if changes:
        route53.change_resource_record_sets(HostedZoneId=hosted_zone_id, ChangeBatch={"Changes": changes})
    route53.delete_hosted_zone(Id=hosted_zone_id)


@pytest.fixture
def dns(moto_endpoint: str) -> Route53Dns:
    settings = ClientSettings(endpoint_url=moto_endpoint, credentials=CREDENTIALS, max_attempts=3)
    return Route53Dns(settings, poll_interval=0, insync_timeout=10)


def a_records(route53: Any, zone_id: str) -> list[tuple[str, int, list[str]]]:
    records = route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return [(r["Name"], r["TTL"], [v["Value"] for v in r["ResourceRecords"]])
            for r in records if r["Type"] == "A"]


async def test_upsert_twice_then_delete_leaves_no_record(dns: Route53Dns, route53: Any, zone_id: str) -> None:
    await dns.upsert_a_record(DOMAIN, zone_id, "192.0.2.10", ttl=300, owner=OWNER)
    await dns.upsert_a_record(DOMAIN, zone_id, "192.0.2.11", ttl=120, owner=OWNER)
    after_upserts = a_records(route53, zone_id)

    await dns.delete_a_record(DOMAIN, zone_id, "192.0.2.11", OWNER)

    assert after_upserts == [(f"{DOMAIN}.", 120, ["192.0.2.11"])]
    assert a_records(route53, zone_id) == []
    assert txt_records(route53, zone_id) == []


async def test_deleting_a_missing_record_is_success(dns: Route53Dns, route53: Any, zone_id: str) -> None:
    await dns.delete_a_record(DOMAIN, zone_id, None, OWNER)
    await dns.delete_a_record(DOMAIN, "example.invalid", None, OWNER)

    assert a_records(route53, zone_id) == []


async def test_zone_found_by_name_or_by_the_closest_suffix(
        dns: Route53Dns, route53: Any, zone_id: str) -> None:
    await dns.upsert_a_record(DOMAIN, None, "192.0.2.20", ttl=60, owner=OWNER)
    await dns.upsert_a_record(f"api.{ZONE}", f"{ZONE}.", "192.0.2.21", ttl=60, owner=OWNER)

    assert sorted(a_records(route53, zone_id)) == [
        (f"api.{ZONE}.", 60, ["192.0.2.21"]), (f"{DOMAIN}.", 60, ["192.0.2.20"])]


async def test_delete_leaves_a_record_that_points_elsewhere_now(
        dns: Route53Dns, route53: Any, zone_id: str) -> None:
    await dns.upsert_a_record(DOMAIN, zone_id, "192.0.2.99", ttl=60, owner=OWNER)

    await dns.delete_a_record(DOMAIN, zone_id, "192.0.2.10", OWNER)

    assert a_records(route53, zone_id) == [(f"{DOMAIN}.", 60, ["192.0.2.99"])]


async def test_no_hosted_zone_for_the_domain_is_permanent(dns: Route53Dns) -> None:
    with pytest.raises(errors.PermanentError) as caught:
        await dns.upsert_a_record("shop.example.invalid", None, "192.0.2.10", ttl=60, owner=OWNER)

    assert caught.value.reason == "DnsZoneNotFound"


def txt_records(route53: Any, zone_id: str) -> list[tuple[str, list[str]]]:
    records = route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return [(r["Name"], sorted(v["Value"] for v in r["ResourceRecords"])) for r in records if r["Type"] == "TXT"]


OTHER = RecordOwner("team-prod", "shop", "uid-other")
SPF = '"v=spf1 -all"'


def make_record(route53: Any, zone_id: str, kind: str, value: str) -> None:
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [{
        "Action": "CREATE", "ResourceRecordSet": {"Name": DOMAIN, "Type": kind, "TTL": 300,
                                                  "ResourceRecords": [{"Value": value}]}}]})


async def test_a_second_tenant_claiming_the_domain_stalls_and_the_first_keeps_its_record(
        dns: Route53Dns, route53: Any, zone_id: str) -> None:
    await dns.upsert_a_record(DOMAIN, zone_id, "192.0.2.10", ttl=300, owner=OWNER)

    with pytest.raises(errors.InvalidSpecError) as caught:
        await dns.upsert_a_record(DOMAIN, zone_id, "192.0.2.66", ttl=300, owner=OTHER)
    await dns.delete_a_record(DOMAIN, zone_id, None, OTHER)

    assert (caught.value.reason, caught.value.field) == ("DomainOwnedElsewhere", "spec.domain")
    assert a_records(route53, zone_id) == [(f"{DOMAIN}.", 300, ["192.0.2.10"])]
    assert txt_records(route53, zone_id) == [(f"{DOMAIN}.", [OWNER.txt_value()])]


async def test_a_hand_made_a_record_is_never_overwritten_or_deleted(
        dns: Route53Dns, route53: Any, zone_id: str) -> None:
    make_record(route53, zone_id, "A", "192.0.2.200")

    with pytest.raises(errors.InvalidSpecError) as caught:
        await dns.upsert_a_record(DOMAIN, zone_id, "192.0.2.10", ttl=300, owner=OWNER)
    await dns.delete_a_record(DOMAIN, zone_id, None, OWNER)
    await dns.delete_a_record(DOMAIN, zone_id, "192.0.2.200", OWNER)

    assert (caught.value.reason, caught.value.field) == ("DomainOwnedElsewhere", "spec.domain")
    assert a_records(route53, zone_id) == [(f"{DOMAIN}.", 300, ["192.0.2.200"])]
    assert txt_records(route53, zone_id) == []


async def test_other_txt_values_of_the_name_survive_the_claim_and_its_release(
        dns: Route53Dns, route53: Any, zone_id: str) -> None:
    make_record(route53, zone_id, "TXT", SPF)

    await dns.upsert_a_record(DOMAIN, zone_id, "192.0.2.10", ttl=300, owner=OWNER)
    claimed = txt_records(route53, zone_id)
    await dns.delete_a_record(DOMAIN, zone_id, "192.0.2.10", OWNER)

    assert claimed == [(f"{DOMAIN}.", sorted([SPF, OWNER.txt_value()]))]
    assert a_records(route53, zone_id) == []
    assert txt_records(route53, zone_id) == [(f"{DOMAIN}.", [SPF])]


class ScriptedRoute53(AwsClient):
    """moto answers INSYNC at once; this plays a change that stays PENDING for a few reads."""

    def __init__(self, pending_reads: int) -> None:
        super().__init__("route53", "us-east-1", ClientSettings(credentials=CREDENTIALS))
        self.pending_reads = pending_reads
        self.calls: list[str] = []

    async def call(self, operation_name: str, **params: Any) -> dict[str, Any]:
        self.calls.append(operation_name)
        if operation_name == "list_resource_record_sets":
            return {"ResourceRecordSets": []}
        if operation_name == "change_resource_record_sets":
            return {"ChangeInfo": {"Id": "/change/C1", "Status": "PENDING"}}
        assert operation_name == "get_change" and params == {"Id": "/change/C1"}
        self.pending_reads -= 1
        status = "PENDING" if self.pending_reads > 0 else "INSYNC"
        return {"ChangeInfo": {"Id": "/change/C1", "Status": status}}


async def test_upsert_waits_until_the_change_is_insync() -> None:
    client = ScriptedRoute53(pending_reads=3)
    dns = Route53Dns(client=client, poll_interval=0, insync_timeout=60)

    await dns.upsert_a_record(DOMAIN, "Z0123456789", "192.0.2.10", ttl=60, owner=OWNER)

    assert client.calls.count("get_change") == 3


async def test_a_change_that_never_syncs_is_transient() -> None:
    dns = Route53Dns(client=ScriptedRoute53(pending_reads=10**6), poll_interval=0, insync_timeout=0)

    with pytest.raises(errors.TransientError) as caught:
        await dns.upsert_a_record(DOMAIN, "Z0123456789", "192.0.2.10", ttl=60, owner=OWNER)

    assert caught.value.reason == "DnsChangePending"
