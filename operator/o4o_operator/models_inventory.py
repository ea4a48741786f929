"""The inventory: every external thing an instance's operator made or adopted, as ``status.inventory``.

Owns: :class:`InventoryItem` (one server, static IP, key pair or DNS record, named as the cloud names it,
with what is needed to reach it again: region, DNS provider and zone, and the *name* of the credentials
Secret, never a value), the two states an item passes through (``Pending``: the intent, written before the
call that makes it; ``Present``: made, and confirmed), and the pure functions that change an inventory
(``with_item``, ``without_item``) or read it (``items_of``, ``find_item``).

Teardown reads only the inventory, never the spec, so an instance whose spec no longer parses, or whose DNS
moved, still has everything it made removed. Purely computational: no I/O, no Kopf, no clients.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ItemKind(enum.StrEnum):
    SERVER = "Server"
    STATIC_IP = "StaticIp"
    KEY_PAIR = "KeyPair"
    DNS_RECORD = "DnsRecord"


class ItemState(enum.StrEnum):
    PENDING = "Pending"
    """The intent: recorded before the call that makes it, which may or may not have landed (a crash)."""
    PRESENT = "Present"
    """Made (or adopted) and confirmed by the cloud."""


class CloudAccess(BaseModel):
    """How to reach the cloud an item lives in again, without the spec: the region and the credentials
    Secret's name and keys (in the instance's namespace). No Secret: the operator's own identity."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    region: str
    credentials_secret: str | None = None
    access_key_id_key: str = "aws_access_key_id"
    secret_access_key_key: str = "aws_secret_access_key"  # noqa: S105 - a key name, not a secret


class InventoryItem(BaseModel):
    """One thing made or adopted. ``key`` identifies it within the inventory (kind, name, provider, zone, type)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    kind: ItemKind
    name: str
    state: ItemState = ItemState.PENDING
    cloud_id: str | None = Field(default=None, alias="id")
    """The cloud's own identity: a server's ARN (a replaced server has another), a key pair's fingerprint."""
    adopted: bool = False
    access: CloudAccess | None = None
    provider: str | None = None
    """DNS records: ``lightsail`` or ``route53``."""
    zone: str | None = None
    """DNS records: the zone name (Lightsail) or hosted-zone id (Route 53)."""
    record_type: str | None = Field(default=None, alias="type")
    value: str | None = None
    """DNS records: what the record points at; static IPs: the address."""
    recorded_at: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.kind.value, self.name, self.provider or "", self.zone or "", self.record_type or "")


Inventory = tuple[InventoryItem, ...]


def with_item(inventory: Iterable[InventoryItem], item: InventoryItem) -> Inventory:
    """The inventory with ``item`` added, or replacing the item of the same key (in its place)."""
    items = list(inventory)
    for index, existing in enumerate(items):
        if existing.key == item.key:
            items[index] = item
            return tuple(items)
    return (*items, item)


def without_item(inventory: Iterable[InventoryItem], item: InventoryItem) -> Inventory:
    return tuple(existing for existing in inventory if existing.key != item.key)


def items_of(inventory: Iterable[InventoryItem], kind: ItemKind) -> Inventory:
    return tuple(item for item in inventory if item.kind is kind)


def find_item(inventory: Iterable[InventoryItem], kind: ItemKind, name: str) -> InventoryItem | None:
    return next((item for item in inventory if item.kind is kind and item.name == name), None)
