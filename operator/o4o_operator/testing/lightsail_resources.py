"""The local Lightsail's resources as records, and their views in the service model's output shapes.

Owns: the mutable records the state keeps for instances and static IPs, the frozen
snapshots tests inspect (:class:`LocalServer`, :class:`LocalStaticIp`), and the
functions that turn records into ``Instance``/``StaticIp``/``KeyPair`` output dicts
(timestamps as ``datetime``). Purely computational: no I/O, no locking.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import uuid
from typing import Any

from o4o_operator.testing import lightsail_catalog as catalog

ACCOUNT = "123456789012"
Params = dict[str, Any]


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(frozen=True)
class LocalServer:
    name: str
    region: str
    availability_zone: str
    state: str
    tags: dict[str, str]
    public_ip: str
    static_ip_name: str | None
    bundle_id: str
    blueprint_id: str
    key_pair_name: str | None
    ports: tuple[dict[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class LocalStaticIp:
    name: str
    region: str
    ip: str
    attached_to: str | None


@dataclasses.dataclass
class InstanceRecord:
    name: str
    region: str
    zone: str
    bundle_id: str
    blueprint_id: str
    key_pair_name: str | None
    tags: dict[str, str]
    public_ip: str
    started_at: float
    created_at: datetime.datetime = dataclasses.field(default_factory=now)
    reads_while_pending: int = 0
    running: bool = False
    stopped: bool = False
    stops: int = 0
    starts: int = 0
    cloud_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    """What the ARN ends in: as in AWS, a server made again under the same name has another ARN."""
    static_ip_name: str | None = None
    ports: list[dict[str, Any]] = dataclasses.field(default_factory=lambda: [
        {"fromPort": p, "toPort": p, "protocol": "tcp", "cidrs": ["0.0.0.0/0"], "ipv6Cidrs": ["::/0"]}
        for p in (22, 80)])


@dataclasses.dataclass
class StaticIpRecord:
    name: str
    region: str
    ip: str
    attached_to: str | None = None
    owner_uid: str | None = None
    created_at: datetime.datetime = dataclasses.field(default_factory=now)


def instance_view(instance: InstanceRecord, *, running: bool) -> Params:
    return {
        "name": instance.name,
        "arn": f"arn:aws:lightsail:{instance.region}:{ACCOUNT}:Instance/{instance.cloud_id}",
        "supportCode": f"{ACCOUNT}/i-{hashlib.sha256(instance.cloud_id.encode()).hexdigest()[:17]}",
        "createdAt": instance.created_at,
        "location": {"availabilityZone": instance.zone, "regionName": instance.region},
        "resourceType": "Instance", "tags": [{"key": k, "value": v} for k, v in instance.tags.items()],
        "blueprintId": instance.blueprint_id, "blueprintName": catalog.blueprint_name(instance.blueprint_id),
        "bundleId": instance.bundle_id, "isStaticIp": instance.static_ip_name is not None,
        "privateIpAddress": "172.26.0.10", "publicIpAddress": instance.public_ip, "ipAddressType": "ipv4",
        "hardware": catalog.hardware(instance.bundle_id),
        "networking": {"monthlyTransfer": {"gbPerMonthAllocated": 1024},
                       "ports": [port_view(p) for p in instance.ports]},
        "state": ({"code": 80, "name": "stopped"} if instance.stopped
                  else {"code": 16, "name": "running"} if running else {"code": 0, "name": "pending"}),
        "username": catalog.username(instance.blueprint_id),
        **({"sshKeyName": instance.key_pair_name} if instance.key_pair_name else {}),
    }


def static_ip_view(static_ip: StaticIpRecord) -> Params:
    return {"name": static_ip.name,
            "arn": f"arn:aws:lightsail:{static_ip.region}:{ACCOUNT}:StaticIp/{static_ip.name}",
            "supportCode": f"{ACCOUNT}/{static_ip.ip}", "createdAt": static_ip.created_at,
            "location": {"availabilityZone": "all", "regionName": static_ip.region},
            "resourceType": "StaticIp", "ipAddress": static_ip.ip,
            "isAttached": static_ip.attached_to is not None,
            **({"attachedTo": static_ip.attached_to} if static_ip.attached_to else {})}


def port_view(port: Params) -> Params:
    cidrs = port.get("cidrs", [])
    access_from = "Anywhere (0.0.0.0/0)" if cidrs == ["0.0.0.0/0"] else "Custom"
    return {"fromPort": port.get("fromPort", 0), "toPort": port.get("toPort", 0),
            "protocol": port["protocol"],
            "accessFrom": access_from, "accessType": "Public", "commonName": "", "accessDirection": "inbound",
            "cidrs": list(cidrs), "ipv6Cidrs": list(port.get("ipv6Cidrs", [])), "cidrListAliases": []}


def key_pair_view(region: str, name: str, blob: bytes) -> Params:
    """An imported key pair; Lightsail shows the MD5 of the public key as its fingerprint."""
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return {"name": name, "arn": f"arn:aws:lightsail:{region}:{ACCOUNT}:KeyPair/{name}",
            "supportCode": f"{ACCOUNT}/{name}", "createdAt": now(),
            "location": {"availabilityZone": "all", "regionName": region}, "resourceType": "KeyPair",
            "tags": [], "fingerprint": ":".join(digest[i:i + 2] for i in range(0, 32, 2))}
