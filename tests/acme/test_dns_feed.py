"""DNS comes from the cloud's state: Lightsail domain entries and Route 53 records are what challtestsrv answers."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from o4o_operator.testing.acme import AcmeWorld
from o4o_operator.testing.dns_feed import DnsFeed, lightsail_records, route53_records
from o4o_operator.testing.dns_query import DnsAnswer, query
from o4o_operator.testing.lightsail import LocalLightsail
from o4o_operator.testing.lightsail_domains import LocalDomainEntry

ZONE = "example.com"


@pytest.fixture
def lightsail() -> Iterator[LocalLightsail]:
    with LocalLightsail() as local:
        local.add_domain(ZONE)
        yield local


def lightsail_client(local: LocalLightsail) -> Any:
    return boto3.client("lightsail", region_name="us-east-1", endpoint_url=local.endpoint_url,
                        aws_access_key_id="AKIAO4OLOCALTEST0001", aws_secret_access_key="local-secret")


def ask(world: AcmeWorld, name: str, kind: str = "A") -> DnsAnswer:
    answer = query(world.dns.dns_host, world.dns.dns_port, name, kind)
    assert answer is not None, f"challtestsrv did not answer {kind} {name}"
    return answer


def eventually(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def dig(world: AcmeWorld, name: str, kind: str = "A") -> str:
    return subprocess.run(["dig", "+short", "+tries=1", "+time=2", f"@{world.dns.dns_host}",
                           "-p", str(world.dns.dns_port), name, kind],
                          check=True, capture_output=True, text=True).stdout.strip()


def test_unknown_names_do_not_resolve(acme_world: AcmeWorld) -> None:
    answer = ask(acme_world, f"nothing-{uuid.uuid4().hex[:8]}.example.org")

    assert answer.records == [], "challtestsrv must not answer unknown names with a default address"
    assert ask(acme_world, "deb.debian.org", "AAAA").records == []


def test_lightsail_entry_resolves_once_created_and_stops_once_deleted(acme_world: AcmeWorld,
                                                                      lightsail: LocalLightsail) -> None:
    client = lightsail_client(lightsail)
    entry = {"name": f"shop.{ZONE}", "type": "A", "target": "198.51.100.23"}
    with DnsFeed(acme_world.dns) as feed:
        feed.follow_lightsail(lightsail.state)
        client.create_domain_entry(domainName=ZONE, domainEntry=entry)
        created = dig(acme_world, f"shop.{ZONE}")
        client.create_domain_entry(domainName=ZONE, domainEntry={
            "name": f"_acme-challenge.shop.{ZONE}", "type": "TXT", "target": '"token-123"'})
        txt = ask(acme_world, f"_acme-challenge.shop.{ZONE}", "TXT").values("TXT")
        client.delete_domain_entry(domainName=ZONE, domainEntry=entry)
        deleted = ask(acme_world, f"shop.{ZONE}")

    assert created == "198.51.100.23"
    assert txt == ["token-123"]
    assert deleted.records == []
    assert feed.errors == []


def test_lightsail_update_replaces_the_address(acme_world: AcmeWorld, lightsail: LocalLightsail) -> None:
    client = lightsail_client(lightsail)
    with DnsFeed(acme_world.dns) as feed:
        feed.follow_lightsail(lightsail.state)
        client.create_domain_entry(domainName=ZONE, domainEntry={"name": f"api.{ZONE}", "type": "A",
                                                                 "target": "198.51.100.30"})
        entry_id = next(e.id for e in lightsail.domain_entries() if e.name == f"api.{ZONE}")
        client.update_domain_entry(domainName=ZONE, domainEntry={"id": entry_id, "name": f"api.{ZONE}",
                                                                 "type": "A", "target": "198.51.100.31"})
        answer = ask(acme_world, f"api.{ZONE}")
    lightsail_client(lightsail).delete_domain_entry(domainName=ZONE, domainEntry={"id": entry_id, "type": "A",
                                                                                   "name": f"api.{ZONE}",
                                                                                   "target": "198.51.100.31"})

    assert answer.values("A") == ["198.51.100.31"]


def test_stopped_feed_no_longer_follows(acme_world: AcmeWorld, lightsail: LocalLightsail) -> None:
    client = lightsail_client(lightsail)
    feed = DnsFeed(acme_world.dns)
    feed.follow_lightsail(lightsail.state)
    feed.stop()

    client.create_domain_entry(domainName=ZONE, domainEntry={"name": f"late.{ZONE}", "type": "A",
                                                             "target": "198.51.100.40"})

    assert ask(acme_world, f"late.{ZONE}").records == []


def test_route53_records_on_moto_are_answered(acme_world: AcmeWorld) -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        route53 = boto3.client("route53", region_name="us-east-1", endpoint_url=f"http://{host}:{port}",
                               aws_access_key_id="AKIAO4OMOTOTESTKEY01", aws_secret_access_key="moto-secret")
        zone_id = route53.create_hosted_zone(Name="example.net", CallerReference=str(uuid.uuid4()))["HostedZone"]["Id"]
        record = {"Name": "www.example.net.", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "198.51.100.50"}]}
        with DnsFeed(acme_world.dns, poll_interval=0.1) as feed:
            feed.follow_route53(route53)
            route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
                "Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]})
            eventually(lambda: ask(acme_world, "www.example.net").values("A") == ["198.51.100.50"],
                       "the Route 53 record to be answered")
            route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
                "Changes": [{"Action": "DELETE", "ResourceRecordSet": record}]})
            eventually(lambda: ask(acme_world, "www.example.net").records == [], "the record to be gone")
    finally:
        server.stop()

    assert feed.errors == []


def test_records_are_read_from_both_shapes() -> None:
    entries = [LocalDomainEntry(ZONE, "1", "Shop.Example.com", "A", "198.51.100.2"),
               LocalDomainEntry(ZONE, "2", "lb.example.com", "A", "my-lb-123.us-east-1.elb.amazonaws.com"),
               LocalDomainEntry(ZONE, "3", "www.example.com", "CNAME", "shop.example.com."),
               LocalDomainEntry(ZONE, "4", "example.com", "MX", "10 mail.example.com")]

    class FakeRoute53:
        def get_paginator(self, name: str) -> Any:
            pages = {"list_hosted_zones": [{"HostedZones": [{"Id": "/hostedzone/Z1"}]}],
                     "list_resource_record_sets": [{"ResourceRecordSets": [
                         {"Name": "txt.example.net.", "Type": "TXT",
                          "ResourceRecords": [{"Value": '"v=spf1" " -all"'}]},
                         {"Name": "alias.example.net.", "Type": "A", "AliasTarget": {"DNSName": "x."}}]}]}
            return type("Paginator", (), {"paginate": lambda self, **kw: pages[name]})()

    assert lightsail_records(entries) == {("shop.example.com", "A"): ("198.51.100.2",),
                                          ("www.example.com", "CNAME"): ("shop.example.com",)}
    assert route53_records(FakeRoute53()) == {("txt.example.net", "TXT"): ("v=spf1 -all",)}
