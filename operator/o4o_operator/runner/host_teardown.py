"""Teardown on an existing host: what the instance made there, removed by ``teardown-host.sh``.

Owns: whether the host step runs (only for ``spec.provider.existing``, and only once a host stage has
started there: an instance that never reached its host left nothing on it), connecting as the stages do
(the instance's SSH key, the pinned host keys), and running the rendered script with its timeout and the
database mode in its environment (the script reads the role and database names from the host's own record).
Lightsail servers are deleted whole, so this never runs there. Errors propagate (an SSH failure as
``ConnectionLost``), so the deletion is retried; it must not decide anything about cloud or DNS resources.
"""

from __future__ import annotations

import asyncssh

from o4o_operator.errors import TransientError
from o4o_operator.models import DeploymentInstanceStatus
from o4o_operator.pipeline.stages import STAGES
from o4o_operator.rendering import render
from o4o_operator.runner.instance import InstanceContext

SCRIPT = "teardown-host"
TIMEOUT_SECONDS = 900.0
"""Removing a few releases' node_modules, dropping a database: minutes at most on a slow host."""
_HOST_STAGES = frozenset(stage.name.value for stage in STAGES if stage.script is not None)


def reached_host(status: DeploymentInstanceStatus) -> bool:
    """Whether a host stage ever started on the recorded server (else the host holds nothing of ours)."""
    if not status.server.name:
        return False
    return any(record.started_at for record in status.stages if record.name in _HOST_STAGES)


async def teardown_host(instance: InstanceContext) -> str | None:
    """Remove the instance's things from its existing host; what was done, or None if there was nothing to do."""
    existing = instance.spec.provider.existing
    if existing is None or not reached_host(instance.status):
        return None
    host = instance.host_context()
    script = render.render_script(SCRIPT, host)
    mode = "local" if instance.spec.database.external is None else "external"
    session = await instance.session()
    try:
        result = await session.run(script, timeout=TIMEOUT_SECONDS, log=instance.log,
                                   public_env={"O4O_DB_MODE": mode})
    except asyncssh.Error as error:
        raise TransientError("ConnectionLost", f"SSH session failed: {error}") from error
    results = result.results
    if results.get("teardown") != "finished":
        raise TransientError("HostTeardownFailed", f"{SCRIPT} did not report that it finished")
    database = results.get("database", "unknown")
    nginx = results.get("nginx", "unknown")
    return (f"{host.slug} on {existing.host} (its PM2 app, user {host.app_user}, directories, nginx site: "
            f"{nginx}, certificate: {results.get('certificate', 'unknown')}, database: {database})")
