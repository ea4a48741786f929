"""DNS providers: point a domain's A record at the server, and take it away again, owning both.

Owns: :class:`LightsailDns` (Lightsail domains, whose API exists only in us-east-1),
:class:`Route53Dns` (change batches, waiting for INSYNC) and :class:`NoDns` (someone
else manages DNS: only check that the name resolves to one of the server's addresses).
All implement ``protocols.DnsProvider``; all are idempotent, and deleting a record
that is already gone is success. Ownership works as external-dns's TXT registry does:
beside each A record we manage sits a TXT record of the same name whose value names the
owning instance (:meth:`RecordOwner.txt_value`). An A record without our TXT is someone
else's: it is never overwritten or deleted (:func:`claim` refuses, naming ``spec.domain``).
Also :func:`host_addresses`: the addresses of an existing host given by name.

Must not: touch records other than the A record and our own TXT value for the domain
(and, on delete, only an A record still pointing at our IP when the IP is given),
create or delete zones, log credentials, or know Kopf.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from o4o_operator import errors
from o4o_operator.providers.aws import AwsClient, ClientSettings, CloudCallError
from o4o_operator.providers.ownership import RecordOwner, txt_owners

logger = logging.getLogger(__name__)

LIGHTSAIL_DNS_REGION = "us-east-1"
ADDRESS_TYPES = frozenset({"A", "AAAA", "CNAME"})
"""Record types that say where a name points: any of them without our TXT means someone else's name."""
Resolver = Callable[[str], Awaitable[Collection[str]]]
"""Returns the addresses a name resolves to right now (empty if it does not resolve)."""


def normalise_name(name: str) -> str:
    """Lower-case, without the trailing dot, with Route 53's ``\\052`` wildcard spelled ``*``."""
    return name.strip().rstrip(".").lower().replace("\\052", "*")


def best_zone(domain: str, zones: Collection[str]) -> str | None:
    """The longest zone that ``domain`` is, or lies under."""
    name = normalise_name(domain)
    matches = [z for z in zones if name == normalise_name(z) or name.endswith("." + normalise_name(z))]
    return max(matches, key=lambda z: len(normalise_name(z)), default=None)


def claim(domain: str, owner: RecordOwner, *, has_address: bool, txt_values: list[str]) -> bool:
    """True if ``owner`` already owns ``domain``, False if nobody does (the caller may claim it).
    Raises ``DomainOwnedElsewhere`` if another instance does, or an A record exists without our TXT."""
    owners = txt_owners(txt_values)
    if owner.uid in owners:
        return True
    if owners:
        raise errors.InvalidSpecError("spec.domain", f"another DeploymentInstance owns the DNS record for {domain}; "
                                      "choose another domain", reason="DomainOwnedElsewhere")
    if has_address:
        raise errors.InvalidSpecError(
            "spec.domain", f"an A record for {domain} exists that the operator did not make; it is left as it is. "
            "Delete it, or choose another domain", reason="DomainOwnedElsewhere")
    return False


async def _call(client: AwsClient, operation: str, **params: Any) -> dict[str, Any]:
    try:
        return await client.call(operation, **params)
    except CloudCallError as failure:
        raise failure.to_stage_error() from None


