"""Teardown on deletion: what it made on an existing host, the DNS records, then the static IP, the server
and its key pair, in reverse.

Owns: deleting exactly what this instance made, as ``status.inventory`` lists it (on an existing host, what
``teardown-host.sh`` removes, on the host, with the SSH key Secret the inventory records, so a spec that no
longer parses still gets it, see :mod:`o4o_operator.runner.host_teardown`; the cloud items and DNS records
through :mod:`o4o_operator.runner.teardown_items`, each with the provider, zone, region and credentials Secret
it was made with, so that neither a moved DNS spec nor a spec that no longer parses orphans anything; an
instance made before inventories existed gets one from its status, see
:mod:`o4o_operator.runner.legacy_inventory`), the log ConfigMap and the operator-owned Secret
``<name>-database`` by our label and ownerReference; a backup bucket with its objects, and its key's Secret
``<name>-backup-bucket``, see :mod:`o4o_operator.runner.backup_bucket`), treating NotFound as success, and leaving
everything when ``deletionPolicy`` is Retain, where the Secret and the log ConfigMap lose their
ownerReference first (so no garbage collector takes them, and an instance of that name adopts them);
then releasing the Secrets held for teardown
(see :mod:`o4o_operator.runner.secret_holds`). Errors propagate so the caller retries: a
deletion never turns permanent. To orphan a stuck instance, set
``spec.deletionPolicy: Retain``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import pydantic

from o4o_operator import metrics
from o4o_operator.errors import TransientError
from o4o_operator.models import DeletionPolicy, DeploymentInstanceSpec
from o4o_operator.models_inventory import ItemKind, items_of
from o4o_operator.pipeline.backup_buckets import key_secret_name
from o4o_operator.pipeline.transitions import status_from_body, with_deleting
from o4o_operator.providers.ownership import RecordOwner
from o4o_operator.redaction import Redactor
from o4o_operator.runner.backup_bucket import delete_buckets
from o4o_operator.runner.generated_secret import delete_generated_secret, release_generated_secret
from o4o_operator.runner.host_teardown import teardown_host
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.legacy_inventory import legacy_host_items, legacy_inventory
from o4o_operator.runner.log import InstanceLog
from o4o_operator.runner.made_items import log_configmap_name
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.secret_holds import release, teardown_secrets
from o4o_operator.runner.teardown_items import delete_cloud_items, delete_dns_records


async def teardown(runtime: Runtime, body: Mapping[str, Any]) -> str:
    """Delete what the instance owns, then release the Secrets held for this (only once all went well).

    ``body`` is the instance as Kopf last saw it, whose status is only a summary (see
    :mod:`o4o_operator.kopf_watch_trim`): the whole status (the inventory, the Secrets held) is read from the API
    first, which also has the worker's last write even when Kopf has not seen it yet."""
    # Gone already (its finalizer removed by hand meanwhile): what is known is still torn down.
    body = await runtime.stored_instance(body["metadata"]) or body
    message = await _delete_resources(runtime, body)
    meta = body["metadata"]
    held = set(status_from_body(body.get("status")).held_secrets)
    with contextlib.suppress(pydantic.ValidationError):
        held.update(teardown_secrets(DeploymentInstanceSpec.model_validate(body.get("spec") or {})))
    await release(runtime.kube, meta["namespace"], meta["uid"], held)
    runtime.in_flight.pop(meta["uid"], None)
    with contextlib.suppress(KeyError):  # expiry of a deleted instance must not page anyone
        metrics.CERTIFICATE_EXPIRY.remove(meta["namespace"], meta["name"])
    return message


def _spec_or_none(body: Mapping[str, Any]) -> DeploymentInstanceSpec | None:
    try:
        return DeploymentInstanceSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError:
        return None


def _existing(body: Mapping[str, Any]) -> bool:
    provider = (body.get("spec") or {}).get("provider")
    return isinstance(provider, Mapping) and "existing" in provider


def _retained(body: Mapping[str, Any], spec: DeploymentInstanceSpec | None) -> bool:
    """Retain, read from the stored spec even when the rest of it no longer parses."""
    if spec is not None:
        return spec.deletion_policy is DeletionPolicy.RETAIN
    return str((body.get("spec") or {}).get("deletionPolicy", "")) == DeletionPolicy.RETAIN.value


