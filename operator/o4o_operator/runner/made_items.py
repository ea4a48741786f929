"""What an instance makes besides its cloud server, static IP, key pair and DNS records, as inventory items.

Owns: which stage makes what (provision adopts an existing host; on it, runtime makes the instance's user
and directories and tls its certificate; database makes the local database and its role, wherever it runs),
what the worker makes (the operator-owned Secret ``<name>-database``, the log ConfigMap ``<name>-log``), and
folding both into status writes the worker makes anyway: intents (``Pending``) into a stage's start write,
confirmations (``Present``) into its end write, so that no write is added. The Secret is made before an
instance's first write (its values are facts the first decision needs), so it is listed ``Present`` in that
write; it has a fixed name and the instance as its owner, so nothing is lost if the operator stops in between.

Must not: write status (the worker does), make anything, or record a secret value: an existing host's SSH key
is recorded by its Secret's name and key, the database by its names.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable

from o4o_operator.errors import InvalidSpecError
from o4o_operator.models import DeploymentInstanceStatus
from o4o_operator.models_database import generated_secret_name
from o4o_operator.models_inventory import HostAccess, Inventory, InventoryItem, ItemKind, ItemState, with_item
from o4o_operator.pipeline.decisions import format_time
from o4o_operator.pipeline.stages import StageName
from o4o_operator.rendering.env_values import database_identifier
from o4o_operator.runner.instance import InstanceContext


@dataclasses.dataclass(frozen=True)
class Made:
    """One thing a stage (or the worker) makes: an inventory item's kind and name, its address (a host's)
    and how to reach it (a host's)."""

    kind: ItemKind
    name: str
    value: str | None = None
    ssh: HostAccess | None = None
    adopted: bool = False


def log_configmap_name(name: str) -> str:
    return f"{name}-log"


def host_access(instance: InstanceContext) -> HostAccess | None:
    """How teardown reaches the instance's existing host again (None on Lightsail)."""
    existing = instance.spec.provider.existing
    if existing is None:
        return None
    try:
        pins = instance.host_key_pins()
    except InvalidSpecError:  # nothing pinned and no trust on first use: provision stalls naming the field
        pins = ()
    ref = instance.spec.ssh.private_key_secret_ref
    return HostAccess(port=existing.port, user=instance.spec.ssh.user, host_key_fingerprints=pins,
                      private_key_secret=ref.name, private_key_key=ref.key)


def made_by(instance: InstanceContext, stage: StageName, status: DeploymentInstanceStatus) -> tuple[Made, ...]:
    """What ``stage`` makes for the instance, besides what the cloud stages record themselves. Every stage on an
    existing host lists the host too (so a rotated key Secret or a key trusted on first use is recorded)."""
    existing = instance.spec.provider.existing
    host = instance.host_context()
    made: list[Made] = []
    if existing is not None:
        address = status.server.ip_address if status.server.name == existing.host else None
        made.append(Made(ItemKind.HOST, existing.host, address, host_access(instance), adopted=True))
        if stage is StageName.RUNTIME:
            made.append(Made(ItemKind.HOST_USER, host.app_user))
            made.extend(Made(ItemKind.HOST_DIRECTORY, path)
                        for path in (host.base_dir, host.app_home, host.state_dir, host.webroot))
        elif stage is StageName.TLS:
            made.append(Made(ItemKind.CERTIFICATE, instance.spec.domain))
    if stage is StageName.DATABASE and instance.spec.database.external is None:
        name = database_identifier(host.app_user)  # the generated names are checked to be exactly these
        made += [Made(ItemKind.DATABASE, name), Made(ItemKind.DATABASE_ROLE, name)]
    return tuple(made)


def made_by_worker(instance_name: str, *, secret_made: bool, log_saved: bool) -> tuple[tuple[Made, bool], ...]:
    """The worker's own objects, each with whether it is made: the Secret once it is ours, the ConfigMap
    (an intent until the log was first saved there)."""
    secret = ((Made(ItemKind.SECRET, generated_secret_name(instance_name)), True),) if secret_made else ()
    return (*secret, (Made(ItemKind.CONFIG_MAP, log_configmap_name(instance_name)), log_saved))


def _recorded(items: Inventory, made: Made, state: ItemState | None, moment: str) -> Inventory:
    """``items`` with ``made`` listed: added as ``Pending`` (or ``state``), else updated in place."""
    fresh = InventoryItem(kind=made.kind, name=made.name, value=made.value, ssh=made.ssh, adopted=made.adopted,
                          recorded_at=moment)
    before = next((item for item in items if item.key == fresh.key), None)
    if before is None:
        return with_item(items, fresh.model_copy(update={"state": state or ItemState.PENDING}))
    update: dict[str, object] = {}
    if state is not None:
        update["state"] = state
    if made.value is not None:
        update["value"] = made.value
    if made.ssh is not None:
        update["ssh"] = made.ssh
    changed = before.model_copy(update=update)
    return items if changed == before else with_item(items, changed)


def with_intents(items: Iterable[InventoryItem], made: Iterable[Made], moment: datetime.datetime) -> Inventory:
    """For a stage's start write: what it will make, ``Pending`` unless already listed (then refreshed)."""
    inventory = tuple(items)
    for each in made:
        inventory = _recorded(inventory, each, None, format_time(moment))
    return inventory


def with_confirmed(items: Iterable[InventoryItem], made: Iterable[Made], moment: datetime.datetime) -> Inventory:
    """For a stage's end write, once it succeeded: what it made, ``Present``."""
    inventory = tuple(items)
    for each in made:
        inventory = _recorded(inventory, each, ItemState.PRESENT, format_time(moment))
    return inventory


def with_worker_objects(items: Iterable[InventoryItem], instance_name: str, moment: datetime.datetime, *,
                        secret_made: bool, log_saved: bool) -> Inventory:
    """The Secret and the log ConfigMap, folded into whichever stage write comes next."""
    inventory = tuple(items)
    for made, done in made_by_worker(instance_name, secret_made=secret_made, log_saved=log_saved):
        inventory = _recorded(inventory, made, ItemState.PRESENT if done else None, format_time(moment))
    return inventory
