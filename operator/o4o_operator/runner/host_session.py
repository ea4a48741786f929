"""The SSH session of one pass of an instance's worker, and trust on first use.

Owns: :class:`HostSessions`: one session per pass to the instance's server, pinning the host keys the
policy gives (:mod:`o4o_operator.runner.host_keys`); when it gives none (an existing host whose spec trusts
on first use, and no key trusted yet), pinning the key seen from then on: recorded as a status change the
worker takes (:meth:`HostSessions.take_learned`), logged, and announced as a Warning Event. A permanent SSH
failure is raised naming the field to fix. Must not decide the policy, and must not write status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from o4o_operator.errors import StageError
from o4o_operator.models import DeploymentInstanceSpec, DeploymentInstanceStatus, HostKeySource
from o4o_operator.providers.protocols import HostSession
from o4o_operator.runner.host_keys import host_key_pins, ssh_target, with_field
from o4o_operator.runner.log import InstanceLog
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.stage_steps import Changes


class HostSessions:
    """The pass's one SSH session, opened on first use; what was learnt while opening it, for the worker."""

    def __init__(self, runtime: Runtime, body: Mapping[str, Any], spec: DeploymentInstanceSpec,
                 status: Callable[[], DeploymentInstanceStatus], log: InstanceLog,
                 private_key: Callable[[], Awaitable[str]]) -> None:
        self._runtime = runtime
        self._body = body
        self._spec = spec
        self._status = status
        self._log = log
        self._private_key = private_key
        self._session: HostSession | None = None
        self._learned: dict[str, Any] = {}

    def take_learned(self) -> Changes:
        """Status changes learnt while talking to the host (a key trusted on first use), once each."""
        learned, self._learned = self._learned, {}
        return learned

    async def session(self) -> HostSession:
        """The SSH session, opened once per pass, pinning the known host keys."""
        if self._session is None:
            host, port = ssh_target(self._spec, self._status())
            pins = host_key_pins(self._spec, self._status())
            try:
                self._session = await self._runtime.connector.connect(
                    host, port, self._spec.ssh.user, await self._private_key(), pins or None,
                    self._runtime.settings.ssh_connect_timeout)
            except StageError as error:
                raise with_field(self._spec, error) from error
            if not pins:
                await self._trusted_on_first_use(host, port, self._session.host_key_fingerprint)
        return self._session

    async def _trusted_on_first_use(self, host: str, port: int, fingerprint: str) -> None:
        """Pin the first key seen from now on, and say so in status, the log and an Event."""
        self._learned["server"] = self._status().server.model_copy(update={
            "host_key_fingerprint": fingerprint, "host_key_fingerprints": (fingerprint,),
            "host_key_source": HostKeySource.TRUSTED_ON_FIRST_USE})
        message = (f"Trusted the SSH host key {fingerprint} of {host}:{port} on first use "
                   "(spec.ssh.trustOnFirstUse); it is pinned from now on")
        self._log(message)
        await self._runtime.kube.post_event(self._body, "HostKeyTrustedOnFirstUse", message, warning=True)
