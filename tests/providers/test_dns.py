"""LightsailDns against the local endpoint (always via us-east-1), and NoDns with an injected resolver."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import boto3
import pytest

from o4o_operator import errors
from o4o_operator.providers.aws import ClientSettings
from o4o_operator.providers.dns import LightsailDns, NoDns, Route53Dns, best_zone, resolve_with_getaddrinfo
from o4o_operator.providers.ownership import RecordOwner
from o4o_operator.providers.protocols import DnsProvider
from o4o_operator.testing import LocalLightsail

OWNER = RecordOwner("default", "shop", "uid-shop")
ZONE = "example.com"
DOMAIN = "shop.example.com"


@pytest.fixture
def lightsail_dns(aws_settings: ClientSettings, local_lightsail: LocalLightsail) -> LightsailDns:
    local_lightsail.add_domain(ZONE)
    return LightsailDns(aws_settings)


def a_records(local: LocalLightsail) -> list[tuple[str, str]]:
    return [(e.name, e.target) for e in local.domain_entries() if e.type == "A"]


def txt_records(local: LocalLightsail) -> list[tuple[str, str]]:
    return [(e.name, e.target) for e in local.domain_entries() if e.type == "TXT"]


async def test_upsert_twice_updates_the_one_record_instead_of_adding_another(
        lightsail_dns: LightsailDns, local_lightsail: LocalLightsail) -> None:
    await lightsail_dns.upsert_a_record(DOMAIN, None, "192.0.2.10", ttl=300, owner=OWNER)
    await lightsail_dns.upsert_a_record(DOMAIN, None, "192.0.2.10", ttl=300, owner=OWNER)
    await lightsail_dns.upsert_a_record(DOMAIN, ZONE, "192.0.2.11", ttl=300, owner=OWNER)

    assert a_records(local_lightsail) == [(DOMAIN, "192.0.2.11")]
    assert txt_records(local_lightsail) == [(DOMAIN, OWNER.txt_value())]
    assert local_lightsail.request_log.count("CreateDomainEntry") == 2  # the claim and the A record, once each
    assert local_lightsail.request_log.count("UpdateDomainEntry") == 1


async def test_delete_removes_the_record_and_a_missing_one_is_success(
        lightsail_dns: LightsailDns, local_lightsail: LocalLightsail) -> None:
    await lightsail_dns.upsert_a_record(DOMAIN, ZONE, "192.0.2.10", ttl=300, owner=OWNER)

    await lightsail_dns.delete_a_record(DOMAIN, ZONE, "192.0.2.10", OWNER)
    await lightsail_dns.delete_a_record(DOMAIN, ZONE, "192.0.2.10", OWNER)
    await lightsail_dns.delete_a_record(DOMAIN, "no-such-zone.org", None, OWNER)

    assert a_records(local_lightsail) == []


async def test_delete_leaves_a_record_that_points_elsewhere_now(
        lightsail_dns: LightsailDns, local_lightsail: LocalLightsail) -> None:
    await lightsail_dns.upsert_a_record(DOMAIN, ZONE, "192.0.2.99", ttl=300, owner=OWNER)

    await lightsail_dns.delete_a_record(DOMAIN, ZONE, "192.0.2.10", OWNER)

    assert a_records(local_lightsail) == [(DOMAIN, "192.0.2.99")]


async def test_apex_record_and_the_zone_found_by_longest_suffix(
        aws_settings: ClientSettings, local_lightsail: LocalLightsail) -> None:
    local_lightsail.add_domain("com.example")  # a decoy that is not a suffix
    local_lightsail.add_domain(ZONE)
    local_lightsail.add_domain(f"eu.{ZONE}")
    dns = LightsailDns(aws_settings)

    await dns.upsert_a_record(ZONE, None, "192.0.2.1", ttl=60, owner=OWNER)
    await dns.upsert_a_record(f"shop.eu.{ZONE}", None, "192.0.2.2", ttl=60, owner=OWNER)

    entries = {(e.domain, e.name, e.target) for e in local_lightsail.domain_entries() if e.type == "A"}
    assert entries == {(ZONE, ZONE, "192.0.2.1"), (f"eu.{ZONE}", f"shop.eu.{ZONE}", "192.0.2.2")}


async def test_a_missing_zone_is_permanent(aws_settings: ClientSettings) -> None:
    dns = LightsailDns(aws_settings)

    with pytest.raises(errors.PermanentError) as caught:
        await dns.upsert_a_record(DOMAIN, None, "192.0.2.10", ttl=300, owner=OWNER)

    assert caught.value.reason == "DnsZoneNotFound" and DOMAIN in caught.value.message


def test_every_dns_provider_satisfies_the_protocol(aws_settings: ClientSettings) -> None:
    # mypy checks each assignment against the Protocol
    providers: list[DnsProvider] = [LightsailDns(aws_settings), Route53Dns(aws_settings), NoDns()]

    assert all(callable(p.upsert_a_record) and callable(p.delete_a_record) for p in providers)


def test_best_zone_prefers_the_longest_match() -> None:
    zones = ["example.com", "eu.example.com.", "ample.com"]

    assert best_zone("a.eu.example.com", zones) == "eu.example.com."
    assert best_zone("Example.COM.", zones) == "example.com"
    assert best_zone("example.org", zones) is None


def resolver(answers: dict[str, list[str]]) -> object:
    async def resolve(domain: str) -> Collection[str]:
        return answers.get(domain, [])
    return resolve


async def test_no_dns_accepts_a_name_that_already_resolves_to_the_server() -> None:
    dns = NoDns(resolver({DOMAIN: ["192.0.2.7", "192.0.2.10"]}))  # type: ignore[arg-type]

    await dns.upsert_a_record(DOMAIN, None, "192.0.2.10", ttl=300, owner=OWNER)
    await dns.delete_a_record(DOMAIN, None, "192.0.2.10", OWNER)


@pytest.mark.parametrize(("seen", "described"), [([], "no address"), (["198.51.100.4"], "198.51.100.4")])
async def test_no_dns_names_the_domain_and_what_it_resolves_to(seen: list[str], described: str) -> None:
    dns = NoDns(resolver({DOMAIN: seen}))  # type: ignore[arg-type]

    with pytest.raises(errors.TransientError) as caught:
        await dns.upsert_a_record(DOMAIN, None, "192.0.2.10", ttl=300, owner=OWNER)

    assert caught.value.reason == "DnsNotResolving"
    assert DOMAIN in caught.value.message and described in caught.value.message
    assert "192.0.2.10" in caught.value.message


async def test_default_resolver_uses_the_system_resolver() -> None:
    assert "127.0.0.1" in await resolve_with_getaddrinfo("localhost")
    assert await resolve_with_getaddrinfo("name.invalid") == []


# ---- ownership -----------------------------------------------------------------------------

OTHER = RecordOwner("team-prod", "shop", "uid-other")


def dns_client(settings: ClientSettings) -> Any:
    """A plain boto3 client for Lightsail DNS (us-east-1), to make records by hand."""
    assert settings.credentials is not None
    return boto3.client("lightsail", region_name="us-east-1", endpoint_url=settings.endpoint_url,
                        aws_access_key_id=settings.credentials.access_key_id,
                        aws_secret_access_key=settings.credentials.secret_access_key)


async def test_a_second_tenant_claiming_the_domain_stalls_and_the_first_keeps_its_record(
        lightsail_dns: LightsailDns, local_lightsail: LocalLightsail) -> None:
    await lightsail_dns.upsert_a_record(DOMAIN, ZONE, "192.0.2.10", ttl=300, owner=OWNER)

    with pytest.raises(errors.InvalidSpecError) as caught:
        await lightsail_dns.upsert_a_record(DOMAIN, ZONE, "192.0.2.66", ttl=300, owner=OTHER)
    await lightsail_dns.delete_a_record(DOMAIN, ZONE, None, OTHER)
    await lightsail_dns.delete_a_record(DOMAIN, ZONE, "192.0.2.10", OTHER)

    assert (caught.value.reason, caught.value.field) == ("DomainOwnedElsewhere", "spec.domain")
    assert "team" not in caught.value.message  # another tenant's name is not told
    assert a_records(local_lightsail) == [(DOMAIN, "192.0.2.10")]
    assert txt_records(local_lightsail) == [(DOMAIN, OWNER.txt_value())]


async def test_a_hand_made_a_record_is_never_overwritten_or_deleted(
        lightsail_dns: LightsailDns, local_lightsail: LocalLightsail, aws_settings: ClientSettings) -> None:
    raw = dns_client(aws_settings)
    raw.create_domain_entry(domainName=ZONE, domainEntry={"name": DOMAIN, "type": "A", "target": "192.0.2.200"})
    raw.create_domain_entry(domainName=ZONE, domainEntry={"name": DOMAIN, "type": "TXT", "target": '"v=spf1 -all"'})

    with pytest.raises(errors.InvalidSpecError) as caught:
        await lightsail_dns.upsert_a_record(DOMAIN, ZONE, "192.0.2.10", ttl=300, owner=OWNER)
    await lightsail_dns.delete_a_record(DOMAIN, ZONE, None, OWNER)
    await lightsail_dns.delete_a_record(DOMAIN, ZONE, "192.0.2.200", OWNER)

    assert (caught.value.reason, caught.value.field) == ("DomainOwnedElsewhere", "spec.domain")
    assert a_records(local_lightsail) == [(DOMAIN, "192.0.2.200")]
    assert txt_records(local_lightsail) == [(DOMAIN, '"v=spf1 -all"')]
    assert "UpdateDomainEntry" not in local_lightsail.request_log
    assert "DeleteDomainEntry" not in local_lightsail.request_log


async def test_the_owner_deletes_its_a_record_and_claim_and_nothing_else(
        lightsail_dns: LightsailDns, local_lightsail: LocalLightsail) -> None:
    await lightsail_dns.upsert_a_record(DOMAIN, ZONE, "192.0.2.10", ttl=300, owner=OWNER)
    await lightsail_dns.upsert_a_record(f"api.{ZONE}", ZONE, "192.0.2.11", ttl=300, owner=OTHER)

    await lightsail_dns.delete_a_record(DOMAIN, ZONE, "192.0.2.10", OWNER)

    assert a_records(local_lightsail) == [(f"api.{ZONE}", "192.0.2.11")]
    assert txt_records(local_lightsail) == [(f"api.{ZONE}", OTHER.txt_value())]


async def test_a_claim_left_by_a_crash_is_finished_by_the_next_attempt(
        lightsail_dns: LightsailDns, local_lightsail: LocalLightsail) -> None:
    local_lightsail.faults.lose_response_once.add("CreateDomainEntry")  # the claim is made, its answer lost
    with pytest.raises(errors.StageError):
        await lightsail_dns.upsert_a_record(DOMAIN, ZONE, "192.0.2.10", ttl=300, owner=OWNER)

    await lightsail_dns.upsert_a_record(DOMAIN, ZONE, "192.0.2.10", ttl=300, owner=OWNER)

    assert a_records(local_lightsail) == [(DOMAIN, "192.0.2.10")]
    assert txt_records(local_lightsail) == [(DOMAIN, OWNER.txt_value())]


def test_the_local_lightsail_wants_txt_targets_in_quotes_as_aws_does(
        local_lightsail: LocalLightsail, aws_settings: ClientSettings) -> None:
    local_lightsail.add_domain(ZONE)
    raw = dns_client(aws_settings)

    with pytest.raises(raw.exceptions.InvalidInputException, match="enclosed in quotation marks"):
        raw.create_domain_entry(domainName=ZONE, domainEntry={"name": DOMAIN, "type": "TXT", "target": "bare"})
    raw.create_domain_entry(domainName=ZONE, domainEntry={"name": DOMAIN, "type": "TXT", "target": '"a"'})
    raw.create_domain_entry(domainName=ZONE, domainEntry={"name": DOMAIN, "type": "TXT", "target": '"b"'})

    assert sorted(e.target for e in local_lightsail.domain_entries() if e.type == "TXT") == ['"a"', '"b"']
