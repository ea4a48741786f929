"""The inventory: every external thing an instance's operator made or adopted, as ``status.inventory``.

Owns: :class:`InventoryItem` (one server, static IP, key pair or DNS record, named as the cloud names it,
with what is needed to reach it again: region, DNS provider and zone, and the *name* of the credentials
Secret, never a value; the local database and its role, by name; the operator-owned Secret and the log
ConfigMap; and on an existing host the host itself, with how to reach it again (:class:`HostAccess`: port,
SSH user, pinned host keys, the *name and key* of the SSH private key Secret), the instance's user, its
directories and its certificate; a Lightsail bucket made for backups), the two states an item passes
through (``Pending``: the intent, written before the call that makes it; ``Present``: made, and confirmed),
and the pure functions that change an inventory (``with_item``, ``without_item``) or read it (``items_of``,
``find_item``).

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
    DATABASE = "Database"
    """The local database (on the server or existing host), by name; an external one is not ours."""
    DATABASE_ROLE = "DatabaseRole"
    SECRET = "Secret"  # noqa: S105 - a kind of item, not a secret
    """The operator-owned Secret ``<name>-database``, in the instance's namespace."""
    CONFIG_MAP = "ConfigMap"
    """The log ConfigMap ``<name>-log``."""
    HOST = "Host"
    """An existing host (``spec.provider.existing``): adopted, never made; ``value`` is its address."""
    HOST_USER = "HostUser"
    HOST_DIRECTORY = "HostDirectory"
    CERTIFICATE = "Certificate"
    """On an existing host: the certificate certbot keeps for the domain (its name)."""
    BUCKET = "Bucket"
    """A Lightsail bucket made for backups (``spec.database.backup.target.lightsailBucket``), with its objects and
    access keys; ``value`` is its URL."""


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


class HostAccess(BaseModel):
    """How to reach an existing host again, without the spec: the SSH port and user, the host keys pinned
    for it, and the name and key of the Secret holding the SSH private key (never the key itself)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    port: int = 22
    user: str
    host_key_fingerprints: tuple[str, ...] = ()
    private_key_secret: str
    private_key_key: str = "ssh-privatekey"


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
    """DNS records: what the record points at; static IPs and existing hosts: the address."""
    ssh: HostAccess | None = None
    """Existing hosts: how to reach it again."""
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
