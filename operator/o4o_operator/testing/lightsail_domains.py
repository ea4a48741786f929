"""The local Lightsail's DNS: domains (zones) and their entries.

Owns: what CreateDomain, GetDomain(s), DeleteDomain and Create/Update/DeleteDomainEntry
do, with Lightsail's refusals (unknown zone, a name outside the zone, a second A or CNAME
entry for the same name, a TXT target not enclosed in quotation marks, the same TXT value
twice for one name). Any number of TXT entries may share a name. New zones get the NS and
SOA entries AWS adds.

Must not: do I/O or know HTTP. Called by ``LightsailState`` under its lock, and
only for us-east-1 (the state refuses domain operations elsewhere).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import uuid
from collections.abc import Callable
from typing import Any

from o4o_operator.testing.lightsail_errors import invalid, not_found

ACCOUNT = "123456789012"
ENTRY_TYPES = frozenset({"A", "AAAA", "CNAME", "MX", "NS", "SOA", "SRV", "TXT"})
ZONE_SERVICE_TYPES = frozenset({"NS", "SOA"})
Params = dict[str, Any]
RecordOperation = Callable[[str, str, str], Params]
"""(resource name, resource type, operation type) -> a recorded operation object."""


@dataclasses.dataclass(frozen=True)
class LocalDomainEntry:
    domain: str
    id: str
    name: str
    type: str
    target: str


def _name(value: str) -> str:
    return value.strip().rstrip(".").lower()


class Domains:
    """Zones by name, each with its entries by id."""

    def __init__(self) -> None:
        self._zones: dict[str, Params] = {}

    def _zone(self, name: str) -> Params:
        if _name(name) not in self._zones:
            raise not_found("Domain", name)
        return self._zones[_name(name)]

    def _checked_entry(self, zone: Params, entry: Params) -> Params:
        name, kind, target = _name(entry.get("name", "")), entry.get("type", ""), entry.get("target", "")
        if name != zone["name"] and not name.endswith("." + zone["name"]):
            raise invalid(f"The domain entry name {name!r} is not in the domain {zone['name']}.")
        if kind not in ENTRY_TYPES:
            raise invalid(f"The domain entry type {kind!r} is not valid.")
        if kind in {"A", "AAAA"} and not entry.get("isAlias"):
            try:
                address = ipaddress.ip_address(target)
            except ValueError:
                raise invalid(f"The target {target!r} is not a valid IP address.") from None
            if address.version != (4 if kind == "A" else 6):
                raise invalid(f"The target {target!r} does not fit an {kind} entry.")
        if kind == "TXT" and not (len(target) >= 2 and target.startswith('"') and target.endswith('"')):
            raise invalid("Input error: Target should be enclosed in quotation marks: " + target[:64])
        return {"name": name, "type": kind, "target": target, "isAlias": bool(entry.get("isAlias", False))}

    def create_domain(self, p: Params, record_operation: RecordOperation) -> Params:
        name = _name(p["domainName"])
        if name in self._zones:
            raise invalid(f"The domain {name} already exists.")
        entries = {str(uuid.uuid4()): {"name": name, "type": "NS", "target": f"ns-{n}.awsdns-local.{tld}",
                                       "isAlias": False} for n, tld in ((1, "com"), (2, "net"))}
        soa = "ns-1.awsdns-local.com. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400"
        entries[str(uuid.uuid4())] = {"name": name, "type": "SOA", "isAlias": False, "target": soa}
        self._zones[name] = {"name": name, "createdAt": datetime.datetime.now(datetime.UTC),
                             "tags": list(p.get("tags", [])), "entries": entries}
        return {"operation": record_operation(name, "Domain", "CreateDomain")}

    def get_domain(self, p: Params) -> Params:
        return {"domain": self._view(self._zone(p["domainName"]))}

    def get_domains(self, p: Params) -> Params:
        return {"domains": [self._view(z) for _, z in sorted(self._zones.items())]}

    def delete_domain(self, p: Params, record_operation: RecordOperation) -> Params:
        zone = self._zone(p["domainName"])
        del self._zones[zone["name"]]
        return {"operation": record_operation(zone["name"], "Domain", "DeleteDomain")}

    def create_entry(self, p: Params, record_operation: RecordOperation) -> Params:
        zone = self._zone(p["domainName"])
        entry = self._checked_entry(zone, p["domainEntry"])
        if entry["type"] in {"A", "AAAA", "CNAME"} and any(
                e["name"] == entry["name"] and e["type"] == entry["type"] for e in zone["entries"].values()):
            raise invalid(f"A {entry['type']} entry for {entry['name']} already exists.")
        if entry["type"] == "TXT" and any((e["name"], e["type"], e["target"]) == (entry["name"], "TXT", entry["target"])
                                          for e in zone["entries"].values()):
            raise invalid(f"That TXT entry for {entry['name']} already exists.")
        zone["entries"][str(uuid.uuid4())] = entry
        return {"operation": record_operation(zone["name"], "Domain", "CreateDomain")}

    def update_entry(self, p: Params, record_operation: RecordOperation) -> Params:
        zone = self._zone(p["domainName"])
        entry_id = p["domainEntry"].get("id")
        if entry_id not in zone["entries"]:
            raise not_found("DomainEntry", str(entry_id))
        updated = {**zone["entries"][entry_id], **p["domainEntry"]}
        zone["entries"][entry_id] = self._checked_entry(zone, updated)
        return {"operations": [record_operation(zone["name"], "Domain", "UpdateDomainEntry")]}

    def delete_entry(self, p: Params, record_operation: RecordOperation) -> Params:
        zone = self._zone(p["domainName"])
        wanted = p["domainEntry"]
        def same(entry_id: str, entry: Params) -> bool:
            if wanted.get("id"):
                return bool(wanted["id"] == entry_id)
            return (entry["name"], entry["type"], entry["target"]) == (
                _name(wanted.get("name", "")), wanted.get("type"), wanted.get("target"))
        matches = [i for i, e in zone["entries"].items() if same(i, e)]
        if not matches:
            raise not_found("DomainEntry", str(wanted.get("id") or wanted.get("name")))
        if zone["entries"][matches[0]]["type"] in ZONE_SERVICE_TYPES:
            raise invalid("The NS and SOA entries of a domain cannot be deleted.")
        del zone["entries"][matches[0]]
        return {"operation": record_operation(zone["name"], "Domain", "DeleteDomainEntry")}

    def _view(self, zone: Params) -> Params:
        return {"name": zone["name"], "arn": f"arn:aws:lightsail:global:{ACCOUNT}:Domain/{zone['name']}",
                "supportCode": f"{ACCOUNT}/{zone['name']}", "createdAt": zone["createdAt"],
                "location": {"availabilityZone": "all", "regionName": "us-east-1"}, "resourceType": "Domain",
                "tags": zone["tags"], "domainEntries": [{"id": i, **e} for i, e in zone["entries"].items()]}

    def entries(self) -> list[LocalDomainEntry]:
        """Every entry except the NS and SOA ones the zone came with."""
        return [LocalDomainEntry(zone["name"], i, e["name"], e["type"], e["target"])
                for _, zone in sorted(self._zones.items()) for i, e in zone["entries"].items()
                if e["type"] not in ZONE_SERVICE_TYPES]
