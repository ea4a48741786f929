"""Kopf's own writes against the real apiserver: which they are, that nothing asked the term before them, and
that through :func:`o4o_operator.kopf_fence.fenced_session` a replica whose term ran out writes none of them.

Kopf runs in-process with handlers of the kinds ours are (an event handler, a daemon, a deletion handler), under
our Kopf settings (:func:`o4o_operator.handlers.configure_kopf`). The term's clock is a fake one: moving it past
the renew deadline is a replica paused past its lease that has just woken, before its elector looked.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import kopf
import pytest

from o4o_operator import kopf_fence
from o4o_operator.fencing import Deposed, Term
from o4o_operator.handlers import configure_kopf
from o4o_operator.models import FINALIZER, GROUP, PLURAL, VERSION
from o4o_operator.pipeline.epoch import Epoch
from o4o_operator.testing import ControlPlane

RESOURCE = (GROUP, VERSION, PLURAL)
RENEW_DEADLINE = 10.0


def instance(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DeploymentInstance", "metadata": {"name": name},
            "spec": {"domain": f"{name}.example.com", "provider": {"existing": {"host": "198.51.100.1"}},
                     "ssh": {"privateKeySecretRef": {"name": "k"}},
                     "source": {"repository": "https://e.com/r.git"}, "tls": {"email": "a@example.com"}}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Guard:
    """Records every question Kopf's session asks (each write twice: when it starts and once connected); with
    ``term``, asks the term too, and records what it refused."""

    def __init__(self, term: Term | None) -> None:
        self.term = term
        self.asked: list[str] = []
        self.refused: list[str] = []
        self.changed = asyncio.Event()

    def __call__(self, what: str) -> None:
        self.asked.append(what)
        self.changed.set()
        if self.term is not None:
            try:
                self.term.check(what)
            except Deposed:
                self.refused.append(what)
                raise

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(30):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


async def until_read(plane: ControlPlane, namespace: str, name: str,
                     condition: Callable[[dict[str, Any] | None], bool]) -> dict[str, Any] | None:
    """The instance (None: gone) once ``condition`` holds for it (within a minute)."""
    async with asyncio.timeout(60):
        while True:
            body = await read(plane, namespace, name)
            if condition(body):
                return body
            await asyncio.sleep(0.1)  # polling the apiserver for Kopf's write


def registry_like_ours(plane: ControlPlane, guard: Guard) -> kopf.OperatorRegistry:
    """Handlers of our kinds under our settings; login hands Kopf the fenced session, guarded by ``guard``."""
    registry = kopf.OperatorRegistry()
    assert plane.pki is not None
    info = kopf.ConnectionInfo(server=plane.server, ca_path=str(plane.pki.ca_cert),
                               certificate_path=str(plane.pki.admin_cert),
                               private_key_path=str(plane.pki.admin_key))

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.AiohttpSession:
        return kopf_fence.fenced_session(info, guard)

    @kopf.on.event(*RESOURCE, registry=registry, id="wake")
    async def wake(**_: Any) -> None:
        pass

    @kopf.daemon(*RESOURCE, registry=registry, id="instance_worker", cancellation_backoff=1.0,
                 cancellation_timeout=30.0)
    async def instance_worker(stopped: kopf.DaemonStopped, **_: Any) -> None:
        await stopped.wait()

    @kopf.on.delete(*RESOURCE, registry=registry, id="delete_instance", errors=kopf.ErrorsMode.TEMPORARY, backoff=10)
    async def delete_instance(retry: int, **_: Any) -> None:
        if retry == 0:  # as ours does while the worker is still stopping
            raise kopf.TemporaryError("Waiting for the running stage to stop before tearing down", delay=1)

    return registry


@contextlib.asynccontextmanager
async def kopf_running(registry: kopf.OperatorRegistry, namespace: str) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    ready = asyncio.Event()
    running = asyncio.create_task(kopf.operator(registry=registry, standalone=True, namespaces=[namespace],
                                                ready_flag=ready, stop_flag=stop))
    async with asyncio.timeout(30):
        await ready.wait()
    try:
        yield running
    finally:
        if not running.done():
            stop.set()
            await asyncio.wait_for(running, timeout=60)


async def read(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    done = await asyncio.to_thread(plane.kubectl, "get", "di", name, "-n", namespace, "-o", "json",
                                   "--ignore-not-found")
    return json.loads(done.stdout) if done.stdout.strip() else None  # type: ignore[no-any-return]


async def create(plane: ControlPlane, namespace: str, name: str) -> None:
    await asyncio.to_thread(plane.kubectl, "create", "-n", namespace, "-f", "-", input=json.dumps(instance(name)))


def kopf_annotations(body: dict[str, Any]) -> dict[str, str]:
    return {key: value for key, value in (body["metadata"].get("annotations") or {}).items()
            if key.startswith(f"{GROUP}/")}


def kopf_patches(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What Kopf patched, from its own debug log: one line per request, naming the fields it wrote."""
    patches = []
    for record in caplog.records:
        message = record.getMessage()
        if message.startswith("JSON-patching the resource with: "):
            ops = ast.literal_eval(message.split(": ", 1)[1])
            patches.append("JSON " + ", ".join(f"{op['op']} {op['path']}" for op in ops if op["op"] != "test"))
        elif message.startswith("Merge-patching the resource with: "):
            patch = ast.literal_eval(message.split(": ", 1)[1])
            fields = [f"{section}.{key}" for section, values in patch.get("metadata", {}).items()
                      for key in values] + [f"status.{key}" for key in patch.get("status", {})]
            patches.append("merge " + ", ".join(sorted(fields)))
        elif "patching the status" in message:
            patches.append("status " + message)
    return patches


