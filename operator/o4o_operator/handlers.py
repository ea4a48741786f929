"""Thin Kopf glue: translate Kopf's events into the runner's calls, and nothing more.

Owns: the Kopf registrations (startup, login, the per-instance worker daemon,
the wake-up on change, deletion), operator settings for Kopf (annotations for
progress, our finalizer, no peering), and turning runner errors into Kopf's
retry semantics. Deletion errors are always retryable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from o4o_operator import metrics
from o4o_operator.errors import StageError
from o4o_operator.kubeapi import Credentials, KubeApi
from o4o_operator.models import FINALIZER, GROUP, PLURAL, VERSION, Phase
from o4o_operator.providers import aws
from o4o_operator.providers.ssh import SshConnector
from o4o_operator.runner.context import Runtime
from o4o_operator.runner.settings import OperatorSettings
from o4o_operator.runner.teardown import teardown
from o4o_operator.runner.worker import InstanceWorker

RESOURCE = (GROUP, VERSION, PLURAL)
logger = logging.getLogger("o4o_operator")
_connection: dict[str, kopf.ConnectionInfo] = {}
_phases: dict[str, str] = {}
HONOUR_SANDBOX_ROOT = False
"""Let sandbox hosts' ``O4O_ROOT`` prefix every path: a test hook, deliberately no setting and no
environment variable. Only :mod:`o4o_operator.testing.operator_main` sets it, before the operator starts."""


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    settings.posting.enabled = False  # we post our own Events, already redacted
    settings.watching.server_timeout = 300
    options = OperatorSettings.from_environment()
    memo["options"] = options
    memo["shared"] = {}  # each object's memo is a shallow copy of this one: this dict is operator-wide


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is not None:
        _connection["info"] = info
    return info


def _credentials(info: kopf.ConnectionInfo) -> Credentials:
    def as_bytes(value: Any) -> bytes | None:
        return value.encode() if isinstance(value, str) else value

    return Credentials(
        server=info.server, ca_path=str(info.ca_path) if info.ca_path else None, ca_data=as_bytes(info.ca_data),
        certificate_path=str(info.certificate_path) if info.certificate_path else None,
        certificate_data=as_bytes(info.certificate_data),
        private_key_path=str(info.private_key_path) if info.private_key_path else None,
        private_key_data=as_bytes(info.private_key_data), token=info.token, insecure=bool(info.insecure))


def _runtime(memo: kopf.Memo) -> Runtime:
    """The operator-wide runtime, made on first use (after login gave us credentials).

    It lives in the operator-wide ``shared`` dict, not in the object's own memo, so that every
    instance shares one Kubernetes session, one SSH connector and one pipeline semaphore.
    """
    shared: dict[str, Any] = memo.setdefault("shared", {})
    runtime: Runtime | None = shared.get("runtime")
    if runtime is None:
        options: OperatorSettings = memo.get("options") or OperatorSettings.from_environment()
        # Each running pipeline waits on at most one cloud call at a time: give every one a thread.
        aws.configure_pool(max(aws.DEFAULT_POOL_SIZE, options.max_pipelines))
        runtime = Runtime(settings=options, kube=KubeApi(_credentials(_connection["info"])),
                          connector=SshConnector(max_sessions=options.max_ssh_sessions,
                                                 honour_sandbox_root=HONOUR_SANDBOX_ROOT),
                          pipelines=asyncio.Semaphore(options.max_pipelines))
        shared["runtime"] = runtime
    return runtime


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = (memo.get("shared") or {}).get("runtime")
    if runtime is not None:
        await runtime.connector.close_all()  # type: ignore[attr-defined]
        await runtime.kube.close()


def _wake_key(body: kopf.Body) -> tuple[Any, ...]:
    meta = body.get("metadata", {})
    return (meta.get("generation"), tuple(sorted((meta.get("annotations") or {}).items())),
            meta.get("deletionTimestamp"))


@kopf.on.event(*RESOURCE)
async def wake(body: kopf.Body, memo: kopf.Memo, type: str | None, **_: Any) -> None:
    """Wake the instance's worker when its spec, annotations or deletion changed (not its status)."""
    uid = body.get("metadata", {}).get("uid", "")
    phase = (body.get("status") or {}).get("phase", Phase.PENDING.value)
    if type == "DELETED":
        _phases.pop(uid, None)
    else:
        _phases[uid] = phase
    for name in Phase:
        metrics.INSTANCES.labels(phase=name.value).set(sum(1 for p in _phases.values() if p == name.value))
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
        await InstanceWorker(_runtime(memo), lambda: body).run(lambda: bool(stopped), wakeup)
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
    meta = body.get("metadata", {})
    with contextlib.suppress(KeyError):  # expiry of a deleted instance must not page anyone
        metrics.CERTIFICATE_EXPIRY.remove(meta.get("namespace", ""), meta.get("name", ""))
    logger.info(message)
