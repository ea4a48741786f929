"""Which namespaces may use the operator's own cloud identity, and for which DNS zones.

The operator's own identity (IRSA web identity, an instance profile, its environment) is every tenant's
unless it is granted, as cert-manager separates a ClusterIssuer from a namespace's Issuer: an instance
that names no ``spec.provider.lightsail.credentialsSecretRef`` uses it only if the operator setting
``O4O_AMBIENT_GRANTS`` lists its namespace, and writes DNS records only in the zones listed for it.

Format: ``NAMESPACE=ZONE,ZONE;NAMESPACE=ZONE`` (spaces around the separators allowed), e.g.
``team-a=a-corp.com,shop.example.com;team-b=b.example``. NAMESPACE is a namespace's name or a glob
(``*``, ``?``; ``*`` matches every namespace); a namespace matched by several entries gets the zones of
all. ZONE is a zone's name (case and a trailing dot do not matter) or a Route 53 hosted zone ID (upper-case
letters and digits, as ``spec.dns.hostedZoneId``); ``team-c=`` grants the identity for servers and no
zone. Unset or empty: no grants, so every instance brings its own credentials.

Owns: :class:`AmbientGrants` (parsed from the setting; a parse error names it) and the decisions
:func:`provider_refusal` and :func:`dns_refusal` (a refusal names the field to fix). Purely
computational: no I/O.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re

from o4o_operator.errors import InvalidSpecError
from o4o_operator.models import DnsProviderKind, DnsSpec

SETTING = "O4O_AMBIENT_GRANTS"
CREDENTIALS_FIELD = "spec.provider.lightsail.credentialsSecretRef"
_NAMESPACE_GLOB = re.compile(r"^[a-z0-9*?]([-a-z0-9*?]{0,61}[a-z0-9*?])?$")
_ZONE_NAME = re.compile(r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HOSTED_ZONE_ID = re.compile(r"^[A-Z0-9]{1,64}$")


def zone_key(zone: str) -> str:
    """How a zone is compared: a hosted zone ID as it is, a zone name in lower case without its final dot."""
    zone = zone.strip().removeprefix("/hostedzone/")
    return zone if _HOSTED_ZONE_ID.fullmatch(zone) else zone.lower().rstrip(".")


@dataclasses.dataclass(frozen=True)
class Grant:
    namespace: str
    """A namespace's name, or a glob of them."""
    zones: frozenset[str]
    """Zone names and hosted zone IDs, as :func:`zone_key` gives them."""


@dataclasses.dataclass(frozen=True)
class AmbientGrants:
    grants: tuple[Grant, ...] = ()

    @classmethod
    def parse(cls, raw: str, setting: str = SETTING) -> AmbientGrants:
        """The grants a value of the setting lists; anything else is a ValueError naming the setting."""
        grants: list[Grant] = []
        for entry in (part.strip() for part in raw.split(";")):
            if not entry:
                continue
            namespace, equals, zones = (part.strip() for part in entry.partition("="))
            if not equals:
                raise ValueError(f"{setting}: {entry!r} is not NAMESPACE=ZONE[,ZONE...] (entries are separated "
                                 "by ';', e.g. team-a=a-corp.com,shop.example.com;team-b=b.example)")
            if not _NAMESPACE_GLOB.fullmatch(namespace):
                raise ValueError(f"{setting}: {namespace!r} is not a namespace name or glob (lowercase letters, "
                                 "digits, '-', '*' and '?')")
            if namespace in (grant.namespace for grant in grants):
                raise ValueError(f"{setting}: namespace {namespace!r} is listed twice; list its zones once")
            keys: set[str] = set()
            for zone in (part.strip() for part in zones.split(",")):
                key = zone_key(zone)
                if zone and not (_HOSTED_ZONE_ID.fullmatch(key) or _ZONE_NAME.fullmatch(key)):
                    raise ValueError(f"{setting}: {zone!r} (for namespace {namespace!r}) is neither a DNS zone "
                                     "name nor a Route 53 hosted zone ID")
                if zone:
                    keys.add(key)
            grants.append(Grant(namespace, frozenset(keys)))
        return cls(tuple(grants))

    def zones_for(self, namespace: str) -> frozenset[str] | None:
        """The zones granted to ``namespace`` (possibly none); None: it may not use the identity at all."""
        matching = [grant for grant in self.grants if fnmatch.fnmatchcase(namespace, grant.namespace)]
        if not matching:
            return None
        return frozenset().union(*(grant.zones for grant in matching))


def provider_refusal(grants: AmbientGrants, namespace: str, *, has_credentials: bool) -> InvalidSpecError | None:
    """Why an instance in ``namespace`` may not create servers with the operator's identity (None: it may)."""
    if has_credentials or grants.zones_for(namespace) is not None:
        return None
    return InvalidSpecError(CREDENTIALS_FIELD, f"namespace {namespace!r} is not granted the operator's own cloud "
                            f"identity ({SETTING}); name a Secret in this namespace holding its AWS keys",
                            reason="AmbientIdentityNotGranted")


def _inside(domain: str, zone: str) -> bool:
    return domain == zone or domain.endswith("." + zone)


def dns_refusal(grants: AmbientGrants, namespace: str, domain: str, dns: DnsSpec, *,
                has_credentials: bool) -> InvalidSpecError | None:
    """Why an instance in ``namespace`` may not write ``domain`` through the operator's identity (None: it may).

    Only a zone named in the spec can be granted: without ``spec.dns.zone`` (or ``hostedZoneId``) the provider
    would pick whichever zone of the operator's account is closest. Decided before anything is written.
    """
    if dns.provider is DnsProviderKind.NONE or has_credentials:
        return None
    zones = grants.zones_for(namespace) or frozenset()
    granted = ", ".join(sorted(zones)) or "none"
    bring = f"or name a Secret with this namespace's AWS keys in {CREDENTIALS_FIELD}"
    if dns.hosted_zone_id:
        if zone_key(dns.hosted_zone_id) in zones:
            return None
        return InvalidSpecError("spec.dns.hostedZoneId", f"hosted zone {dns.hosted_zone_id} is not granted to "
                                f"namespace {namespace!r} ({SETTING} grants it: {granted}); use a granted zone "
                                f"{bring}", reason="ZoneNotGranted")
    if not dns.zone:
        return InvalidSpecError("spec.dns.zone", f"must name the zone: the operator's own identity writes only "
                                f"the zones granted to namespace {namespace!r} ({SETTING}: {granted}); name one "
                                f"{bring}", reason="ZoneNotGranted")
    zone = zone_key(dns.zone)
    if zone not in zones:
        return InvalidSpecError("spec.dns.zone", f"zone {zone} is not granted to namespace {namespace!r} "
                                f"({SETTING} grants it: {granted}); use a granted zone {bring}",
                                reason="ZoneNotGranted")
    if not _inside(domain.lower().rstrip("."), zone):
        return InvalidSpecError("spec.dns.zone", f"{domain} does not lie in zone {zone}", reason="ZoneNotGranted")
    return None
