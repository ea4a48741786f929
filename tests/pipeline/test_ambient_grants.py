"""O4O_AMBIENT_GRANTS: which namespaces may use the operator's own cloud identity, and for which zones.

Pure: the parser (its errors name the setting) and the decisions (a refusal names the field to fix).
"""

from __future__ import annotations

from typing import Any

import pytest

from o4o_operator.models import DnsSpec
from o4o_operator.pipeline.ambient_grants import AmbientGrants, Grant, dns_refusal, provider_refusal

GRANTS = AmbientGrants.parse(" team-a = a-corp.com, Shop.Example.com. ; team-b=b.example;dev-*=Z0123ABC;ops=")


def test_the_setting_parses_into_namespaces_and_their_zones() -> None:
    assert AmbientGrants((
        Grant("team-a", frozenset({"a-corp.com", "shop.example.com"})), Grant("team-b", frozenset({"b.example"})),
        Grant("dev-*", frozenset({"Z0123ABC"})), Grant("ops", frozenset()))) == GRANTS
    assert AmbientGrants.parse("") == AmbientGrants.parse(" ; ") == AmbientGrants()
    assert GRANTS.zones_for("team-a") == {"a-corp.com", "shop.example.com"}
    assert GRANTS.zones_for("dev-7") == {"Z0123ABC"}  # a glob
    assert GRANTS.zones_for("ops") == frozenset()  # the identity, and no zone
    assert GRANTS.zones_for("team-c") is None and GRANTS.zones_for("team-a-prod") is None
    both = AmbientGrants.parse("*=example.com;team-a=a-corp.com")
    assert both.zones_for("team-a") == {"example.com", "a-corp.com"} and both.zones_for("x") == {"example.com"}


@pytest.mark.parametrize(("raw", "complaint"), [
    ("team-a", "'team-a' is not NAMESPACE=ZONE[,ZONE...]"),
    ("Team_A=a-corp.com", "'Team_A' is not a namespace name or glob"),
    ("=a-corp.com", "'' is not a namespace name or glob"),
    ("team-a=a corp.com", "'a corp.com' (for namespace 'team-a') is neither a DNS zone name"),
    ("team-a=a-corp.com;team-a=b.example", "namespace 'team-a' is listed twice"),
])
def test_a_bad_setting_names_the_setting(raw: str, complaint: str) -> None:
    with pytest.raises(ValueError, match="O4O_AMBIENT_GRANTS: ") as caught:
        AmbientGrants.parse(raw)
    assert complaint in str(caught.value)


def test_the_identity_serves_servers_only_in_granted_namespaces_unless_the_instance_brings_credentials() -> None:
    assert provider_refusal(GRANTS, "team-a", has_credentials=False) is None
    assert provider_refusal(GRANTS, "ops", has_credentials=False) is None
    assert provider_refusal(AmbientGrants(), "team-a", has_credentials=True) is None
    refusal = provider_refusal(GRANTS, "team-c", has_credentials=False)
    assert refusal is not None
    assert (refusal.field, refusal.reason) == ("spec.provider.lightsail.credentialsSecretRef",
                                               "AmbientIdentityNotGranted")
    assert "'team-c' is not granted" in refusal.message and "team-a" not in refusal.message  # no other tenant's
    assert provider_refusal(AmbientGrants(), "team-a", has_credentials=False) is not None  # nothing by default


def _dns(namespace: str, domain: str, *, credentials: bool = False, **dns: Any) -> tuple[str, str] | None:
    refusal = dns_refusal(GRANTS, namespace, domain, DnsSpec.model_validate({"provider": "lightsail", **dns}),
                          has_credentials=credentials)
    return None if refusal is None else (refusal.field, refusal.reason)


def test_dns_goes_only_into_the_zones_granted_to_the_namespace() -> None:
    assert _dns("team-a", "login.a-corp.com", zone="a-corp.com") is None
    assert _dns("team-a", "shop.example.com", zone="SHOP.example.com.") is None
    # Tenant b cannot publish login.a-corp.com in a-corp.com through the operator's identity.
    assert _dns("team-b", "login.a-corp.com", zone="a-corp.com") == ("spec.dns.zone", "ZoneNotGranted")
    assert _dns("team-c", "login.a-corp.com", zone="a-corp.com") == ("spec.dns.zone", "ZoneNotGranted")
    assert _dns("ops", "x.example.com", zone="example.com") == ("spec.dns.zone", "ZoneNotGranted")
    # No zone named: the provider would pick the closest zone of the operator's account.
    assert _dns("team-a", "login.a-corp.com") == ("spec.dns.zone", "ZoneNotGranted")
    # A granted zone cannot carry a name outside it.
    assert _dns("team-b", "login.a-corp.com", zone="b.example") == ("spec.dns.zone", "ZoneNotGranted")
    assert _dns("dev-1", "x.example.com", hostedZoneId="Z0123ABC") is None
    assert _dns("team-a", "x.a-corp.com", zone="a-corp.com", hostedZoneId="Z0123ABC") == \
        ("spec.dns.hostedZoneId", "ZoneNotGranted")


def test_dns_with_the_instances_own_credentials_or_managed_elsewhere_needs_no_grant() -> None:
    assert _dns("team-c", "login.a-corp.com", zone="a-corp.com", credentials=True) is None
    refusal = dns_refusal(AmbientGrants(), "team-c", "x.a-corp.com", DnsSpec(), has_credentials=False)
    assert refusal is None  # provider none: nothing is written


def test_a_refusal_says_what_the_namespace_is_granted_and_how_to_bring_credentials() -> None:
    refusal = dns_refusal(GRANTS, "team-b", "login.a-corp.com",
                          DnsSpec.model_validate({"provider": "route53", "zone": "a-corp.com"}),
                          has_credentials=False)
    assert refusal is not None
    assert refusal.message == (
        "spec.dns.zone: zone a-corp.com is not granted to namespace 'team-b' (O4O_AMBIENT_GRANTS grants it: "
        "b.example); use a granted zone or name a Secret with this namespace's AWS keys in "
        "spec.provider.lightsail.credentialsSecretRef")
