"""LightsailDns against the local endpoint (always via us-east-1), and NoDns with an injected resolver."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from o4o_operator import errors
from o4o_operator.providers.aws import ClientSettings
from o4o_operator.providers.dns import LightsailDns, NoDns, Route53Dns, best_zone, resolve_with_getaddrinfo
from o4o_operator.providers.protocols import DnsProvider
from o4o_operator.testing import LocalLightsail

ZONE = "example.com"
DOMAIN = "shop.example.com"


@pytest.fixture
def lightsail_dns(aws_settings: ClientSettings, local_lightsail: LocalLightsail) -> LightsailDns:
    local_lightsail.add_domain(ZONE)
    return LightsailDns(aws_settings)


def a_records(local: LocalLightsail) -> list[tuple[str, str]]:
    return [(e.name, e.target) for e in local.domain_entries() if e.type == "A"]


async def test_upsert_twice_updates_the_one_record_instead_of_adding_another(
        lightsail_dns: LightsailDns, local_lightsail: LocalLightsail) -> None:
    await lightsail_dns.upsert_a_record(DOMAIN, None, "192.0.2.10", ttl=300)
    await lightsail_dns.upsert_a_record(DOMAIN, None, "192.0.2.10", ttl=300)
    await lightsail_dns.upsert_a_record(DOMAIN, ZONE, "192.0.2.11", ttl=300)

    assert a_records(local_lightsail) == [(DOMAIN, "192.0.2.11")]
    assert local_lightsail.request_log.count("CreateDomainEntry") == 1
    assert local_lightsail.request_log.count("UpdateDomainEntry") == 1


async def test_delete_removes_the_record_and_a_missing_one_is_success(
        lightsail_dns: LightsailDns, local_lightsail: LocalLightsail) -> None:
    await lightsail_dns.upsert_a_record(DOMAIN, ZONE, "192.0.2.10", ttl=300)

    await lightsail_dns.delete_a_record(DOMAIN, ZONE, "192.0.2.10")
    await lightsail_dns.delete_a_record(DOMAIN, ZONE, "192.0.2.10")
    await lightsail_dns.delete_a_record(DOMAIN, "no-such-zone.org", None)

    assert a_records(local_lightsail) == []


async def test_delete_leaves_a_record_that_points_elsewhere_now(
        lightsail_dns: LightsailDns, local_lightsail: LocalLightsail) -> None:
    await lightsail_dns.upsert_a_record(DOMAIN, ZONE, "192.0.2.99", ttl=300)

    await lightsail_dns.delete_a_record(DOMAIN, ZONE, "192.0.2.10")

    assert a_records(local_lightsail) == [(DOMAIN, "192.0.2.99")]


async def test_apex_record_and_the_zone_found_by_longest_suffix(
        aws_settings: ClientSettings, local_lightsail: LocalLightsail) -> None:
    local_lightsail.add_domain("com.example")  # a decoy that is not a suffix
    local_lightsail.add_domain(ZONE)
    local_lightsail.add_domain(f"eu.{ZONE}")
    dns = LightsailDns(aws_settings)

    await dns.upsert_a_record(ZONE, None, "192.0.2.1", ttl=60)
    await dns.upsert_a_record(f"shop.eu.{ZONE}", None, "192.0.2.2", ttl=60)

    entries = {(e.domain, e.name, e.target) for e in local_lightsail.domain_entries()}
    assert entries == {(ZONE, ZONE, "192.0.2.1"), (f"eu.{ZONE}", f"shop.eu.{ZONE}", "192.0.2.2")}


async def test_a_missing_zone_is_permanent(aws_settings: ClientSettings) -> None:
    dns = LightsailDns(aws_settings)

    with pytest.raises(errors.PermanentError) as caught:
        await dns.upsert_a_record(DOMAIN, None, "192.0.2.10", ttl=300)

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

    await dns.upsert_a_record(DOMAIN, None, "192.0.2.10", ttl=300)
    await dns.delete_a_record(DOMAIN, None, "192.0.2.10")


@pytest.mark.parametrize(("seen", "described"), [([], "no address"), (["198.51.100.4"], "198.51.100.4")])
async def test_no_dns_names_the_domain_and_what_it_resolves_to(seen: list[str], described: str) -> None:
    dns = NoDns(resolver({DOMAIN: seen}))  # type: ignore[arg-type]

    with pytest.raises(errors.TransientError) as caught:
        await dns.upsert_a_record(DOMAIN, None, "192.0.2.10", ttl=300)

    assert caught.value.reason == "DnsNotResolving"
    assert DOMAIN in caught.value.message and described in caught.value.message
    assert "192.0.2.10" in caught.value.message


async def test_default_resolver_uses_the_system_resolver() -> None:
    assert "127.0.0.1" in await resolve_with_getaddrinfo("localhost")
    assert await resolve_with_getaddrinfo("name.invalid") == []
