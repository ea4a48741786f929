"""The inventory of an instance made before the operator kept one, rebuilt from its status and stored spec.

Owns: :func:`legacy_inventory`, which lists what an older operator would have made for the instance (its
server, static IP and own key pair by their recorded or derived names, once a server name was recorded, and
its DNS record set, once an address was), read leniently
from the raw stored spec, so that it works when the spec no longer parses. Teardown still deletes each only if
it is ours (uid tag, ownership TXT); and :func:`legacy_host_items`, what an instance on an existing host
made there before the inventory listed hosts, from its spec (which must still parse) and status. Must not:
be used once ``status.inventory`` holds anything (the host items: once it lists a host).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from o4o_operator.models import DeploymentInstanceStatus
from o4o_operator.models_inventory import CloudAccess, Inventory, InventoryItem, ItemKind, ItemState
from o4o_operator.pipeline.stages import StageName
from o4o_operator.providers.ownership import RecordOwner, key_pair_name, static_ip_name
from o4o_operator.runner.host_teardown import reached_host
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.made_items import made_by, with_intents


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


def legacy_host_items(instance: InstanceContext) -> Inventory:
    """The host, user, directories, certificate and local database an instance on an existing host made before
    the inventory listed them, as intents (each may exist), from its spec and status; none if no host stage
    ever started there."""
    if instance.spec.provider.existing is None or not reached_host(instance.status):
        return ()
    items: Inventory = ()
    for stage in (StageName.PROVISION, StageName.RUNTIME, StageName.DATABASE, StageName.TLS):
        items = with_intents(items, made_by(instance, stage, instance.status), instance.runtime.clock())
    return items
