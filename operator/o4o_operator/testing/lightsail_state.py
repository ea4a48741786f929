"""The in-memory world behind the local Lightsail endpoint, and what each operation does to it.

Owns: instances (pending, then running), static IPs, public ports, key pairs, tags (given
at creation or added by TagResource) and the operation records, per region (domains live
in ``lightsail_domains``; the key-pair and tag operations are the ``lightsail_keypairs``
mixin's, buckets ``lightsail_buckets``'); the rules AWS enforces on them (unique names, limits, what must exist first);
and snapshots of all that for tests' leak checks. Results are plain dicts in the service
model's output shapes; refusals are ``LightsailApiError`` with the code AWS would use.

Must not: do I/O, sleep, or know HTTP. Request and response validation against the
botocore model happens in :mod:`o4o_operator.testing.lightsail`. Thread-safe.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from o4o_operator.testing import lightsail_catalog as catalog
from o4o_operator.testing.lightsail_buckets import BucketBackend, BucketOperations, BucketRecord, MemoryBuckets
from o4o_operator.testing.lightsail_domains import Domains, LocalDomainEntry
from o4o_operator.testing.lightsail_errors import LightsailApiError, invalid, not_found
from o4o_operator.testing.lightsail_keypairs import KeyPairsAndTags, checked_tags
from o4o_operator.testing.lightsail_power import PowerOperations
from o4o_operator.testing.lightsail_resources import (
    InstanceRecord,
    LocalServer,
    LocalStaticIp,
    StaticIpRecord,
    instance_view,
    now,
    static_ip_view,
)

DNS_REGION = "us-east-1"
UID_TAG = "o4o.io/uid"
NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,253}[A-Za-z0-9]$")
IpAllocator = Callable[[str], str]
HostKeys = Callable[[str], list[dict[str, Any]]]
DomainObserver = Callable[[], None]
"""Called after each change to domains, outside the state's lock (read ``domain_entries()`` for the latest)."""
Params = dict[str, Any]


class ServerFleet(Protocol):
    """Real machines behind the local cloud's instances (e.g. booted hosts), told of each instance's life.

    The fleet also hands out addresses (``ip_allocator``, given to the state as usual) and host keys.
    """

    def create_server(self, name: str, *, login_user: str, public_key: str | None) -> None:
        """Start making the server ``name`` (return at once); ``ValueError`` refuses it (InvalidInput)."""

    def is_running(self, name: str) -> bool:
        """Whether the server answers yet (the instance stays ``pending`` until it does)."""

    def delete_server(self, name: str) -> None:
        """Stop and remove the server (may finish after returning)."""


_DOMAIN_CHANGES = frozenset({"CreateDomain", "DeleteDomain", "CreateDomainEntry", "UpdateDomainEntry",
                             "DeleteDomainEntry"})


def _state(instance: InstanceRecord) -> str:
    return "stopped" if instance.stopped else "running" if instance.running else "pending"


def supported_operations() -> list[str]:
    """The Lightsail operations the local endpoint models (their model names)."""
    return sorted(name.removeprefix("op_") for name in dir(LightsailState) if name.startswith("op_"))


