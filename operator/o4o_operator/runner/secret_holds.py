"""The Secrets teardown needs stay until teardown is done: the instance's own finalizer on each.

Owns: which Secrets an instance's teardown reads (the AWS credentials, for the cloud and DNS calls,
unless ``deletionPolicy`` is Retain), holding each with the finalizer
``deploy.o4o.io/teardown-<uid>`` (recorded in ``status.heldSecrets`` before it is added, so a crash
never leaves a hold nobody knows of), releasing it when the spec stops referencing the Secret, and
releasing every hold after teardown. When a namespace is deleted its Secrets and DeploymentInstances
go at once; the hold keeps the credentials readable until the instance's teardown has run.

Must not read, log or keep any Secret value, and must not decide anything about stages.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable

from o4o_operator.errors import InvalidSpecError, StageError
from o4o_operator.kubeapi import ApiError, KubeApi
from o4o_operator.models import DeletionPolicy, DeploymentInstanceSpec, secret_finalizer
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.stage_steps import Checkpoint

logger = logging.getLogger("o4o_operator.secret_holds")
AWS_CREDENTIALS_FIELD = "spec.provider.lightsail.credentialsSecretRef"


def teardown_secrets(spec: DeploymentInstanceSpec) -> tuple[str, ...]:
    """The Secrets teardown will read for ``spec`` (none when it retains everything)."""
    lightsail = spec.provider.lightsail
    if spec.deletion_policy is DeletionPolicy.RETAIN or lightsail is None or lightsail.credentials_secret_ref is None:
        return ()
    return (lightsail.credentials_secret_ref.name,)


async def keep_teardown_secrets(instance: InstanceContext) -> AsyncIterator[Checkpoint]:
    """Hold what teardown needs and release what it no longer needs; yield the held list for the worker to
    write (the intent before a hold, the rest after a release). Failures are retried next pass."""
    try:
        async for checkpoint in _keep(instance):
            yield checkpoint
    except (ApiError, StageError) as error:
        logger.warning("Could not update the teardown holds on Secrets of %s/%s: %s", instance.ref.namespace,
                       instance.ref.name, error)


async def _keep(instance: InstanceContext) -> AsyncIterator[Checkpoint]:
    wanted = teardown_secrets(instance.spec)
    held = instance.status.held_secrets
    kube, namespace, finalizer = instance.runtime.kube, instance.ref.namespace, secret_finalizer(instance.ref.uid)
    if not set(wanted) <= set(held):
        yield Checkpoint({"held_secrets": tuple(sorted({*held, *wanted}))})  # the intent first
    for name in wanted:
        try:
            secret = await instance.secret(name, AWS_CREDENTIALS_FIELD)  # read once per pass anyway
        except InvalidSpecError:
            continue  # missing or unreadable: the stage that needs it stalls naming the field
        if finalizer in secret.finalizers or secret.deleting or instance.body["metadata"].get("deletionTimestamp"):
            continue
        if await kube.set_secret_finalizer(namespace, name, finalizer, present=True):
            logger.info("Held Secret %s/%s for the teardown of %s", namespace, name, instance.ref.name)
    released = [name for name in held if name not in wanted]
    if released:
        await release(kube, namespace, instance.ref.uid, released)
        yield Checkpoint({"held_secrets": tuple(sorted(wanted))})


async def release(kube: KubeApi, namespace: str, uid: str, names: Iterable[str]) -> None:
    """Remove instance ``uid``'s finalizer from each Secret (one that is gone has nothing to release)."""
    for name in sorted(set(names)):
        await kube.set_secret_finalizer(namespace, name, secret_finalizer(uid), present=False)