async def test_kopf_writes_on_its_own_and_asks_no_term(control_plane: ControlPlane, namespace: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Without a term to ask: every write Kopf makes on its own for handlers like ours, over a whole lifecycle
    (create, a deletion handler that retries once, delete), all made while the term was long over."""
    caplog.set_level(logging.DEBUG, logger="kopf.objects")
    clock = FakeClock()
    term = Term(Epoch(100, 0), "replica-a", RENEW_DEADLINE, renewed_at=clock.now, clock=clock)
    clock.now += 60  # the term is over by the clock; nothing asks it: Kopf's session only records
    recorder = Guard(None)
    async with kopf_running(registry_like_ours(control_plane, recorder), namespace):
        await create(control_plane, namespace, "kopf-alone")
        created = await until_read(control_plane, namespace, "kopf-alone", lambda body: body is not None and bool(
            body["metadata"].get("finalizers")) and f"{GROUP}/last-handled-configuration" in kopf_annotations(body))
        assert created is not None and created["metadata"]["finalizers"] == [FINALIZER]
        await asyncio.to_thread(control_plane.kubectl, "delete", "di", "kopf-alone", "-n", namespace, "--wait=false")
        await until_read(control_plane, namespace, "kopf-alone", lambda body: body is None)
    patches = kopf_patches(caplog)
    print("Kopf's own writes:", *patches, sep="\n  ")
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/kopf-alone"
    assert set(recorder.asked) == {f"PATCH {path}"}  # every one a PATCH of the instance, and nothing else
    assert len(recorder.asked) == 2 * len(patches)  # each asked about twice: at its start and once connected
    assert patches[0] == "JSON add /metadata/finalizers"
    assert patches[1] == f"merge annotations.{GROUP}/kopf-managed, annotations.{GROUP}/last-handled-configuration"
    assert any(f"annotations.{GROUP}/delete_instance" in patch for patch in patches[2:])  # the handler's progress
    assert patches[-1].startswith("JSON remove /metadata/finalizers")
    assert not any(patch.startswith("status") or "status." in patch for patch in patches)  # no status.kopf
    assert term.deposed is not None  # all of them while the term was over


async def test_through_the_fenced_session_a_replica_past_its_term_writes_nothing(
        control_plane: ControlPlane, namespace: str) -> None:
    clock = FakeClock()
    term = Term(Epoch(100, 0), "replica-a", RENEW_DEADLINE, renewed_at=clock.now, clock=clock)
    guard = Guard(term)
    async with kopf_running(registry_like_ours(control_plane, guard), namespace) as running:
        await create(control_plane, namespace, "leading")
        body = await until_read(control_plane, namespace, "leading", lambda body: body is not None and bool(
            body["metadata"].get("finalizers")) and f"{GROUP}/last-handled-configuration" in kopf_annotations(body))
        assert body is not None and body["metadata"]["finalizers"] == [FINALIZER]  # written while leading
        assert guard.refused == [] and term.deposed is None

        clock.now += RENEW_DEADLINE + 50  # paused past the lease, just woken: nobody has looked at the term
        await create(control_plane, namespace, "after")
        await asyncio.to_thread(control_plane.kubectl, "delete", "di", "leading", "-n", namespace, "--wait=false")
        await guard.until(lambda: bool(guard.refused))
        with pytest.raises(RuntimeError, match="Event processing has failed"):  # Kopf stops on the refusal
            await asyncio.wait_for(running, timeout=30)
    assert term.deposed is not None and "not renewed" in term.deposed  # the refusal itself deposed the term
    paths = {f"PATCH /apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}" for name in ("after", "leading")}
    assert set(guard.refused) <= paths, guard.refused
    after = await read(control_plane, namespace, "after")
    assert after is not None and not after["metadata"].get("finalizers") and kopf_annotations(after) == {}
    leading = await read(control_plane, namespace, "leading")
    assert leading is not None and leading["metadata"].get("deletionTimestamp")
    assert leading["metadata"]["finalizers"] == [FINALIZER]  # Kopf neither recorded progress nor let go
    assert kopf_annotations(leading) == kopf_annotations(body)
    print("refused:", guard.refused)



async def test_the_operators_login_hands_kopf_the_fenced_session_only_while_leading(
        control_plane: ControlPlane, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from o4o_operator import handlers

    monkeypatch.setenv("KUBECONFIG", str(control_plane.write_inlined_kubeconfig(tmp_path / "kubeconfig")))
    login = {"settings": kopf.OperatorSettings(), "logger": logging.getLogger("test")}
    alone = await handlers.login(memo=kopf.Memo(), **login)  # leader election off: Kopf's own session
    assert isinstance(alone, kopf.ConnectionInfo)
    clock = FakeClock()
    term = Term(Epoch(100, 0), "replica-a", RENEW_DEADLINE, renewed_at=clock.now, clock=clock)
    leading = await handlers.login(memo=kopf.Memo(shared={"term": term}), **login)
    assert isinstance(leading, kopf.AiohttpSession) and leading.server == alone.server
    configmaps = f"{leading.server}/api/v1/namespaces/{namespace}/configmaps"
    session = leading.aiohttp_session
    try:
        async with session.post(configmaps, json={"metadata": {"name": "while-leading"}}) as response:
            assert response.status == 201  # TLS and credentials as Kopf's own
        clock.now += RENEW_DEADLINE
        with pytest.raises(Deposed, match=r"Refused to POST /api/v1/namespaces/.*/configmaps: this replica"):
            await session.post(configmaps, json={"metadata": {"name": "after"}})
        async with session.get(configmaps) as response:  # reads go on until the process stops
            names = [item["metadata"]["name"] for item in (await response.json())["items"]]
    finally:
        await session.close()
    assert "while-leading" in names and "after" not in names
