"""The drift check: is what we built still there and healthy?

Owns: checking that the server exists and runs, that the site answers exactly
200 for ``/`` and the API health path through nginx (over SSH, against
localhost: HTTP with the Host header before the certificate exists, HTTPS to
the domain verified against ``spec.tls.certificateCABundle`` after; see
``templates/scripts/_health.sh``), and how long the certificate has left. A lost property
turns its stage back to Failed with a reason, so the pipeline repairs it.
Must not repair anything itself.
"""

from __future__ import annotations

import datetime

from o4o_operator import metrics
from o4o_operator.errors import StageError
from o4o_operator.models import DeploymentInstanceStatus
from o4o_operator.pipeline.decisions import format_time, parse_time
from o4o_operator.pipeline.stages import STAGES_BY_NAME, StageName
from o4o_operator.pipeline.transitions import with_stage_invalidated, with_summary
from o4o_operator.providers.ownership import is_ours
from o4o_operator.rendering import render
from o4o_operator.runner.instance import InstanceContext


async def _server_problem(instance: InstanceContext) -> str | None:
    lightsail = instance.spec.provider.lightsail
    if lightsail is None or not instance.status.server.name:
        return None
    facts = await (await instance.cloud()).find_server(instance.status.server.name)
    if facts is None:
        return f"server {instance.status.server.name} is gone"
    if not is_ours(facts.tags, instance.ref.uid):
        return f"server {instance.status.server.name} no longer carries this instance's uid tag"
    if facts.state != "running":
        return f"server {instance.status.server.name} is {facts.state}"
    return None


async def _health_problem(instance: InstanceContext) -> str | None:
    host = instance.host_context()
    session = await instance.session()
    try:
        await session.run(render.render_script("check-health", host), timeout=60, log=instance.log)
    except StageError as error:
        return f"health check failed: {error.message}"
    return None


def certificate_problem(not_after: str | None, now: datetime.datetime, warning_days: float) -> str | None:
    expiry = parse_time(not_after)
    if expiry is None:
        return None
    days_left = (expiry - now).total_seconds() / 86400
    if days_left < warning_days:
        return f"certificate expires in {days_left:.1f} days"
    return None


async def check_drift(instance: InstanceContext, now: datetime.datetime) -> DeploymentInstanceStatus:
    """Run the checks; return the status with any lost stage invalidated and lastCheckTime set."""
    status = instance.status
    instance.log.stage = "check"
    checks = (
        (StageName.PROVISION, "ServerNotRunning", _server_problem),
        (StageName.CONFIGURE, "HealthCheckFailed", _health_problem),
    )
    for stage_name, reason, check in checks:
        try:
            problem = await check(instance)
        except StageError as error:
            problem = f"check could not run: {error.reason}: {error.message}"
        if problem:
            instance.log(f"Drift: {problem}")
            status = with_stage_invalidated(status, STAGES_BY_NAME[stage_name], reason, problem, now)
            break
    not_after = status.certificate.not_after
    expiry = parse_time(not_after)
    if expiry is not None:
        metrics.CERTIFICATE_EXPIRY.labels(namespace=instance.ref.namespace, name=instance.ref.name).set(
            expiry.timestamp())
    expiring = certificate_problem(not_after, now, instance.runtime.settings.certificate_warning_days)
    if expiring:
        instance.log(f"Drift: {expiring}")
        status = with_stage_invalidated(status, STAGES_BY_NAME[StageName.TLS], "CertificateExpiring",
                                        expiring, now)
    status = status.model_copy(update={"last_check_time": format_time(now)})
    following, hashes, _ = await instance.decide(status, now)
    return with_summary(status, following, hashes, instance.ref.generation, now)
