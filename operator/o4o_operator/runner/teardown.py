"""Teardown on deletion: what it made on an existing host, the DNS record, then the static IP, the server
and its key pair, in reverse.

Owns: deleting exactly what this instance owns (on an existing host, what ``teardown-host.sh`` removes,
see :mod:`o4o_operator.runner.host_teardown`; the server and key pair by their uid tag,
the DNS record by its ownership TXT record, the log ConfigMap and the operator-owned Secret
``<name>-database`` by our label and ownerReference), treating NotFound as success, and leaving
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
from o4o_operator.models import DeletionPolicy, DeploymentInstanceSpec, DnsProviderKind
from o4o_operator.pipeline.transitions import status_from_body, with_deleting
from o4o_operator.providers.ownership import is_ours
from o4o_operator.redaction import Redactor
from o4o_operator.runner.generated_secret import delete_generated_secret, release_generated_secret
from o4o_operator.runner.host_teardown import teardown_host
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.log import InstanceLog
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.secret_holds import release, teardown_secrets
from o4o_operator.runner.worker import log_configmap_name


async def teardown(runtime: Runtime, body: Mapping[str, Any]) -> str:
    """Delete what the instance owns, then release the Secrets held for this (only once all went well)."""
    message = await _delete_resources(runtime, body)
    meta = body["metadata"]
    held = set(status_from_body(body.get("status")).held_secrets)
    with contextlib.suppress(pydantic.ValidationError):
        held.update(teardown_secrets(DeploymentInstanceSpec.model_validate(body.get("spec") or {})))
    await release(runtime.kube, meta["namespace"], meta["uid"], held)
    with contextlib.suppress(KeyError):  # expiry of a deleted instance must not page anyone
        metrics.CERTIFICATE_EXPIRY.remove(meta["namespace"], meta["name"])
    return message


async def _delete_resources(runtime: Runtime, body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    status = status_from_body(body.get("status"))
    try:
        spec = DeploymentInstanceSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError:
        return "Spec unreadable; nothing known to tear down"
    existing = spec.provider.existing
    if spec.deletion_policy is DeletionPolicy.RETAIN:
        # Before the finalizer goes: with our ownerReference, the garbage collector would delete both.
        await release_generated_secret(runtime.kube, meta["namespace"], meta["name"], meta["uid"])
        await runtime.kube.release_owned("configmaps", meta["namespace"], log_configmap_name(meta["name"]),
                                         meta["uid"])
        made = f"what it made on host {existing.host}" if existing else "the server, static IP, key pair"
        return (f"Retained {made}, the DNS record, Secret {meta['name']}-database and ConfigMap "
                f"{log_configmap_name(meta['name'])} (deletionPolicy: Retain)")
    generation = int(meta.get("generation", 1))
    what = (f"what it made on host {existing.host} and the DNS record" if existing
            else "the DNS record, static IP and server")
    deleting = with_deleting(status, f"Tearing down {what}", generation, runtime.clock())
    await runtime.kube.patch_status(meta["namespace"], meta["name"], deleting.to_body())

    instance = InstanceContext(runtime, body, spec, status, InstanceLog(Redactor()))
    done: list[str] = []
    on_host = await teardown_host(instance)  # errors propagate: the deletion is retried
    if on_host:
        done.append(on_host)
    address = status.server.ip_address
    if spec.dns.provider is not DnsProviderKind.NONE and address:
        provider = await instance.dns()
        await provider.delete_a_record(spec.domain, spec.dns.hosted_zone_id or spec.dns.zone, address,
                                       instance.record_owner)
        done.append(f"DNS record {spec.domain} (if ours)")
    if spec.provider.lightsail is not None:
        cloud = await instance.cloud()
        name = instance.server_name
        found = await cloud.find_server(name)
        if found is None or is_ours(found.tags, instance.ref.uid):
            await cloud.delete_server(name, instance.static_ip_name)
            done.append(f"server {name} and its static IP")
        else:
            done.append(f"nothing of server {name}, which is not ours")
        key_pair = await cloud.find_key_pair(instance.own_key_pair_name)
        if key_pair is not None and is_ours(key_pair.tags, instance.ref.uid):
            await cloud.delete_key_pair(key_pair.name)
            done.append(f"key pair {key_pair.name}")
    with contextlib.suppress(Exception):  # only ours: a foreign ConfigMap of that name is left alone
        await runtime.kube.delete_configmap(meta["namespace"], log_configmap_name(meta["name"]), meta["uid"])
    # Only ours: a foreign Secret of that name is left alone. Errors propagate: teardown retries.
    await delete_generated_secret(runtime.kube, meta["namespace"], meta["name"], meta["uid"])
    return "Deleted " + ", ".join(done) if done else "Nothing to delete"
