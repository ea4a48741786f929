"""Teardown on an existing host: what the instance made there, removed by ``teardown-host.sh``, from the
inventory alone.

Owns: whether the host step runs (only when the inventory lists an existing host and something the instance
made on it: an instance that never reached its host left nothing there; and only with a pinned host key:
teardown never trusts a key on first use), connecting as the inventory recorded (address, port, SSH user,
pinned host keys, the SSH key read from the Secret it names), the host context the script is rendered with
(:func:`teardown_context`: names and paths derived from the instance's namespace and name, which cannot
change, never from a status that anyone with access to it could edit; the certificate's domain as recorded),
and running it with its timeout and the database mode in its environment (local when the inventory lists a
local database; the script reads the role and database names from the host's own record). It needs no
spec, so an instance whose spec no longer parses is still cleaned off its host. Lightsail servers are
deleted whole, so this never runs there. Errors propagate (an SSH failure as ``ConnectionLost``), so the
deletion is retried; it must not decide anything about cloud or DNS resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncssh

from o4o_operator.errors import InvalidSpecError, TransientError
from o4o_operator.models import DeploymentInstanceStatus
from o4o_operator.models_inventory import HostAccess, Inventory, ItemKind, items_of
from o4o_operator.pipeline.stages import STAGES
from o4o_operator.rendering import HostContext, render
from o4o_operator.runner.log import InstanceLog
from o4o_operator.runner.runtime import Runtime

SCRIPT = "teardown-host"
TIMEOUT_SECONDS = 900.0
"""Removing a few releases' node_modules, dropping a database: minutes at most on a slow host."""
NO_CERTIFICATE = "no-certificate.invalid"
"""The domain the script is rendered with when no certificate is recorded: ``.invalid`` is reserved (RFC
6761), so no certificate of that name exists, and the script finds none to delete."""
KEY_FIELD = "status.inventory[].ssh.privateKeySecret"
_HOST_STAGES = frozenset(stage.name.value for stage in STAGES if stage.script is not None)
_ON_HOST = (ItemKind.HOST_USER, ItemKind.HOST_DIRECTORY)
"""Made by the first host stage (runtime): listed, even as an intent, once the instance may have reached it."""


def reached_host(status: DeploymentInstanceStatus) -> bool:
    """Whether a host stage ever started on the recorded server (for an instance whose inventory predates
    hosts: see :mod:`o4o_operator.runner.legacy_inventory`)."""
    if not status.server.name:
        return False
    return any(record.started_at for record in status.stages if record.name in _HOST_STAGES)


def teardown_context(meta: Mapping[str, Any], inventory: Inventory) -> HostContext:
    """What ``teardown-host.sh`` is rendered with: the instance's names and paths, the recorded certificate."""
    certificates = items_of(inventory, ItemKind.CERTIFICATE)
    return HostContext.for_teardown(meta["namespace"], meta["name"],
                                    certificates[-1].name if certificates else NO_CERTIFICATE)


async def _private_key(runtime: Runtime, namespace: str, ssh: HostAccess) -> str:
    secret = await runtime.kube.read_secret(namespace, ssh.private_key_secret, KEY_FIELD)
    if ssh.private_key_key not in secret.data:
        raise InvalidSpecError(KEY_FIELD, f"Secret {ssh.private_key_secret!r} has no key {ssh.private_key_key!r}",
                               reason="SecretKeyMissing")
    return secret.data[ssh.private_key_key]


async def teardown_host(runtime: Runtime, meta: Mapping[str, Any], inventory: Inventory,
                        log: InstanceLog) -> str | None:
    """Remove the instance's things from its existing host; what was done, or None if there was nothing to do."""
    hosts = items_of(inventory, ItemKind.HOST)
    host = hosts[-1] if hosts else None  # the host the spec named last
    if host is None or host.ssh is None or not any(items_of(inventory, kind) for kind in _ON_HOST):
        return None
    ssh = host.ssh
    if not ssh.host_key_fingerprints:
        return f"nothing on existing host {host.name} (no host key was ever pinned for it, so no session reached it)"
    context = teardown_context(meta, inventory)
    script = render.render_script(SCRIPT, context)
    mode = "local" if items_of(inventory, ItemKind.DATABASE) else "external"
    private_key = await _private_key(runtime, meta["namespace"], ssh)
    log.redactor.add([private_key])
    session = await runtime.connector.connect(host.name, ssh.port, ssh.user, private_key, ssh.host_key_fingerprints,
                                              runtime.settings.ssh_connect_timeout)
    try:
        result = await session.run(script, timeout=TIMEOUT_SECONDS, log=log, public_env={"O4O_DB_MODE": mode})
    except asyncssh.Error as error:
        raise TransientError("ConnectionLost", f"SSH session failed: {error}") from error
    results = result.results
    if results.get("teardown") != "finished":
        raise TransientError("HostTeardownFailed", f"{SCRIPT} did not report that it finished")
    return (f"{context.slug} on {host.name} (its PM2 app, user {context.app_user}, directories, nginx site: "
            f"{results.get('nginx', 'unknown')}, certificate: {results.get('certificate', 'unknown')}, "
            f"database: {results.get('database', 'unknown')})")
