"""The drift check: is what we built still there and healthy?

Owns: checking that the server exists and runs, that the site answers exactly
200 for ``/`` and the API health path through nginx (over SSH, against
localhost: HTTP with the Host header before the certificate exists, HTTPS to
the domain verified against ``spec.tls.certificateCABundle`` after; see
``templates/scripts/_health.sh``) and that the API's health body, fetched through
a tunnel, says healthy (``runner/health_gate.py``), and how long the certificate has left: the
checks each stage's row names (``Stage.drift``), of the stages the decision
names (every one when settled; those before the stalled stage when stalled).
It returns what it found lost (:class:`Finding`); the worker turns those stages
back to Failed, so the pipeline repairs them, or, while stalled, reports them.
Must not repair anything, decide, or write status itself.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Awaitable, Callable, Iterable, Mapping

from o4o_operator import metrics
from o4o_operator.errors import StageError
from o4o_operator.pipeline.decisions import parse_time
from o4o_operator.pipeline.stages import STAGES, DriftCheck, Stage
from o4o_operator.providers.ownership import is_ours
from o4o_operator.runner.health_gate import check_health
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.inventory import server_identity


async def _server_problem(instance: InstanceContext, _now: datetime.datetime) -> str | None:
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
    recorded = server_identity(instance.status.inventory, instance.status.server.name)
    if recorded and facts.cloud_id and facts.cloud_id != recorded:
        return f"server {instance.status.server.name} is another machine ({facts.cloud_id}) than the one set up"
    return None


async def _health_problem(instance: InstanceContext, _now: datetime.datetime) -> str | None:
    try:
        await check_health(await instance.session(), instance.host_context(), instance.log)
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


async def _certificate_problem(instance: InstanceContext, now: datetime.datetime) -> str | None:
    not_after = instance.status.certificate.not_after
    expiry = parse_time(not_after)
    if expiry is not None:
        metrics.CERTIFICATE_EXPIRY.labels(namespace=instance.ref.namespace, name=instance.ref.name).set(
            expiry.timestamp())
    return certificate_problem(not_after, now, instance.runtime.settings.certificate_warning_days)


@dataclasses.dataclass(frozen=True)
class Finding:
    """A stage whose result is gone: the worker turns it back to Failed, so the pipeline repairs it."""

    stage: Stage
    reason: str
    message: str


_CHECKS: Mapping[DriftCheck, Callable[[InstanceContext, datetime.datetime], Awaitable[str | None]]] = {
    DriftCheck.SERVER_RUNNING: _server_problem,
    DriftCheck.HTTP_HEALTH: _health_problem,
    DriftCheck.CERTIFICATE_EXPIRY: _certificate_problem,
}
_READS_STATUS_ONLY = frozenset({DriftCheck.CERTIFICATE_EXPIRY})


async def check_drift(instance: InstanceContext, now: datetime.datetime,
                      stages: Iterable[Stage] = STAGES) -> tuple[Finding, ...]:
    """Run the drift check of each of ``stages``, in stage order; say what was found lost.

    Once a check that looks at the server found a problem, later ones of that kind are skipped (the
    earliest stage is repaired first); checks that read only the status (the certificate's expiry) always run.
    """
    instance.log.stage = "check"
    findings: list[Finding] = []
    host_problem = False
    for stage in sorted(stages, key=STAGES.index):
        check = stage.drift
        if check is None or (host_problem and check not in _READS_STATUS_ONLY):
            continue
        try:
            problem = await _CHECKS[check](instance, now)
        except StageError as error:
            problem = f"check could not run: {error.reason}: {error.message}"
        if problem:
            instance.log(f"Drift: {problem}")
            findings.append(Finding(stage, check.reason, problem))
            host_problem = host_problem or check not in _READS_STATUS_ONLY
    return tuple(findings)
