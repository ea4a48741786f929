"""Deleting what the inventory lists: on teardown, every item; when DNS moves, the records left behind.

Owns: reaching each recorded item through its own recorded provider, region and credentials Secret (never
the spec's current ones), and deleting it only if it is still ours (a server or key pair by its uid tag, a DNS
record by its ownership TXT; the providers check), NotFound counting as success. A deleted item leaves the
inventory. Errors propagate, so the caller retries.

Must not: create anything, decide when to tear down (teardown and the dns stage do), or read the spec.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from o4o_operator.models import DnsProviderKind
from o4o_operator.models_inventory import CloudAccess, Inventory, InventoryItem, ItemKind, items_of, without_item
from o4o_operator.providers.aws import ClientSettings
from o4o_operator.providers.ownership import RecordOwner, is_ours
from o4o_operator.providers.protocols import CloudProvider, DnsProvider
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.inventory import InventoryRecord, client_settings_for
from o4o_operator.runner.runtime import Runtime

DnsName = tuple[str, str | None, str]
"""(provider, zone, name): one record set, its A and its ownership TXT."""


def _dns_name(item: InventoryItem) -> DnsName:
    return (item.provider or "", item.zone, item.name)


async def cloud_settings(runtime: Runtime, namespace: str, item: InventoryItem) -> tuple[CloudAccess, ClientSettings]:
    """How to reach ``item`` again: as recorded (region, credentials Secret by name), never as the spec says."""
    access = item.access or CloudAccess(region="us-east-1")
    settings = await client_settings_for(functools.partial(runtime.kube.read_secret, namespace), access,
                                         runtime.settings)
    return access, settings


async def _dns_provider(runtime: Runtime, namespace: str, item: InventoryItem) -> DnsProvider:
    _, settings = await cloud_settings(runtime, namespace, item)
    return runtime.dns(DnsProviderKind(item.provider or DnsProviderKind.LIGHTSAIL.value), settings)


async def delete_dns_records(runtime: Runtime, owner: RecordOwner, items: Iterable[InventoryItem]) -> list[str]:
    """Delete each recorded record set (its A and TXT, if ours); the names deleted."""
    done: list[str] = []
    by_name: dict[DnsName, list[InventoryItem]] = {}
    for item in items_of(items, ItemKind.DNS_RECORD):
        by_name.setdefault(_dns_name(item), []).append(item)
    for (provider_name, zone, name), records in by_name.items():
        address = next((r.value for r in records if r.record_type == "A"), None)
        provider = await _dns_provider(runtime, owner.namespace, records[0])
        await provider.delete_a_record(name, zone, address, owner)
        done.append(f"DNS record {name} ({provider_name}{f', {zone}' if zone else ''})")
    return done


async def remove_moved_records(instance: InstanceContext, record: InventoryRecord, keep: DnsName | None) -> str:
    """After the dns stage put the record where the spec says (``keep``; None: DNS is managed elsewhere now),
    delete the records of ours recorded anywhere else. Returns a clause for the stage's message."""
    stale = [item for item in items_of(record.items, ItemKind.DNS_RECORD) if _dns_name(item) != keep]
    if not stale:
        return ""
    done = await delete_dns_records(instance.runtime, instance.record_owner, stale)
    for item in stale:
        record.drop(item)
    message = f"Removed the records it had made before: {', '.join(done)}"
    instance.log(message)
    return f"; {message[0].lower()}{message[1:]}"


async def delete_cloud_items(runtime: Runtime, namespace: str, uid: str, inventory: Inventory) -> tuple[
        list[str], Inventory]:
    """Delete the recorded servers (each with the instance's static IP), static IPs and key pairs; what was
    done, and the inventory left (items of other kinds, and those found to be someone else's)."""
    done: list[str] = []
    left = inventory
    static_ips = list(items_of(inventory, ItemKind.STATIC_IP))
    for server in items_of(inventory, ItemKind.SERVER):
        cloud = await _cloud(runtime, namespace, server)
        found = await cloud.find_server(server.name)
        if found is not None and not is_ours(found.tags, uid):
            done.append(f"nothing of server {server.name}, which is not ours")
            continue
        static_ip = static_ips.pop(0) if static_ips else None  # an instance has one: it is this server's
        await cloud.delete_server(server.name, static_ip.name if static_ip else None)
        done.append(f"server {server.name}" + (f" and static IP {static_ip.name}" if static_ip else ""))
        left = without_item(left, server)
        if static_ip:
            left = without_item(left, static_ip)
    for static_ip in static_ips:  # recorded without a server (its creation never happened)
        cloud = await _cloud(runtime, namespace, static_ip)
        await cloud.release_static_ip(static_ip.name)
        done.append(f"static IP {static_ip.name}")
        left = without_item(left, static_ip)
    for key_pair in items_of(inventory, ItemKind.KEY_PAIR):
        cloud = await _cloud(runtime, namespace, key_pair)
        found_pair = await cloud.find_key_pair(key_pair.name)
        if found_pair is not None and is_ours(found_pair.tags, uid):
            await cloud.delete_key_pair(key_pair.name)
            done.append(f"key pair {key_pair.name}")
        if found_pair is None or is_ours(found_pair.tags, uid):
            left = without_item(left, key_pair)
    return done, left


async def _cloud(runtime: Runtime, namespace: str, item: InventoryItem) -> CloudProvider:
    access, settings = await cloud_settings(runtime, namespace, item)
    return runtime.cloud(access.region, settings)
