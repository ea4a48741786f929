"""Stage actions with fakes: the source stage's pin rule, and existing hosts given by name (provision, DNS)."""

from __future__ import annotations

import re

import pytest
from stage_fakes import (
    FINGERPRINT,
    FakeKube,
    RecordingConnector,
    RecordingSession,
    make_context,
    make_runtime,
    spec_body,
    static_resolver,
)

from o4o_operator import errors
from o4o_operator.models import DeploymentInstanceStatus, HostKeySource, ServerStatus, SourceSpec, SourceStatus
from o4o_operator.pipeline.stages import StageName
from o4o_operator.providers.dns import host_addresses, resolve_with_getaddrinfo

REPOSITORY = "https://example.com/o4o/platform.git"
OLD = "1" * 40
NEW = "2" * 40
RECORDED = SourceStatus(repository=REPOSITORY, revision="main", commit=OLD)


# ---- the pin rule ------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "pinned"), [
    (SourceSpec(repository=REPOSITORY, revision="main"), OLD),
    (SourceSpec(repository=REPOSITORY, revision="release-2"), None),
    (SourceSpec(repository=REPOSITORY, revision=NEW), None),
    (SourceSpec(repository="https://example.com/o4o/fork.git", revision="main"), None),
])
def test_the_recorded_commit_pins_only_the_source_it_was_resolved_from(source: SourceSpec,
                                                                       pinned: str | None) -> None:
    assert RECORDED.pinned_commit(source) == pinned


def test_a_status_from_before_repositories_were_recorded_pins_nothing() -> None:
    legacy = SourceStatus(revision="main", commit=OLD)

    assert legacy.pinned_commit(SourceSpec(repository=REPOSITORY, revision="main")) is None


def _pinned_in(script: str) -> str:
    match = re.search(r"^PINNED_COMMIT=(.*)$", script, re.MULTILINE)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize(("source", "pinned"), [
    ({"repository": REPOSITORY, "revision": "main"}, OLD),
    ({"repository": REPOSITORY, "revision": "v2.0.0"}, "''"),
    ({"repository": "https://example.com/o4o/fork.git", "revision": "main"}, "''"),
])
async def test_the_source_stage_resolves_a_changed_source_afresh_and_records_where_from(
        source: dict[str, str], pinned: str) -> None:
    session = RecordingSession({"commit": NEW})
    runtime = make_runtime(FakeKube(), RecordingConnector(session), static_resolver({}))
    status = DeploymentInstanceStatus(server=ServerStatus(name="shop-host.test", ip_address="198.51.100.5"),
                                      source=RECORDED)
    ctx = make_context(runtime, spec_body(source=source), status)

    await ctx.run(StageName.SOURCE)

    assert _pinned_in(session.scripts[0]) == pinned
    assert ctx.status.source == SourceStatus(repository=source["repository"], revision=source["revision"],
                                             commit=NEW)


# ---- existing hosts given by name ----------------------------------------------------------


async def test_an_existing_host_given_by_name_is_recorded_with_its_addresses() -> None:
    resolver = static_resolver({"shop-host.test": ["198.51.100.9", "198.51.100.4"]})
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), resolver)
    ctx = make_context(runtime, spec_body(), DeploymentInstanceStatus())

    message = await ctx.run(StageName.PROVISION)

    assert ctx.status.server.name == "shop-host.test"
    assert ctx.status.server.ip_address == "198.51.100.4"
    assert ctx.status.server.ip_addresses == ("198.51.100.4", "198.51.100.9")
    assert "198.51.100.4, 198.51.100.9" in message


async def test_an_existing_host_that_does_not_resolve_waits_naming_the_field() -> None:
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), static_resolver({}))
    ctx = make_context(runtime, spec_body(), DeploymentInstanceStatus())

    with pytest.raises(errors.TransientError) as caught:
        await ctx.run(StageName.PROVISION)

    assert caught.value.reason == "HostNotResolving"
    assert "spec.provider.existing.host" in caught.value.message


@pytest.mark.parametrize(("host", "kept"), [("shop-host.test", FINGERPRINT), ("other-host.test", None)])
async def test_the_host_key_pin_stays_with_the_host_it_was_seen_on(host: str, kept: str | None) -> None:
    resolver = static_resolver({"shop-host.test": ["198.51.100.4"], "other-host.test": ["198.51.100.6"]})
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), resolver)
    pinned = DeploymentInstanceStatus(server=ServerStatus(name="shop-host.test", ip_address="198.51.100.4",
                                                          host_key_fingerprint=FINGERPRINT,
                                                          host_key_source=HostKeySource.TRUSTED_ON_FIRST_USE))
    ctx = make_context(runtime, spec_body(provider={"existing": {"host": host}}), pinned)

    await ctx.run(StageName.PROVISION)

    assert ctx.status.server.host_key_fingerprint == kept


@pytest.mark.parametrize("domain_resolves_to", [["198.51.100.9"], ["198.51.100.4", "198.51.100.9"]])
async def test_dns_none_passes_when_the_domain_resolves_to_any_of_the_hosts_addresses(
        domain_resolves_to: list[str]) -> None:
    resolver = static_resolver({"shop-host.test": ["198.51.100.4", "198.51.100.9"],
                                "shop.example.com": domain_resolves_to})
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), resolver)
    ctx = make_context(runtime, spec_body(), DeploymentInstanceStatus())
    await ctx.run(StageName.PROVISION)

    message = await ctx.run(StageName.DNS)

    assert message.startswith("Checked that shop.example.com resolves to")


async def test_dns_none_fails_when_the_domain_points_elsewhere_naming_both_sides() -> None:
    resolver = static_resolver({"shop-host.test": ["198.51.100.4"], "shop.example.com": ["192.0.2.1"]})
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), resolver)
    ctx = make_context(runtime, spec_body(), DeploymentInstanceStatus())
    await ctx.run(StageName.PROVISION)

    with pytest.raises(errors.TransientError) as caught:
        await ctx.run(StageName.DNS)

    assert caught.value.reason == "DnsNotResolving"
    assert "192.0.2.1" in caught.value.message and "198.51.100.4" in caught.value.message


async def test_an_existing_host_named_localhost_is_resolved_by_the_system_resolver() -> None:
    """The real resolver, on a loopback name only."""
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), resolve_with_getaddrinfo)
    ctx = make_context(runtime, spec_body(provider={"existing": {"host": "localhost"}}), DeploymentInstanceStatus())

    await ctx.run(StageName.PROVISION)

    assert "127.0.0.1" in ctx.status.server.ip_addresses
    assert ctx.status.server.ip_address == ctx.status.server.ip_addresses[0]


@pytest.mark.parametrize(("host", "expected"), [("198.51.100.7", ("198.51.100.7",)),
                                               ("2001:db8::1", ("2001:db8::1",))])
async def test_an_ip_literal_is_its_own_address_without_a_lookup(host: str, expected: tuple[str, ...]) -> None:
    async def refuse(name: str) -> list[str]:
        raise AssertionError(f"looked up {name}")

    assert await host_addresses(host, refuse) == expected