class LightsailDns:
    """A records in a Lightsail DNS zone (a Lightsail "domain"), always via us-east-1."""

    def __init__(self, settings: ClientSettings | None = None, *, client: AwsClient | None = None) -> None:
        self._client = client or AwsClient("lightsail", LIGHTSAIL_DNS_REGION, settings)

    async def _zone(self, domain: str, zone: str | None) -> str | None:
        if zone:
            return normalise_name(zone)
        names: list[str] = []
        page: dict[str, Any] = {}
        while True:
            response = await _call(self._client, "get_domains", **page)
            names.extend(d["name"] for d in response.get("domains", []))
            if not response.get("nextPageToken"):
                break
            page = {"pageToken": response["nextPageToken"]}
        return best_zone(domain, names)

    async def _entries(self, zone: str, domain: str) -> list[dict[str, Any]] | None:
        """The entries named ``domain`` in ``zone``; None if the zone does not exist."""
        try:
            response = await self._client.call("get_domain", domainName=zone)
        except CloudCallError as failure:
            if failure.is_not_found:
                return None
            raise failure.to_stage_error() from None
        name = normalise_name(domain)
        return [e for e in response["domain"].get("domainEntries", [])
                if normalise_name(str(e.get("name", ""))) == name]

    async def upsert_a_record(self, domain: str, zone: str | None, ip: str, ttl: int,
                              owner: RecordOwner) -> None:
        """Lightsail DNS has no per-record TTL, so ``ttl`` is not used."""
        zone_name = await self._zone(domain, zone)
        named = await self._entries(zone_name, domain) if zone_name else None
        if zone_name is None or named is None:
            where = f"Lightsail DNS zone {zone}" if zone else "Lightsail DNS zone"
            raise errors.PermanentError("DnsZoneNotFound", f"no {where} holds {domain}")
        entries = [e for e in named if e.get("type") == "A"]
        txt_values = [str(e.get("target", "")) for e in named if e.get("type") == "TXT"]
        has_address = any(e.get("type") in ADDRESS_TYPES for e in named)
        if not claim(domain, owner, has_address=has_address, txt_values=txt_values):
            # The claim goes first: after a crash, the next attempt finds it and adds the A record.
            await _call(self._client, "create_domain_entry", domainName=zone_name, domainEntry={
                "name": normalise_name(domain), "target": owner.txt_value(), "type": "TXT"})
            logger.info("Claimed %s with an ownership TXT record in Lightsail zone %s", domain, zone_name)
        wanted = {"name": normalise_name(domain), "target": ip, "type": "A", "isAlias": False}
        if not entries:
            await _call(self._client, "create_domain_entry", domainName=zone_name, domainEntry=wanted)
            logger.info("Created A record %s -> %s in Lightsail zone %s", domain, ip, zone_name)
            return
        first, *extra = entries
        if first.get("target") != ip:
            await _call(self._client, "update_domain_entry", domainName=zone_name,
                        domainEntry={**wanted, "id": first["id"]})
            logger.info("Updated A record %s -> %s in Lightsail zone %s", domain, ip, zone_name)
        for entry in extra:
            await self._delete_entry(zone_name, entry)

    async def delete_a_record(self, domain: str, zone: str | None, ip: str | None, owner: RecordOwner) -> None:
        zone_name = await self._zone(domain, zone)
        named = (await self._entries(zone_name, domain) if zone_name else None) or []
        ours = [e for e in named if e.get("type") == "TXT" and owner.uid in txt_owners([str(e.get("target", ""))])]
        if zone_name is None or not ours:
            if any(e.get("type") == "A" for e in named):
                logger.info("Left A record %s alone: this instance does not own it", domain)
            return
        for entry in named:
            if entry.get("type") == "A" and (ip is None or entry.get("target") == ip):
                await self._delete_entry(zone_name, entry)
                logger.info("Deleted A record %s from Lightsail zone %s", domain, zone_name)
        for entry in ours:  # the claim goes last, so a retry after a crash still finds it
            await self._delete_entry(zone_name, entry)
        logger.info("Released %s (deleted its ownership TXT record) in Lightsail zone %s", domain, zone_name)

    async def _delete_entry(self, zone: str, entry: dict[str, Any]) -> None:
        keep = ("id", "name", "target", "type", "isAlias")
        try:
            await self._client.call("delete_domain_entry", domainName=zone,
                                    domainEntry={k: entry[k] for k in keep if k in entry})
        except CloudCallError as failure:
            if not failure.is_not_found:
                raise failure.to_stage_error() from None