class LightsailState(KeyPairsAndTags, PowerOperations, BucketOperations):
    """Everything the local Lightsail knows. ``handle`` is the only way requests change it."""

    def __init__(self, *, pending_polls: int = 1, pending_seconds: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, ip_allocator: IpAllocator | None = None,
                 host_keys: HostKeys | None = None, fleet: ServerFleet | None = None) -> None:
        self.pending_polls = pending_polls
        self.pending_seconds = pending_seconds
        self._clock = clock
        self._ip_allocator = ip_allocator
        self._host_keys = host_keys or catalog.default_host_keys
        self._fleet = fleet
        self._public_keys: dict[tuple[str, str], str] = {}
        self._lock = threading.RLock()
        self._instances: dict[tuple[str, str], InstanceRecord] = {}
        self._static_ips: dict[tuple[str, str], StaticIpRecord] = {}
        self._key_pairs: dict[tuple[str, str], Params] = {}
        self._domains = Domains()
        self._operations: dict[str, Params] = {}
        self._handed_out: set[str] = set()
        self._domain_observers: list[DomainObserver] = []
        self._buckets: dict[tuple[str, str], BucketRecord] = {}
        self.bucket_backend: BucketBackend = MemoryBuckets()  # LocalLightsail.hold_buckets_in changes it

    # ---- the entry point ------------------------------------------------------

    def handle(self, region: str, operation: str, params: Params) -> Params:
        method = getattr(self, "op_" + operation, None)
        if method is None:
            raise LightsailApiError("UnknownOperationException", f"LocalLightsail does not model {operation}")
        if operation in catalog.DOMAIN_OPERATIONS and region != DNS_REGION:
            raise invalid("Domain-related APIs are only available in the N. Virginia (us-east-1) Region.")
        with self._lock:
            result: Params = method(region, params)
            observers = list(self._domain_observers) if operation in _DOMAIN_CHANGES else []
        for observer in observers:  # before the answer goes out: the change is visible once the call returns
            observer()
        return result

    def subscribe_domains(self, observer: DomainObserver) -> Callable[[], None]:
        """Call ``observer`` now and after every domain change; returns the unsubscribe."""
        with self._lock:
            self._domain_observers.append(observer)
        observer()

        def unsubscribe() -> None:
            with self._lock:
                if observer in self._domain_observers:
                    self._domain_observers.remove(observer)
        return unsubscribe

    # ---- helpers ----------------------------------------------------------------

    def _allocate_ip(self, name: str, network: str) -> str:
        if self._ip_allocator is not None:
            return self._ip_allocator(name)
        for host in ipaddress.ip_network(network).hosts():
            if str(host) not in self._handed_out and int(host) % 256 >= 10:
                self._handed_out.add(str(host))
                return str(host)
        raise LightsailApiError("ServiceException", f"LocalLightsail ran out of addresses in {network}", 500)

    def _operation(self, region: str, zone: str, resource: str, kind: str, operation_type: str) -> Params:
        created = now()
        record: Params = {
            "id": str(uuid.uuid4()), "resourceName": resource, "resourceType": kind, "createdAt": created,
            "location": {"availabilityZone": zone, "regionName": region}, "isTerminal": True,
            "status": "Succeeded", "statusChangedAt": created}
        if operation_type:  # the model's enum has no value for key-pair operations
            record["operationType"] = operation_type
        self._operations[record["id"]] = record
        return record

    def _instance(self, region: str, name: str) -> InstanceRecord:
        if (region, name) not in self._instances:
            raise not_found("Instance", name)
        return self._instances[(region, name)]

    def _static_ip(self, region: str, name: str) -> StaticIpRecord:
        if (region, name) not in self._static_ips:
            raise not_found("StaticIp", name)
        return self._static_ips[(region, name)]

    def _is_running(self, instance: InstanceRecord, *, count_read: bool) -> bool:
        if instance.stopped:
            return False
        if not instance.running and self._fleet is not None and not self._fleet.is_running(instance.name):
            return False
        if not instance.running:
            waited = self._clock() - instance.started_at >= self.pending_seconds
            if waited and instance.reads_while_pending >= self.pending_polls:
                instance.running = True
            elif count_read:
                instance.reads_while_pending += 1
        return instance.running

    def _view(self, instance: InstanceRecord) -> Params:
        """A read of the instance, as GetInstance(s) does it (counts towards ``pending_polls``)."""
        return instance_view(instance, running=self._is_running(instance, count_read=True))

    def _detach(self, static_ip: StaticIpRecord) -> None:
        if static_ip.attached_to is not None:
            instance = self._instances.get((static_ip.region, static_ip.attached_to))
            if instance is not None:
                instance.static_ip_name = None
                instance.public_ip = self._allocate_ip(instance.name, "192.0.2.0/24")
            static_ip.attached_to = None

    # ---- catalog ------------------------------------------------------------------

    def op_GetRegions(self, region: str, p: Params) -> Params:
        return {"regions": catalog.regions(p.get("includeAvailabilityZones", False),
                                           p.get("includeRelationalDatabaseAvailabilityZones", False))}

    def op_GetBundles(self, region: str, p: Params) -> Params:
        return {"bundles": catalog.bundles()}

    def op_GetBlueprints(self, region: str, p: Params) -> Params:
        return {"blueprints": catalog.blueprints()}

    # ---- instances ----------------------------------------------------------------

    def op_CreateInstances(self, region: str, p: Params) -> Params:
        zone = p["availabilityZone"]
        if zone not in catalog.zones(region):
            raise invalid(f"The availability zone {zone} is not valid for region {region}.")
        if p["bundleId"] not in catalog.BUNDLE_IDS:
            raise invalid(f"The bundle id {p['bundleId']} is not valid.")
        if p["blueprintId"] not in catalog.BLUEPRINT_IDS:
            raise invalid(f"The blueprint id {p['blueprintId']} is not valid.")
        key_pair = p.get("keyPairName")
        if key_pair and (region, key_pair) not in self._key_pairs:
            raise not_found("KeyPair", key_pair)
        tags = checked_tags(p.get("tags", []))
        names = p["instanceNames"]
        for name in names:
            if not NAME_RULE.match(name):
                raise invalid(f"The instance name {name!r} is not valid.")
        in_use = [n for n in names if (region, n) in self._instances]
        if in_use or len(set(names)) != len(names):
            raise invalid(f"Some names are already in use: {', '.join(in_use or names)}")
        operations = []
        for name in names:
            if self._fleet is not None:
                try:
                    self._fleet.create_server(name, login_user=catalog.username(p["blueprintId"]),
                                              public_key=self._public_keys.get((region, key_pair or "")))
                except ValueError as refusal:
                    raise invalid(str(refusal)) from None
            self._instances[(region, name)] = InstanceRecord(
                name=name, region=region, zone=zone, bundle_id=p["bundleId"], blueprint_id=p["blueprintId"],
                key_pair_name=key_pair, tags=tags, public_ip=self._allocate_ip(name, "192.0.2.0/24"),
                started_at=self._clock())
            operations.append(self._operation(region, zone, name, "Instance", "CreateInstance"))
        return {"operations": operations}

    def op_GetInstance(self, region: str, p: Params) -> Params:
        return {"instance": self._view(self._instance(region, p["instanceName"]))}

    def op_GetInstances(self, region: str, p: Params) -> Params:
        return {"instances": [self._view(i)
                              for (r, _), i in sorted(self._instances.items()) if r == region]}

    def op_DeleteInstance(self, region: str, p: Params) -> Params:
        instance = self._instance(region, p["instanceName"])
        if instance.static_ip_name:
            self._detach(self._static_ip(region, instance.static_ip_name))
        del self._instances[(region, instance.name)]
        if self._fleet is not None:
            self._fleet.delete_server(instance.name)
        deleted = self._operation(region, instance.zone, instance.name, "Instance", "DeleteInstance")
        return {"operations": [deleted]}

    def op_GetInstanceAccessDetails(self, region: str, p: Params) -> Params:
        instance = self._instance(region, p["instanceName"])
        if p.get("protocol", "ssh") != "ssh":
            raise invalid("RDP access is only available for Windows instances.")
        running = self._is_running(instance, count_read=False)
        return {"accessDetails": {
            "expiresAt": now() + datetime.timedelta(hours=12), "ipAddress": instance.public_ip,
            "protocol": "ssh", "instanceName": instance.name,
            "username": catalog.username(instance.blueprint_id),
            "hostKeys": self._host_keys(instance.name) if running else []}}

    def op_PutInstancePublicPorts(self, region: str, p: Params) -> Params:
        instance = self._instance(region, p["instanceName"])
        ports = []
        for info in p["portInfos"]:
            if info.get("fromPort", 0) > info.get("toPort", 65535):
                raise invalid("fromPort must not be greater than toPort.")
            for cidr in (*info.get("cidrs", []), *info.get("ipv6Cidrs", [])):
                try:
                    ipaddress.ip_network(cidr)
                except ValueError:
                    raise invalid(f"The CIDR {cidr} is not valid.") from None
            ports.append({k: v for k, v in info.items() if k != "cidrListAliases"})
        instance.ports = ports
        return {"operation": self._operation(region, instance.zone, instance.name, "Instance",
                                             "PutInstancePublicPorts")}

    def op_GetInstancePortStates(self, region: str, p: Params) -> Params:
        instance = self._instance(region, p["instanceName"])
        return {"portStates": [{**{k: v for k, v in port.items() if k in ("fromPort", "toPort", "protocol",
                                                                         "cidrs", "ipv6Cidrs")},
                                "state": "open"} for port in instance.ports]}

    def op_GetOperation(self, region: str, p: Params) -> Params:
        if p["operationId"] not in self._operations:
            raise not_found("Operation", p["operationId"])
        return {"operation": self._operations[p["operationId"]]}

    # ---- static IPs -----------------------------------------------------------------

    def op_AllocateStaticIp(self, region: str, p: Params) -> Params:
        name = p["staticIpName"]
        if not NAME_RULE.match(name):
            raise invalid(f"The static IP name {name!r} is not valid.")
        if (region, name) in self._static_ips:
            raise invalid(f"Some names are already in use: {name}")
        address = self._allocate_ip(name, "198.51.100.0/24")
        self._static_ips[(region, name)] = StaticIpRecord(name, region, address)
        return {"operations": [self._operation(region, "all", name, "StaticIp", "AllocateStaticIp")]}

    def op_GetStaticIp(self, region: str, p: Params) -> Params:
        return {"staticIp": static_ip_view(self._static_ip(region, p["staticIpName"]))}

    def op_GetStaticIps(self, region: str, p: Params) -> Params:
        return {"staticIps": [static_ip_view(s) for (r, _), s in sorted(self._static_ips.items())
                              if r == region]}

    def op_AttachStaticIp(self, region: str, p: Params) -> Params:
        static_ip = self._static_ip(region, p["staticIpName"])
        instance = self._instance(region, p["instanceName"])
        if static_ip.attached_to is not None:
            raise invalid(f"Static IP {static_ip.name} is already attached to {static_ip.attached_to}.")
        if instance.static_ip_name is not None:
            raise invalid(f"Instance {instance.name} already has static IP {instance.static_ip_name}.")
        self._handed_out.discard(instance.public_ip)
        static_ip.attached_to = instance.name
        instance.static_ip_name, instance.public_ip = static_ip.name, static_ip.ip
        static_ip.owner_uid = instance.tags.get(UID_TAG, static_ip.owner_uid)
        return {"operations": [
            self._operation(region, "all", static_ip.name, "StaticIp", "AttachStaticIp"),
            self._operation(region, instance.zone, instance.name, "Instance", "AttachStaticIp")]}

    def op_DetachStaticIp(self, region: str, p: Params) -> Params:
        static_ip = self._static_ip(region, p["staticIpName"])
        if static_ip.attached_to is None:
            raise invalid(f"Static IP {static_ip.name} is not attached.")
        self._detach(static_ip)
        return {"operations": [self._operation(region, "all", static_ip.name, "StaticIp", "DetachStaticIp")]}

    def op_ReleaseStaticIp(self, region: str, p: Params) -> Params:
        static_ip = self._static_ip(region, p["staticIpName"])
        self._detach(static_ip)
        del self._static_ips[(region, static_ip.name)]
        self._handed_out.discard(static_ip.ip)
        return {"operations": [self._operation(region, "all", static_ip.name, "StaticIp", "ReleaseStaticIp")]}

    # ---- snapshots for tests and leak checks -------------------------------------------

    def servers(self) -> list[LocalServer]:
        with self._lock:
            return [LocalServer(i.name, i.region, i.zone, _state(i), dict(i.tags),
                                i.public_ip, i.static_ip_name, i.bundle_id, i.blueprint_id, i.key_pair_name,
                                tuple(dict(p) for p in i.ports))
                    for _, i in sorted(self._instances.items())]

    def static_ips(self) -> list[LocalStaticIp]:
        with self._lock:
            return [LocalStaticIp(s.name, s.region, s.ip, s.attached_to)
                    for _, s in sorted(self._static_ips.items())]

    def domain_entries(self) -> list[LocalDomainEntry]:
        with self._lock:
            return self._domains.entries()

    def resources_for_uid(self, uid: str) -> list[str]:
        """``Kind/name`` of everything left that belongs to ``uid``: tagged instances and key pairs,
        static IPs once attached to them, domain entries pointing at either's address, and TXT
        entries naming the uid."""
        with self._lock:
            instances = [i for i in self._instances.values() if i.tags.get(UID_TAG) == uid]
            key_pairs = [k for k in self._key_pairs.values()
                         if {t["key"]: t.get("value") for t in k["tags"]}.get(UID_TAG) == uid]
            static_ips = [s for s in self._static_ips.values() if s.owner_uid == uid]
            addresses = {i.public_ip for i in instances} | {s.ip for s in static_ips}
            entries = [e for e in self._domains.entries()
                       if e.target in addresses or (e.type == "TXT" and f"{UID_TAG}={uid}" in e.target)]
            return sorted([*(f"Instance/{i.name}" for i in instances),
                           *(f"KeyPair/{k['name']}" for k in key_pairs),
                           *(f"StaticIp/{s.name}" for s in static_ips),
                           *(f"DomainEntry/{e.type}/{e.name}" if e.type != "A" else f"DomainEntry/{e.name}"
                             for e in entries)])

    # ---- domains (us-east-1 only) -----------------------------------------------------

    def _domain_operation(self, resource: str, kind: str, operation_type: str) -> Params:
        return self._operation(DNS_REGION, "all", resource, kind, operation_type)

    def op_CreateDomain(self, region: str, p: Params) -> Params:
        return self._domains.create_domain(p, self._domain_operation)

    def op_GetDomain(self, region: str, p: Params) -> Params:
        return self._domains.get_domain(p)

    def op_GetDomains(self, region: str, p: Params) -> Params:
        return self._domains.get_domains(p)

    def op_DeleteDomain(self, region: str, p: Params) -> Params:
        return self._domains.delete_domain(p, self._domain_operation)

    def op_CreateDomainEntry(self, region: str, p: Params) -> Params:
        return self._domains.create_entry(p, self._domain_operation)

    def op_UpdateDomainEntry(self, region: str, p: Params) -> Params:
        return self._domains.update_entry(p, self._domain_operation)

    def op_DeleteDomainEntry(self, region: str, p: Params) -> Params:
        return self._domains.delete_entry(p, self._domain_operation)