async def _delete_resources(runtime: Runtime, body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    status = status_from_body(body.get("status"))
    spec = _spec_or_none(body)
    if _retained(body, spec):
        # Before the finalizer goes: with our ownerReference, the garbage collector would delete both.
        await release_generated_secret(runtime.kube, meta["namespace"], meta["name"], meta["uid"])
        await runtime.kube.release_owned("configmaps", meta["namespace"], log_configmap_name(meta["name"]),
                                         meta["uid"])
        await runtime.kube.release_owned("secrets", meta["namespace"], key_secret_name(meta["name"]), meta["uid"])
        hosts = [item.name for item in items_of(status.inventory, ItemKind.HOST)]
        if spec is not None and spec.provider.existing is not None:
            hosts = [spec.provider.existing.host]
        made = f"what it made on host {hosts[0]}" if hosts else "the server, static IP, key pair"
        return (f"Retained {made}, the DNS record, Secret {meta['name']}-database and ConfigMap "
                f"{log_configmap_name(meta['name'])} (deletionPolicy: Retain)")
    inventory = status.inventory or legacy_inventory(body, status)
    generation = int(meta.get("generation", 1))
    what = ", ".join(f"{len(items_of(inventory, kind))} {label}" for kind, label in _LABELS
                     if items_of(inventory, kind)) or "nothing recorded"
    deleting = with_deleting(status, f"Tearing down what it made ({what})", generation, runtime.clock())
    await runtime.kube.patch_status(meta["namespace"], meta["name"], deleting.to_body())

    # A cloud call of the worker (cancelled when deletion began) may still be running in its thread: a create
    # landing after the lookups below would be orphaned. Wait for it; retry the deletion if it takes too long.
    if not await runtime.in_flight_for(meta["uid"]).wait_idle(IN_FLIGHT_WAIT_SECONDS):
        raise TransientError("CloudCallsInFlight", "cloud calls made before the deletion are still running; "
                             "teardown waits for them")
    done: list[str] = []
    if spec is not None and not items_of(inventory, ItemKind.HOST):  # made before the inventory listed hosts
        instance = InstanceContext(runtime, body, spec, status, InstanceLog(Redactor()))
        inventory = (*inventory, *legacy_host_items(instance))
    on_host = await teardown_host(runtime, meta, inventory, InstanceLog(Redactor()))  # errors propagate: retried
    if on_host:
        done.append(on_host)
    elif spec is None and status.server.name and not items_of(inventory, ItemKind.HOST) and _existing(body):
        done.append(f"nothing on existing host {status.server.name} (made before the inventory listed hosts, and "
                    "the spec no longer parses, so the host and its SSH key are unknown)")
    owner = RecordOwner(meta["namespace"], meta["name"], meta["uid"])
    done += await delete_dns_records(runtime, owner, inventory)
    cloud_done, _ = await delete_cloud_items(runtime, meta["namespace"], meta["uid"], inventory)
    done += cloud_done
    bucket_done, _ = await delete_buckets(runtime, meta["namespace"], meta["uid"], inventory)
    done += bucket_done
    await runtime.kube.delete_secret(meta["namespace"], key_secret_name(meta["name"]), meta["uid"])  # only ours
    with contextlib.suppress(Exception):  # only ours: a foreign ConfigMap of that name is left alone
        await runtime.kube.delete_configmap(meta["namespace"], log_configmap_name(meta["name"]), meta["uid"])
    # Only ours: a foreign Secret of that name is left alone. Errors propagate: teardown retries.
    await delete_generated_secret(runtime.kube, meta["namespace"], meta["name"], meta["uid"])
    return "Deleted " + ", ".join(done) if done else "Nothing to delete"


IN_FLIGHT_WAIT_SECONDS = 120.0
"""Longer than one boto3 call with its retries and timeouts takes, short of the handler's own patience."""
_LABELS = ((ItemKind.SERVER, "server"), (ItemKind.STATIC_IP, "static IP"), (ItemKind.KEY_PAIR, "key pair"),
           (ItemKind.DNS_RECORD, "DNS record"), (ItemKind.HOST, "existing host"), (ItemKind.DATABASE, "database"),
           (ItemKind.BUCKET, "backup bucket"))
