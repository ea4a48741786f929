"""A stage's working copy of ``status.inventory``, and the providers that reach what it lists.

Owns: :class:`InventoryRecord`, which the cloud stages use to record an intent (``Pending``) before the call
that makes a thing and to confirm it (``Present``, with the cloud's own id) after; the worker writes its
``items`` as the stage's status changes. Also :func:`access_for`, what a cloud item records to reach it again
(region and credentials Secret *name*), and :func:`client_settings_for`, which turns that back into client
settings: the one way both the stages (through :mod:`~o4o_operator.runner.instance_providers`) and teardown
(without the spec, from the inventory alone) make them.

Must not: decide what to make (the stages do), write status (the worker does), or record a secret value.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Awaitable, Callable, Iterable

from o4o_operator.errors import InvalidSpecError
from o4o_operator.kubeapi import SecretData
from o4o_operator.models import DeploymentInstanceSpec
from o4o_operator.models_inventory import (
    CloudAccess,
    Inventory,
    InventoryItem,
    ItemKind,
    ItemState,
    find_item,
    with_item,
    without_item,
)
from o4o_operator.providers.aws import ClientSettings, InFlightCalls, StaticCredentials
from o4o_operator.runner.settings import OperatorSettings

CREDENTIALS_FIELD = "status.inventory[].access.credentialsSecret"


def _stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def access_for(spec: DeploymentInstanceSpec, region: str | None = None) -> CloudAccess | None:
    """How the spec reaches its cloud today (None without a Lightsail provider and without cloud DNS)."""
    lightsail = spec.provider.lightsail
    ref = lightsail.credentials_secret_ref if lightsail else None
    where = region or (lightsail.region if lightsail else None)
    if where is None:
        return None
    if ref is None:
        return CloudAccess(region=where)
    return CloudAccess(region=where, credentials_secret=ref.name, access_key_id_key=ref.access_key_id_key,
                       secret_access_key_key=ref.secret_access_key_key)


@dataclasses.dataclass(frozen=True)
class DnsPlace:
    """Where a DNS record lives: the provider, the zone (or hosted-zone id) and the record's type."""

    provider: str
    zone: str | None
    record_type: str


class InventoryRecord:
    """Intents and confirmations of one stage run, starting from the inventory in status."""

    def __init__(self, items: Iterable[InventoryItem], access: CloudAccess | None,
                 clock: Callable[[], datetime.datetime]) -> None:
        self._items: Inventory = tuple(items)
        self._access = access
        self._clock = clock

    @property
    def items(self) -> Inventory:
        return self._items

    def find(self, kind: ItemKind, name: str) -> InventoryItem | None:
        return find_item(self._items, kind, name)

    def _item(self, kind: ItemKind, name: str, where: DnsPlace | None, value: str | None) -> InventoryItem:
        return InventoryItem(kind=kind, name=name, access=self._access, value=value,
                             provider=where.provider if where else None, zone=where.zone if where else None,
                             record_type=where.record_type if where else None, recorded_at=_stamp(self._clock()))

    def intent(self, kind: ItemKind, name: str, where: DnsPlace | None = None, value: str | None = None) -> bool:
        """Record ``Pending`` unless the inventory already lists it; True when something was added."""
        item = self._item(kind, name, where, value)
        if any(existing.key == item.key for existing in self._items):
            return False
        self._items = with_item(self._items, item)
        return True

    def confirm(self, kind: ItemKind, name: str, where: DnsPlace | None = None, value: str | None = None, *,
                cloud_id: str | None = None, adopted: bool = False) -> None:
        """Mark it ``Present`` (adding it if no intent was recorded: a thing found made before inventories)."""
        fresh = self._item(kind, name, where, value)
        before = next((item for item in self._items if item.key == fresh.key), None)
        update: dict[str, object] = {"state": ItemState.PRESENT, "access": self._access,
                                     "adopted": adopted or (before.adopted if before else False)}
        if value is not None:
            update["value"] = value
        if cloud_id is not None:
            update["cloud_id"] = cloud_id
        self._items = with_item(self._items, (before or fresh).model_copy(update=update))

    def drop(self, item: InventoryItem) -> None:
        self._items = without_item(self._items, item)

    def replaced_server(self, name: str, cloud_id: str | None) -> str | None:
        """The id of the server set up before, when the cloud now shows another machine under ``name``."""
        before = self.find(ItemKind.SERVER, name)
        if before is None or before.state is not ItemState.PRESENT or not before.cloud_id or not cloud_id:
            return None
        return before.cloud_id if before.cloud_id != cloud_id else None


def server_identity(inventory: Iterable[InventoryItem], name: str | None) -> str | None:
    """The cloud's id of the server set up (a Present Server item), or None."""
    item = find_item(inventory, ItemKind.SERVER, name) if name else None
    return item.cloud_id if item is not None and item.state is ItemState.PRESENT else None


SecretReader = Callable[[str, str], Awaitable[SecretData]]
"""Reads a Secret of the instance's namespace: (name, the field that references it) -> its data."""


async def client_settings_for(read: SecretReader, access: CloudAccess | None, settings: OperatorSettings, *,
                              field: str = CREDENTIALS_FIELD, in_flight: InFlightCalls | None = None) -> ClientSettings:
    """Client settings for ``access`` (None: the operator's own identity), reading its credentials Secret by
    name; a missing key stalls naming ``field`` (the spec's, for a stage; the inventory's, for teardown)."""
    credentials = None
    if access is not None and access.credentials_secret:
        secret = await read(access.credentials_secret, field)
        missing = [key for key in (access.access_key_id_key, access.secret_access_key_key) if key not in secret.data]
        if missing:
            raise InvalidSpecError(field, f"Secret {access.credentials_secret!r} has no key {missing[0]!r}",
                                   reason="SecretKeyMissing")
        credentials = StaticCredentials(access_key_id=secret.data[access.access_key_id_key],
                                        secret_access_key=secret.data[access.secret_access_key_key])
    return ClientSettings(max_attempts=settings.aws_max_attempts, credentials=credentials,
                          endpoint_url=settings.lightsail_endpoint_url, in_flight=in_flight)
