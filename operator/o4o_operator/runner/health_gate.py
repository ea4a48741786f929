"""Health, judged by the operator: the drift check's probe and configure's health-gated activation.

Owns: one health check (:func:`check_health`): the API's health body fetched through an SSH tunnel to
``spec.apiPort`` and judged by :func:`o4o_operator.pipeline.health.judge_health`, then ``check-health`` on
the host, which probes ``/`` and the health path through nginx (TLS, site, proxy: the whole path a visitor
takes) for their status codes and fails unless each is 200 and the body was judged healthy. And the gate
after ``configure`` switched ``current`` (:func:`gate_release`): the attempts, bounded by the host context's
``health_attempts`` and ``health_interval_seconds`` (the settings the host loop used), then
``settle-release`` to keep the release, or to roll back to the one it replaced and settle that, and the
reasons and messages users see (``HealthCheckFailed``, ``RolledBack``).

Must not: parse JSON or decide healthiness itself (pipeline/health.py does), follow redirects (the client
never does), or write status. Safe to resume: what to roll back to is root's record on the host
(``<commit>.previous``), written before the switch and removed once settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from o4o_operator.errors import PermanentError, TransientError
from o4o_operator.pipeline.health import HealthRule, judge_health
from o4o_operator.pipeline.stages import STAGES_BY_NAME, StageName
from o4o_operator.providers.instance_api import InstanceApi, instance_api
from o4o_operator.providers.protocols import HostSession, LogSink
from o4o_operator.rendering import HostContext, render
from o4o_operator.runner.instance import InstanceContext

FETCH_TIMEOUT_SECONDS = 10.0
"""One fetch of the health body (as the probe's ``curl --max-time 10``)."""
PROBE_TIMEOUT_SECONDS = 60.0
"""One ``check-health`` run on the host."""
SETTLE_TIMEOUT_SECONDS = STAGES_BY_NAME[StageName.CONFIGURE].script_timeout_seconds
UNHEALTHY = "HealthCheckFailed"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
Sleep = Callable[[float], Awaitable[None]]
pause: Sleep = asyncio.sleep
"""How :func:`run_health_gate` waits between attempts (tests replace it)."""


def health_rule(host: HostContext) -> HealthRule:
    """``spec.build.health`` as the host context carries it."""
    return HealthRule(host.health_path, host.health_body_field, host.health_expect)


@contextlib.asynccontextmanager
async def health_api(session: HostSession, host: HostContext) -> AsyncIterator[InstanceApi | None]:
    """A client on a tunnel to the API's port; None when no body field is to be read (no tunnel then)."""
    if not host.health_body_field:
        yield None
        return
    async with session.tunnel(host.api_port) as base_url, \
            instance_api(base_url, timeout=FETCH_TIMEOUT_SECONDS) as api:
        yield api


async def judge_body(api: InstanceApi | None, host: HostContext) -> tuple[bool, str]:
    """Whether the API's health body says healthy, and the words shown beside its line."""
    if api is None:
        return True, ""
    answer = await api.health(host.health_path)
    verdict = judge_health(health_rule(host), answer.status, answer.body)
    where = f"127.0.0.1:{host.api_port}{host.health_path}"
    if answer.status is None:
        said = f"(the API at {where} did not answer: {answer.words})"
    elif answer.status != 200:
        said = f"(the API at {where} answered HTTP {answer.status})"
    else:
        said = verdict.said
    return verdict.healthy, _CONTROL.sub(" ", said).strip()


async def probe(session: HostSession, host: HostContext, log: LogSink, api: InstanceApi | None,
                attempt: str | None = None) -> None:
    """One check: the body judged here, the status codes through nginx on the host; raises
    ``HealthCheckFailed`` (a TransientError) unless all are healthy. ``attempt`` ("n/of"): an activation's,
    logged into the release's activation log too."""
    healthy, said = await judge_body(api, host)
    public_env = {"O4O_HEALTH_BODY_OK": "1" if healthy else "0", "O4O_HEALTH_SAID": said}
    if attempt is not None:
        public_env["O4O_HEALTH_ATTEMPT"] = attempt
    await session.run(render.render_script("check-health", host), timeout=PROBE_TIMEOUT_SECONDS, log=log,
                      public_env=public_env)


async def check_health(session: HostSession, host: HostContext, log: LogSink) -> None:
    """The drift check's health check: one :func:`probe`."""
    async with health_api(session, host) as api:
        await probe(session, host, log, api)


async def _attempts(session: HostSession, host: HostContext, log: LogSink, sleep: Sleep) -> bool:
    """Up to ``health_attempts`` probes, ``health_interval_seconds`` apart; True at the first healthy one."""
    of = host.health_attempts
    async with health_api(session, host) as api:
        for attempt in range(1, of + 1):
            try:
                await probe(session, host, log, api, f"{attempt}/{of}")
                return True
            except TransientError as error:
                if error.reason != UNHEALTHY:
                    raise
            if attempt < of:
                await sleep(host.health_interval_seconds)
    return False


async def _settle(session: HostSession, host: HostContext, log: LogSink, mode: str) -> Mapping[str, str]:
    result = await session.run(render.render_script("settle-release", host), timeout=SETTLE_TIMEOUT_SECONDS,
                               log=log, public_env={"O4O_SETTLE": mode})
    return result.results


async def gate_release(session: HostSession, host: HostContext, log: LogSink, results: Mapping[str, str],
                       *, sleep: Sleep = asyncio.sleep) -> dict[str, str]:
    """After ``configure`` switched ``current`` to ``host.commit`` (its ``rollbackTo``: the release it
    replaced, if any): keep it if healthy (``release``), else roll back and raise ``RolledBack``, or, with
    nothing to roll back to, ``HealthCheckFailed``. Re-running it after a crash reaches the same end."""
    commit = host.commit
    assert commit, "the gate needs the release's commit"
    if await _attempts(session, host, log, sleep):
        settled = await _settle(session, host, log, "healthy")
        return {"release": settled.get("release") or commit}
    rolled = (await _settle(session, host, log, "failed")).get("rolledBackTo", "")
    log_path = host.activation_log(commit)
    if not rolled:
        raise TransientError(UNHEALTHY, f"Release {commit} failed its health check and there is no earlier "
                             "release to roll back to")
    log(f"==> Checking the health of {rolled}, rolled back to")
    outcome = "healthy" if await _attempts(session, host, log, sleep) else "also unhealthy"
    await _settle(session, host, log, "rolled-back")
    raise PermanentError("RolledBack", f"Release {commit} failed its health check; rolled back to {rolled} "
                         f"({outcome}). Its log is on the host in {log_path}")


async def run_health_gate(instance: InstanceContext, host: HostContext,
                          results: Mapping[str, str]) -> dict[str, str]:
    """Configure's API step (a row's ``api_step``): :func:`gate_release` on the instance's session."""
    return await gate_release(await instance.session(), host, instance.log, results, sleep=pause)
