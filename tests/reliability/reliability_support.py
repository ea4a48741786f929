"""Shared helpers for the reliability tests.

- :func:`start_world`: a :class:`LocalWorld` on a loopback subnet of its own (so it never meets another
  world's sandboxes), with a seeded local cloud and an operator watching only the test's namespace.
- :func:`wait_di` / :func:`wait_gone`: ``kubectl wait`` with the operator's log on failure.
- :class:`StatusWatch`: a watch on the namespace's instances that counts status changes and lets a
  test wait for a condition on what it saw (the crash and fault schedules hang off it).
- :class:`ShimGate` and :class:`LightsailHold`: keep one instance's stage Running until released.
- :func:`metric_samples`: Prometheus text, parsed.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import os
import shlex
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from o4o_operator.providers.ownership import server_name
from o4o_operator.testing import ControlPlane, LocalLightsail, SandboxHost
from o4o_operator.testing.operator_process import OperatorProcess
from o4o_operator.testing.world import LocalWorld, SandboxFleet

DI_PATH = "/apis/deploy.o4o.io/v1alpha1/namespaces/{namespace}/deploymentinstances"
SSH_STAGES = ("runtime", "database", "source", "build-site", "build-api", "configure", "tls", "apps")
WorldFactory = Callable[..., LocalWorld]
"""The ``worlds`` fixture: ``worlds(namespace, seed=..., operator_env=..., kubeconfig=...)``."""


# ---- worlds ------------------------------------------------------------------------------


def free_subnet() -> int:
    """A 127.N.0.0/16 whose first sandbox address has port 22 free (other worlds may be running)."""
    for offset in range(150):
        subnet = 100 + (os.getpid() + offset * 7) % 150
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((f"127.{subnet}.0.2", 22))
            except OSError:
                continue
        return subnet
    raise RuntimeError("no free loopback subnet for sandbox hosts")


def start_world(control_plane: ControlPlane, namespace: str, *, seed: int,
                operator_env: Mapping[str, str] | None = None, kubeconfig: Path | None = None) -> LocalWorld:
    """A started world whose operator watches only ``namespace`` (through ``kubeconfig`` if given)."""
    world = LocalWorld(control_plane, operator_env=operator_env)
    world.fleet = SandboxFleet(world.directory, subnet=free_subnet())
    world.lightsail = LocalLightsail(pending_polls=1, ip_allocator=world.fleet.ip_allocator,
                                     host_keys=world.fleet.host_keys, seed=seed)
    try:
        world.start(with_operator=False)
        world.operator = OperatorProcess(kubeconfig or control_plane.kubeconfig, world.directory / "operator.log",
                                         env=world.operator_environment(), namespaces=(namespace,))
        world.operator.start()
    except BaseException:
        world.stop()
        raise
    return world


def host_of(world: LocalWorld, namespace: str, name: str) -> SandboxHost:
    """The sandbox that will be (or is) the server of instance ``name``, created now if need be."""
    return world.fleet.host_for(server_name(namespace, name))


def cleanup_namespace(world: LocalWorld, namespace: str) -> None:
    """Best effort after a test: delete what is left, and never leave a finalizer behind for others."""
    plane = world.control_plane
    plane.kubectl("delete", "di", "--all", "-n", namespace, "--wait=false", check=False)
    if world.operator is not None and world.operator.process is not None \
            and world.operator.process.poll() is None:
        plane.kubectl("wait", "--for=delete", "di", "--all", "-n", namespace, "--timeout=60s", check=False,
                      timeout=90)
    left = plane.kubectl("get", "di", "-n", namespace, "-o", "name", check=False).stdout.split()
    for name in left:
        plane.kubectl("patch", name, "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                      check=False)


# ---- waiting -------------------------------------------------------------------------------


def _diagnose(world: LocalWorld, namespace: str) -> str:
    current = world.control_plane.kubectl("get", "di", "-n", namespace, "-o", "json", check=False).stdout
    try:
        items = json.loads(current).get("items", [])
    except ValueError:
        items = []
    lines = []
    for item in items:
        status = item.get("status") or {}
        conditions = {c["type"]: f"{c['status']}/{c['reason']}" for c in status.get("conditions", [])}
        stages = [f"{s['name']}={s['state']}({s.get('attempts')}:{s.get('reason') or ''})"
                  for s in status.get("stages", [])]
        lines.append(f"{item['metadata']['name']}: {status.get('phase')} {conditions} {' '.join(stages)}")
    log = world.operator.output()[-8000:] if world.operator else ""
    return "instances:\n" + "\n".join(lines) + f"\noperator log (tail):\n{log}"


def wait_di(world: LocalWorld, namespace: str, target: str, condition: str, timeout: int = 180) -> None:
    """``kubectl wait --for=<condition>`` on ``di/<name>``, or on every instance when ``target`` is ``--all``."""
    what = ["di", "--all"] if target == "--all" else [f"di/{target}"]
    result = world.control_plane.kubectl("wait", f"--for={condition}", *what, "-n", namespace,
                                         f"--timeout={timeout}s", check=False, timeout=timeout + 30)
    if result.returncode != 0:
        raise AssertionError(f"{target}: {condition} not reached: {result.stderr.strip()}\n"
                             f"{_diagnose(world, namespace)}")


def wait_gone(world: LocalWorld, namespace: str, target: str = "--all", timeout: int = 180) -> None:
    wait_di(world, namespace, target, "delete", timeout)


def get_di(world: LocalWorld, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(world.control_plane.kubectl("get", "di", name, "-n", namespace, "-o", "json").stdout)  # type: ignore[no-any-return]


def list_di(world: LocalWorld, namespace: str) -> list[dict[str, Any]]:
    result = world.control_plane.kubectl("get", "di", "-n", namespace, "-o", "json")
    return list(json.loads(result.stdout)["items"])


def conditions(obj: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}


def stages(obj: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in (obj.get("status") or {}).get("stages", [])}


def is_ready(obj: Mapping[str, Any]) -> bool:
    return conditions(obj).get("Ready", {}).get("status") == "True"


# ---- watching ------------------------------------------------------------------------------

Listener = Callable[[str, dict[str, Any] | None, dict[str, Any]], None]
"""Called in the watch thread with (name, previous object or None, new object) on every status change."""


class StatusWatch:
    """Watches the namespace's instances and counts status changes; a test waits on what it saw."""

    def __init__(self, plane: ControlPlane, namespace: str, *, listeners: Iterable[Listener] = ()) -> None:
        self._plane = plane
        self._path = DI_PATH.format(namespace=namespace)
        self._listeners = list(listeners)
        self._condition = threading.Condition()
        self._stopping = False
        self._connection: http.client.HTTPSConnection | None = None
        self._thread: threading.Thread | None = None
        self.objects: dict[str, dict[str, Any]] = {}
        self.changes = 0
        self.succeeded: set[tuple[str, str]] = set()
        """(instance, stage) pairs seen Succeeded at least once: progress that restarts do not inflate."""
        self.error: BaseException | None = None

    def __enter__(self) -> StatusWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        status, body = self._plane.get(self._path)
        assert status == 200, body
        listing = json.loads(body)
        with self._condition:
            self.objects = {item["metadata"]["name"]: item for item in listing["items"]}
        self._thread = threading.Thread(target=self._run, args=(listing["metadata"]["resourceVersion"],),
                                        name="status-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            connection = self._connection
        if connection is not None and connection.sock is not None:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self, resource_version: str) -> None:
        host, port = self._plane.server.removeprefix("https://").rsplit(":", 1)
        try:
            while not self._stopping:
                connection = http.client.HTTPSConnection(host, int(port), context=self._plane.ssl_context())
                with self._condition:
                    self._connection = connection
                connection.request("GET", f"{self._path}?watch=1&resourceVersion={resource_version}"
                                          "&allowWatchBookmarks=true&timeoutSeconds=900")
                response = connection.getresponse()
                for raw in iter(response.readline, b""):
                    event = json.loads(raw)
                    obj = event["object"]
                    resource_version = obj["metadata"].get("resourceVersion", resource_version)
                    if event["type"] == "ERROR":
                        raise RuntimeError(f"watch failed: {obj}")
                    if event["type"] != "BOOKMARK":
                        self._observe(event["type"], obj)
                connection.close()
        except (OSError, http.client.HTTPException):
            if not self._stopping:
                raise
        except BaseException as error:
            with self._condition:
                self.error = error
                self._condition.notify_all()
            raise

    def _observe(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        with self._condition:
            previous = self.objects.get(name)
            if kind == "DELETED":
                self.objects.pop(name, None)
            else:
                self.objects[name] = obj
            changed = kind != "DELETED" and (previous or {}).get("status") != obj.get("status")
            if changed:
                self.changes += 1
                self.succeeded |= {(name, stage) for stage, record in stages(obj).items()
                                   if record["state"] == "Succeeded"}
            self._condition.notify_all()
        if changed:
            for listener in self._listeners:
                listener(name, previous, obj)

    def wait(self, predicate: Callable[[StatusWatch], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds (checked on every event); False on timeout."""
        with self._condition:
            satisfied = self._condition.wait_for(lambda: self.error is not None or predicate(self), timeout)
            if self.error is not None:
                raise AssertionError(f"the status watch failed: {self.error!r}")
            return bool(satisfied)

    def all_ready(self, count: int) -> bool:
        return len(self.objects) >= count and all(is_ready(obj) for obj in self.objects.values())


def stage_started(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """Stages that went Running (again) between two observations of one instance."""
    before = stages(previous or {})
    started = []
    for name, stage in stages(current).items():
        old = before.get(name, {})
        if stage["state"] == "Running" and (old.get("state") != "Running"
                                            or old.get("attempts") != stage.get("attempts")):
            started.append(name)
    return started


# ---- holding a stage -----------------------------------------------------------------------


class ShimGate:
    """Hold a command on one sandbox host, when its arguments contain ``args_contain``, until released.

    It replaces the host's PATH shim for ``command`` (or shadows the real program, e.g. ``git``) with a
    wrapper that waits for a release file, bounded at two minutes, then runs the original.
    """

    def __init__(self, host: SandboxHost, command: str, args_contain: str = "") -> None:
        self.release_file = host.directory / f"release-{command}"
        shim = host.shim_dir / command
        original = host.shim_dir / f".{command}.held"
        if shim.exists():
            shim.rename(original)
            target = str(original)
        else:
            found = shutil.which(command)
            assert found is not None, f"{command} is not installed"
            target = found
        shim.write_text(
            "#!/bin/sh\n"
            f"case \" $* \" in\n  *{shlex.quote(args_contain)}*)\n"
            "    n=0\n"
            f"    while [ ! -e {shlex.quote(str(self.release_file))} ] && [ \"$n\" -lt 1200 ]; do\n"
            "      sleep 0.1; n=$((n + 1))\n"
            "    done ;;\n"
            "esac\n"
            f"exec {shlex.quote(target)} \"$@\"\n")
        shim.chmod(0o755)

    def release(self) -> None:
        self.release_file.touch()


class LightsailHold:
    """Delay the local cloud's answer to one operation on one resource, after the operation took effect.

    Models a slow answer: the change is made, the caller waits. Bounded at 28 s (below botocore's 30 s read
    timeout), and released by :meth:`release`.
    """

    def __init__(self, lightsail: LocalLightsail, operation: str, needle: str) -> None:
        self.released = threading.Event()
        self.reached = threading.Event()
        original = lightsail.answer

        def answer(target: str, authorization: str, body: bytes) -> tuple[int, dict[str, Any]]:
            result = original(target, authorization, body)
            if target.endswith("." + operation) and needle.encode() in body and not self.released.is_set():
                self.reached.set()
                self.released.wait(timeout=28)
            return result

        lightsail.answer = answer  # type: ignore[method-assign]

    def release(self) -> None:
        self.released.set()


# ---- metrics and secrets -------------------------------------------------------------------


def metric_samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` for every sample of ``name`` in Prometheus text format."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, value = line.rsplit(" ", 1)
            samples[key[len(name):]] = float(value)
    return samples


def secret_manifest(namespace: str, name: str, data: Mapping[str, str], *,
                    kind: str = "Opaque") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": kind, "metadata": {"name": name, "namespace": namespace},
            "stringData": dict(data)}


def apply_all(world: LocalWorld, objects: Iterable[Mapping[str, Any]]) -> None:
    world.control_plane.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def crd_test_module() -> Any:
    """``tests/crd/test_crd.py``, whose table of invalid manifests R3 reuses (imported once, by path)."""
    name = "test_crd"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "crd" / "test_crd.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
