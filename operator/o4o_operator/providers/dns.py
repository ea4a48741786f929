"""DNS providers: point a domain's A record at the server, and take it away again.

Owns: :class:`LightsailDns` (Lightsail domains, whose API exists only in us-east-1),
:class:`Route53Dns` (UPSERT/DELETE change batches, waiting for INSYNC) and
:class:`NoDns` (someone else manages DNS: only check that the name resolves to one
of the server's addresses). All implement ``protocols.DnsProvider``; all are
idempotent, and deleting a record that is already gone is success. Also
:func:`host_addresses`: the addresses of an existing host given by name.

Must not: touch records other than the one A record for the domain (and, on delete,
only one still pointing at our IP when the IP is given), create or delete zones,
log credentials, or know Kopf.
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

logger = logging.getLogger(__name__)

LIGHTSAIL_DNS_REGION = "us-east-1"
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

    async def _a_entries(self, zone: str, domain: str) -> list[dict[str, Any]] | None:
        """The A entries for ``domain`` in ``zone``; None if the zone does not exist."""
        try:
            response = await self._client.call("get_domain", domainName=zone)
        except CloudCallError as failure:
            if failure.is_not_found:
                return None
            raise failure.to_stage_error() from None
        name = normalise_name(domain)
        return [e for e in response["domain"].get("domainEntries", [])
                if e.get("type") == "A" and normalise_name(str(e.get("name", ""))) == name]

    async def upsert_a_record(self, domain: str, zone: str | None, ip: str, ttl: int) -> None:
        """Lightsail DNS has no per-record TTL, so ``ttl`` is not used."""
        zone_name = await self._zone(domain, zone)
        entries = await self._a_entries(zone_name, domain) if zone_name else None
        if zone_name is None or entries is None:
            where = f"Lightsail DNS zone {zone}" if zone else "Lightsail DNS zone"
            raise errors.PermanentError("DnsZoneNotFound", f"no {where} holds {domain}")
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

    async def delete_a_record(self, domain: str, zone: str | None, ip: str | None) -> None:
        zone_name = await self._zone(domain, zone)
        entries = await self._a_entries(zone_name, domain) if zone_name else None
        for entry in entries or []:
            if ip is None or entry.get("target") == ip:
                await self._delete_entry(zone_name or "", entry)
                logger.info("Deleted A record %s from Lightsail zone %s", domain, zone_name)

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

    async def _a_record(self, zone_id: str, domain: str) -> dict[str, Any] | None:
        response = await _call(self._client, "list_resource_record_sets", HostedZoneId=zone_id,
                               StartRecordName=domain, StartRecordType="A", MaxItems="1")
        for record in response.get("ResourceRecordSets", []):
            if normalise_name(record["Name"]) == normalise_name(domain) and record["Type"] == "A":
                return dict(record)
        return None

    async def _change(self, zone_id: str, action: str, record: dict[str, Any]) -> None:
        response = await _call(self._client, "change_resource_record_sets", HostedZoneId=zone_id,
                               ChangeBatch={"Changes": [{"Action": action, "ResourceRecordSet": record}]})
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

    async def upsert_a_record(self, domain: str, zone: str | None, ip: str, ttl: int) -> None:
        zone_id = await self._hosted_zone_id(domain, zone)
        current = await self._a_record(zone_id, domain)
        values = [r["Value"] for r in current.get("ResourceRecords", [])] if current else []
        if current and current.get("TTL") == ttl and values == [ip]:
            return
        record = {"Name": domain, "Type": "A", "TTL": ttl, "ResourceRecords": [{"Value": ip}]}
        await self._change(zone_id, "UPSERT", record)
        logger.info("Upserted A record %s -> %s in hosted zone %s", domain, ip, zone_id)

    async def delete_a_record(self, domain: str, zone: str | None, ip: str | None) -> None:
        try:
            zone_id = await self._hosted_zone_id(domain, zone)
        except errors.PermanentError:
            return  # no zone, no record
        current = await self._a_record(zone_id, domain)
        if current is None or "AliasTarget" in current:
            return
        if ip is not None and ip not in [r["Value"] for r in current.get("ResourceRecords", [])]:
            logger.info("Left A record %s alone: it no longer points at %s", domain, ip)
            return
        try:
            response = await self._client.call(
                "change_resource_record_sets", HostedZoneId=zone_id,
                ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": current}]})
        except CloudCallError as failure:
            already_gone = failure.code == "InvalidChangeBatch" and "not found" in failure.message
            if failure.is_not_found or already_gone:
                return
            raise failure.to_stage_error() from None
        await self._wait_insync(str(response["ChangeInfo"]["Id"]), str(response["ChangeInfo"]["Status"]))
        logger.info("Deleted A record %s from hosted zone %s", domain, zone_id)


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

    async def upsert_a_record(self, domain: str, zone: str | None, ip: str, ttl: int) -> None:
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

    async def delete_a_record(self, domain: str, zone: str | None, ip: str | None) -> None:
        """Nothing to do: the record is not ours."""
