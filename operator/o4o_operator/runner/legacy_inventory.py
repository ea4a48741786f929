"""The inventory of an instance made before the operator kept one, rebuilt from its status and stored spec.

Owns: :func:`legacy_inventory`, which lists what an older operator would have made for the instance (its
server, static IP and own key pair by their recorded or derived names, once a server name was recorded, and
its DNS record set, once an address was), read leniently
from the raw stored spec, so that it works when the spec no longer parses. Teardown still deletes each only if
it is ours (uid tag, ownership TXT). Must not: be used once ``status.inventory`` holds anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from o4o_operator.models import DeploymentInstanceStatus
from o4o_operator.models_inventory import CloudAccess, Inventory, InventoryItem, ItemKind, ItemState
from o4o_operator.providers.ownership import RecordOwner, key_pair_name, static_ip_name


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _access(lightsail: Mapping[str, Any], region: str | None) -> CloudAccess | None:
    if not region:
        return None
    ref = _mapping(lightsail.get("credentialsSecretRef"))
    if not ref.get("name"):
        return CloudAccess(region=region)
    return CloudAccess(region=region, credentials_secret=str(ref["name"]),
                       access_key_id_key=str(ref.get("accessKeyIdKey", "aws_access_key_id")),
                       secret_access_key_key=str(ref.get("secretAccessKeyKey", "aws_secret_access_key")))


def legacy_inventory(body: Mapping[str, Any], status: DeploymentInstanceStatus) -> Inventory:
    meta = body["metadata"]
    spec = _mapping(body.get("spec"))
    lightsail = _mapping(_mapping(spec.get("provider")).get("lightsail"))
    items: list[InventoryItem] = []
    if lightsail and status.server.name:  # no name recorded: provision never got as far as the cloud
        access = _access(lightsail, status.server.region or lightsail.get("region"))
        server = status.server.name
        for kind, name in ((ItemKind.SERVER, server),
                           (ItemKind.STATIC_IP, status.server.static_ip_name or static_ip_name(server)),
                           (ItemKind.KEY_PAIR, status.server.key_pair_name or key_pair_name(meta["namespace"],
                                                                                               meta["name"]))):
            items.append(InventoryItem(kind=kind, name=name, state=ItemState.PENDING, access=access))
    dns = _mapping(spec.get("dns"))
    provider = str(dns.get("provider", "none"))
    domain = spec.get("domain")
    if provider in ("lightsail", "route53") and isinstance(domain, str) and status.server.ip_address:
        zone = dns.get("hostedZoneId") or dns.get("zone")
        access = _access(lightsail, "us-east-1")
        owner = RecordOwner(meta["namespace"], meta["name"], meta["uid"])
        for record_type, value in (("A", status.server.ip_address), ("TXT", owner.txt_value())):
            items.append(InventoryItem(kind=ItemKind.DNS_RECORD, name=domain, state=ItemState.PENDING,
                                       access=access, provider=provider, zone=zone, record_type=record_type,
                                       value=value))
    return tuple(items)
