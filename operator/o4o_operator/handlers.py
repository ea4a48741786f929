"""Thin Kopf glue: translate Kopf's events into the runner's calls, and nothing more.

Owns: the Kopf registrations (startup, login (fenced while leading), the per-instance worker daemon,
the wake-up on change, deletion), operator settings for Kopf (annotations for
progress, our finalizer, no peering), translating Kopf's objects (login's
ConnectionInfo, the memo) into the runner's, and turning runner errors into
Kopf's retry semantics. Deletion errors are always retryable. The operator-wide
state, the runtime and the metrics live in :mod:`o4o_operator.runner.runtime`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
from collections.abc import Callable
from typing import Any

import kopf

from o4o_operator import kopf_fence
from o4o_operator.errors import StageError
from o4o_operator.kubeapi import Credentials
from o4o_operator.models import FINALIZER, GROUP, PLURAL, VERSION, Phase
from o4o_operator.runner.runtime import OperatorState, Runtime
from o4o_operator.runner.settings import OperatorSettings
from o4o_operator.runner.teardown import teardown
from o4o_operator.runner.worker import InstanceWorker

RESOURCE = (GROUP, VERSION, PLURAL)
logger = logging.getLogger("o4o_operator")
HONOUR_SANDBOX_ROOT = False
"""Let sandbox hosts' ``O4O_ROOT`` prefix every path: a test hook, deliberately no setting and no
environment variable. Only :mod:`o4o_operator.testing.operator_main` sets it, before the operator starts."""
TEST_CLOCK: Callable[[], datetime.datetime] | None = None
"""The runtime's clock in a test world (so that a test can move time past a backup schedule's window); set only
by :mod:`o4o_operator.testing.operator_main`, like ``HONOUR_SANDBOX_ROOT``. None: the real clock."""


def _state(memo: kopf.Memo) -> OperatorState:
    """The operator-wide state. It lives in the ``shared`` dict of the operator's memo, which every
    object's memo (a shallow copy) shares: one runtime, credentials and phase tally for all instances
    (and the leader's term, which the CLI puts there when leader election is on)."""
    shared: dict[str, Any] = memo.setdefault("shared", {})
    state: OperatorState | None = shared.get("state")
    if state is None:
        state = OperatorState(OperatorSettings.from_environment(), honour_sandbox_root=HONOUR_SANDBOX_ROOT,
                              term=shared.get("term"), clock=TEST_CLOCK)
        shared["state"] = state
    return state


def _runtime(memo: kopf.Memo) -> Runtime:
    return _state(memo).runtime()


def operator_runtime(memo: kopf.Memo) -> Runtime:
    """The operator-wide runtime, for the other handler modules (handlers_fleet)."""
    return _runtime(memo)


LIST_CHUNK_SIZE = 50
"""Kopf lists the instances this many at a time as it starts (then watches). Kopf's default lists all at once:
1000 instances' whole bodies decoded at one moment, which the allocator keeps long after the copies Kopf keeps
are compacted (bench P4)."""


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_kopf(settings)
    _state(memo).start_memory_trim()


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Kopf's settings: our finalizer, its progress and diff-base in annotations, no Events of its own."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    settings.posting.enabled = False  # we post our own Events, already redacted
    settings.watching.server_timeout = 300
    settings.watching.chunk_size = LIST_CHUNK_SIZE


@kopf.on.login()
async def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | kopf.AiohttpSession | None:
    """The cluster's credentials, for our client and Kopf's. While leading, Kopf gets a session whose every
    write asks the term first (:mod:`o4o_operator.kopf_fence`); async, since the session needs the loop."""
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        return None
    state = _state(memo)
    state.credentials = credentials_from(info)
    return info if state.term is None else kopf_fence.fenced_session(info, state.term.check)


def credentials_from(info: kopf.ConnectionInfo) -> Credentials:
    def as_bytes(value: Any) -> bytes | None:
        """PEM, as the transport loads it: a kubeconfig's ``*-data`` fields are base64 of PEM (Kopf keeps
        them as found and decodes them itself, only for its own client)."""
        data = value.encode() if isinstance(value, str) else value
        if data is None or data.lstrip().startswith(b"-----BEGIN"):
            return data
        return base64.b64decode(data, validate=True)

    return Credentials(
        server=info.server, ca_path=str(info.ca_path) if info.ca_path else None, ca_data=as_bytes(info.ca_data),
        certificate_path=str(info.certificate_path) if info.certificate_path else None,
        certificate_data=as_bytes(info.certificate_data),
        private_key_path=str(info.private_key_path) if info.private_key_path else None,
        private_key_data=as_bytes(info.private_key_data), token=info.token, insecure=bool(info.insecure))


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    await _state(memo).close()


def _wake_key(body: kopf.Body) -> tuple[Any, ...]:
    meta = body.get("metadata", {})
    return (meta.get("generation"), tuple(sorted((meta.get("annotations") or {}).items())),
            meta.get("deletionTimestamp"))


@kopf.on.event(*RESOURCE)
async def wake(body: kopf.Body, memo: kopf.Memo, type: str | None, **_: Any) -> None:
    """Wake the instance's worker when its spec, annotations or deletion changed (not its status)."""
    phase = None if type == "DELETED" else (body.get("status") or {}).get("phase", Phase.PENDING.value)
    _state(memo).saw_phase(body.get("metadata", {}).get("uid", ""), phase)
    key = _wake_key(body)
    if memo.get("wake_key") != key:
        memo["wake_key"] = key
        wakeup: asyncio.Event | None = memo.get("wakeup")
        if wakeup is not None:
            wakeup.set()


WORKER_STOP_WAIT_SECONDS = 40.0
"""Longer than the daemon's cancellation timeout: by then Kopf has cancelled the worker."""


@kopf.daemon(*RESOURCE, cancellation_backoff=1.0, cancellation_timeout=30.0)
async def instance_worker(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """One long-lived worker per instance: runs the pipeline; stopped (and cancelled) on deletion."""
    wakeup = memo.setdefault("wakeup", asyncio.Event())
    finished = memo.setdefault("worker_finished", asyncio.Event())
    finished.clear()

    async def relay_stop() -> None:
        await stopped.wait()
        wakeup.set()

    relay = asyncio.create_task(relay_stop())
    try:
        worker = await InstanceWorker.resumed(_runtime(memo), lambda: body)  # Kopf keeps no whole status
        if worker is not None:
            await worker.run(lambda: bool(stopped), wakeup)
    finally:
        relay.cancel()
        finished.set()


@kopf.on.delete(*RESOURCE, errors=kopf.ErrorsMode.TEMPORARY, backoff=10)
async def delete_instance(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    # Kopf stops the worker and runs this handler at once: a stage still running could make a record
    # or a static IP after teardown looked. Tear down only once the worker has stopped.
    finished: asyncio.Event | None = memo.get("worker_finished")
    if finished is not None and not finished.is_set():
        try:
            await asyncio.wait_for(finished.wait(), timeout=WORKER_STOP_WAIT_SECONDS)
        except TimeoutError:
            raise kopf.TemporaryError("Waiting for the running stage to stop before tearing down", delay=5) from None
    try:
        message = await teardown(_runtime(memo), body)
    except StageError as error:
        raise kopf.TemporaryError(f"{error.reason}: {error.message}", delay=15) from error
    logger.info(message)