class Route53Dns:
    """A records in a Route 53 hosted zone, given by ID or found by name."""

    def __init__(self, settings: ClientSettings | None = None, *, client: AwsClient | None = None,
                 poll_interval: float = 5.0, insync_timeout: float = 120.0) -> None:
        self._client = client or AwsClient("route53", "us-east-1", settings)
        self._poll_interval = poll_interval
        self._insync_timeout = insync_timeout

    async def _hosted_zone_id(self, domain: str, zone: str | None) -> str:
        """``zone`` may be a hosted zone ID (no dots) or a zone name; None means "the closest zone"."""
        if zone and "." not in zone.strip().rstrip("."):
            return zone.strip().removeprefix("/hostedzone/")
        zones: dict[str, str] = {}
        page: dict[str, Any] = {}
        while True:
            response = await _call(self._client, "list_hosted_zones", **page)
            for hosted in response.get("HostedZones", []):
                if not hosted.get("Config", {}).get("PrivateZone", False):
                    zones[normalise_name(hosted["Name"])] = hosted["Id"].removeprefix("/hostedzone/")
            if not response.get("IsTruncated"):
                break
            page = {"Marker": response["NextMarker"]}
        name = normalise_name(zone) if zone else best_zone(domain, zones)
        if name is None or name not in zones:
            raise errors.PermanentError("DnsZoneNotFound", f"no public Route 53 hosted zone holds {domain}")
        return zones[name]

    async def _record_sets(self, zone_id: str, domain: str) -> dict[str, dict[str, Any]]:
        """The record sets named ``domain``, by type (one set per name and type in Route 53)."""
        response = await _call(self._client, "list_resource_record_sets", HostedZoneId=zone_id,
                               StartRecordName=domain, MaxItems="20")
        return {str(record["Type"]): dict(record) for record in response.get("ResourceRecordSets", [])
                if normalise_name(record["Name"]) == normalise_name(domain) and "SetIdentifier" not in record}

    async def _change(self, zone_id: str, changes: list[dict[str, Any]]) -> None:
        """One atomic change batch: the A record and the claim change together or not at all."""
        response = await _call(self._client, "change_resource_record_sets", HostedZoneId=zone_id,
                               ChangeBatch={"Changes": changes})
        await self._wait_insync(str(response["ChangeInfo"]["Id"]), str(response["ChangeInfo"]["Status"]))

    async def _wait_insync(self, change_id: str, status: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._insync_timeout
        while status != "INSYNC":
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise errors.TransientError("DnsChangePending",
                                            f"Route 53 change {change_id} is still {status}")
            await asyncio.sleep(min(self._poll_interval, remaining))
            status = str((await _call(self._client, "get_change", Id=change_id))["ChangeInfo"]["Status"])

    async def upsert_a_record(self, domain: str, zone: str | None, ip: str, ttl: int,
                              owner: RecordOwner) -> None:
        zone_id = await self._hosted_zone_id(domain, zone)
        sets = await self._record_sets(zone_id, domain)
        current, txt = sets.get("A"), sets.get("TXT")
        txt_values = [str(r["Value"]) for r in txt.get("ResourceRecords", [])] if txt else []
        owned = claim(domain, owner, has_address=bool(ADDRESS_TYPES & sets.keys()), txt_values=txt_values)
        values = [r["Value"] for r in current.get("ResourceRecords", [])] if current else []
        if owned and current and current.get("TTL") == ttl and values == [ip]:
            return
        record = {"Name": domain, "Type": "A", "TTL": ttl, "ResourceRecords": [{"Value": ip}]}
        # CREATE fails the whole batch if someone made the A record since we looked.
        changes = [{"Action": "UPSERT" if owned else "CREATE", "ResourceRecordSet": record}]
        if not owned:  # other TXT values of this name (SPF, verifications) stay as they are
            claimed = {"Name": domain, "Type": "TXT", "TTL": txt.get("TTL", ttl) if txt else ttl,
                       "ResourceRecords": [*({"Value": v} for v in txt_values), {"Value": owner.txt_value()}]}
            changes.append({"Action": "UPSERT", "ResourceRecordSet": claimed})
        await self._change(zone_id, changes)
        logger.info("Upserted A record %s -> %s in hosted zone %s", domain, ip, zone_id)

    async def delete_a_record(self, domain: str, zone: str | None, ip: str | None, owner: RecordOwner) -> None:
        try:
            zone_id = await self._hosted_zone_id(domain, zone)
        except errors.PermanentError:
            return  # no zone, no record
        sets = await self._record_sets(zone_id, domain)
        current, txt = sets.get("A"), sets.get("TXT")
        txt_values = [str(r["Value"]) for r in txt.get("ResourceRecords", [])] if txt else []
        if txt is None or owner.uid not in txt_owners(txt_values):
            if current is not None:
                logger.info("Left A record %s alone: this instance does not own it", domain)
            return
        changes: list[dict[str, Any]] = []
        if current is not None and "AliasTarget" not in current:
            if ip is None or ip in [r["Value"] for r in current.get("ResourceRecords", [])]:
                changes.append({"Action": "DELETE", "ResourceRecordSet": current})
            else:
                logger.info("Left A record %s alone: it no longer points at %s", domain, ip)
        others = [v for v in txt_values if owner.uid not in txt_owners([v])]
        if others:
            changes.append({"Action": "UPSERT", "ResourceRecordSet": {
                **txt, "ResourceRecords": [{"Value": v} for v in others]}})
        else:
            changes.append({"Action": "DELETE", "ResourceRecordSet": txt})
        try:
            response = await self._client.call("change_resource_record_sets", HostedZoneId=zone_id,
                                               ChangeBatch={"Changes": changes})
        except CloudCallError as failure:
            already_gone = failure.code == "InvalidChangeBatch" and "not found" in failure.message
            if failure.is_not_found or already_gone:
                return
            raise failure.to_stage_error() from None
        await self._wait_insync(str(response["ChangeInfo"]["Id"]), str(response["ChangeInfo"]["Status"]))
        logger.info("Deleted A record %s and its ownership TXT record from hosted zone %s", domain, zone_id)


async def resolve_with_getaddrinfo(domain: str) -> list[str]:
    """IPv4 addresses from the system resolver, looked up in a worker thread."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(domain, None, family=socket.AF_INET,
                                                             type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


async def host_addresses(host: str, resolver: Resolver | None = None) -> tuple[str, ...]:
    """An existing host's addresses, sorted: an IP literal is its own; a name is resolved (empty if it does not)."""
    try:
        return (str(ipaddress.ip_address(host)),)
    except ValueError:
        pass
    return tuple(sorted(set(await (resolver or resolve_with_getaddrinfo)(host))))


class NoDns:
    """DNS is managed elsewhere: only confirm the name already resolves to the server."""

    def __init__(self, resolver: Resolver | None = None) -> None:
        self._resolve = resolver or resolve_with_getaddrinfo

    async def upsert_a_record(self, domain: str, zone: str | None, ip: str, ttl: int,
                              owner: RecordOwner) -> None:
        await self.check_resolves_to(domain, (ip,))

    async def check_resolves_to(self, domain: str, addresses: Collection[str]) -> None:
        """Succeed when ``domain`` resolves to at least one of the server's ``addresses``."""
        seen = sorted(set(await self._resolve(domain)))
        if not set(seen) & set(addresses):
            found = ", ".join(seen) if seen else "no address"
            wanted = ", ".join(sorted(addresses)) or "no address"
            raise errors.TransientError("DnsNotResolving",
                                        f"{domain} resolves to {found}, not to the server's {wanted}; "
                                        "point its A record at the server")

    async def delete_a_record(self, domain: str, zone: str | None, ip: str | None, owner: RecordOwner) -> None:
        """Nothing to do: the record is not ours."""
