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
from collections.abc import Iterable

from o4o_operator.errors import InvalidSpecError, StageError
from o4o_operator.kubeapi import ApiError, KubeApi
from o4o_operator.models import DeletionPolicy, DeploymentInstanceSpec, secret_finalizer
from o4o_operator.runner.context import StageContext

logger = logging.getLogger("o4o_operator.secret_holds")
AWS_CREDENTIALS_FIELD = "spec.provider.lightsail.credentialsSecretRef"


def teardown_secrets(spec: DeploymentInstanceSpec) -> tuple[str, ...]:
    """The Secrets teardown will read for ``spec`` (none when it retains everything)."""
    lightsail = spec.provider.lightsail
    if spec.deletion_policy is DeletionPolicy.RETAIN or lightsail is None or lightsail.credentials_secret_ref is None:
        return ()
    return (lightsail.credentials_secret_ref.name,)


async def keep_teardown_secrets(ctx: StageContext) -> None:
    """Hold what teardown needs and release what it no longer needs. Failures are retried next pass."""
    try:
        await _keep(ctx)
    except (ApiError, StageError) as error:
        logger.warning("Could not update the teardown holds on Secrets of %s/%s: %s", ctx.ref.namespace,
                       ctx.ref.name, error)


async def _keep(ctx: StageContext) -> None:
    wanted = teardown_secrets(ctx.spec)
    held = ctx.status.held_secrets
    kube, namespace, finalizer = ctx.runtime.kube, ctx.ref.namespace, secret_finalizer(ctx.ref.uid)
    if not set(wanted) <= set(held):
        await ctx.save(held_secrets=tuple(sorted({*held, *wanted})))  # the intent first
    for name in wanted:
        try:
            secret = await ctx.secret(name, AWS_CREDENTIALS_FIELD)  # read once per pass anyway
        except InvalidSpecError:
            continue  # missing or unreadable: the stage that needs it stalls naming the field
        if finalizer in secret.finalizers or secret.deleting or ctx.body["metadata"].get("deletionTimestamp"):
            continue
        if await kube.set_secret_finalizer(namespace, name, finalizer, present=True):
            logger.info("Held Secret %s/%s for the teardown of %s", namespace, name, ctx.ref.name)
    released = [name for name in held if name not in wanted]
    if released:
        await release(kube, namespace, ctx.ref.uid, released)
        await ctx.save(held_secrets=tuple(sorted(wanted)))


async def release(kube: KubeApi, namespace: str, uid: str, names: Iterable[str]) -> None:
    """Remove instance ``uid``'s finalizer from each Secret (one that is gone has nothing to release)."""
    for name in sorted(set(names)):
        await kube.set_secret_finalizer(namespace, name, secret_finalizer(uid), present=False)
