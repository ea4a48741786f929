"""What every benchmark shares: results files, the local world, apiserver metrics, watching, sampling.

Owns: writing ``bench/results/<name>.json`` (with the machine's load, since the
machine is shared), starting a control plane with the CRD, building a
:class:`~o4o_operator.testing.world.LocalWorld` on a loopback subnet of its own
with fixed latencies, reading ``apiserver_request_total`` from kube-apiserver's own
``/metrics``, watching DeploymentInstances for Ready and gone, and sampling a
process's RSS and CPU time from ``/proc``. Must not assert anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import platform
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from o4o_operator.testing import ControlPlane, LocalLightsail
from o4o_operator.testing.waiting_hosts import WaitingFleet
from o4o_operator.testing.world import CRD, LocalWorld, SandboxFleet

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
DI_PATH = "/apis/deploy.o4o.io/v1alpha1/namespaces/{namespace}/deploymentinstances"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"})
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---- results -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on; the load average says how busy the shared machine was."""
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]}


def write_result(name: str, result: Mapping[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({**result, "machine": machine()}, indent=2, default=str) + "\n")
    return path


def verdict(value: float, target: float, *, at_most: bool = True) -> str:
    """``met`` or ``missed`` for a figure and its target (``at_most``: lower is better)."""
    met = value <= target if at_most else value >= target
    return "met" if met else "missed"


def say(text: str) -> None:
    print(text, flush=True)


# ---- the local world -----------------------------------------------------------------------


def start_control_plane(crds: tuple[Path, ...] = (CRD,)) -> ControlPlane:
    """etcd + kube-apiserver with the DeploymentInstance CRD (or ``crds``); the caller stops it."""
    plane = ControlPlane()
    plane.start()
    try:
        plane.install_crds(list(crds))
    except BaseException:
        plane.stop()
        raise
    return plane


def bench_world(plane: ControlPlane, *, subnet: int, command_latency: float = 0.0,
                operator_env: Mapping[str, str] | None = None, pending_polls: int = 1) -> LocalWorld:
    """A LocalWorld whose sandbox hosts live on ``127.<subnet>.x.y`` (not the tests' 127.77) and
    sleep ``command_latency`` seconds before every shimmed command. Not started yet."""
    world = LocalWorld(plane, operator_env=operator_env, pending_polls=pending_polls)
    # LocalWorld creates hosts on demand, so its own (empty) fleet can be swapped before start.
    world.fleet = SandboxFleet(world.directory, subnet=subnet, command_latency_seconds=command_latency)
    world.lightsail = LocalLightsail(pending_polls=pending_polls, ip_allocator=world.fleet.ip_allocator,
                                     host_keys=world.fleet.host_keys)
    return world


def waiting_world(plane: ControlPlane, *, subnet: int, command_latency: float, namespace: str, recorder: str,
                  operator_env: Mapping[str, str] | None = None) -> LocalWorld:
    """A LocalWorld whose hosts only wait (:class:`~o4o_operator.testing.waiting_hosts.WaitingFleet`): instance
    ``recorder`` of ``namespace`` deploys on a sandbox host whose every script is recorded, and every other
    host replays those, waiting ``command_latency`` seconds for every shimmed command. Not started yet."""
    world = LocalWorld(plane, operator_env=operator_env)
    world.fleet.stop()
    world.fleet = WaitingFleet(world.directory, subnet=subnet, command_latency_seconds=command_latency,  # type: ignore[assignment]
                               namespace=namespace, recorder=recorder)
    world.lightsail = LocalLightsail(pending_polls=world.pending_polls, ip_allocator=world.fleet.ip_allocator,
                                     host_keys=world.fleet.host_keys)
    return world


def server_name(namespace: str, name: str) -> str:
    """The operator's deterministic server name (used to boot sandbox hosts ahead of time)."""
    from o4o_operator.providers.ownership import server_name as operator_server_name

    return operator_server_name(namespace, name)


# ---- kube-apiserver ------------------------------------------------------------------------

_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclasses.dataclass(frozen=True)
class RequestKey:
    verb: str
    group: str
    resource: str
    subresource: str


def apiserver_requests(plane: ControlPlane) -> dict[RequestKey, float]:
    """``apiserver_request_total`` summed over codes and scopes, from kube-apiserver's ``/metrics``."""
    status, body = plane.get("/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    totals: dict[RequestKey, float] = {}
    for line in body.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match.group("labels")))
        key = RequestKey(labels.get("verb", ""), labels.get("group", ""), labels.get("resource", ""),
                         labels.get("subresource", ""))
        totals[key] = totals.get(key, 0.0) + float(match.group("value"))
    return totals


def request_delta(before: Mapping[RequestKey, float], after: Mapping[RequestKey, float]) -> dict[RequestKey, float]:
    """What happened between two readings (keys with no change left out)."""
    return {key: after[key] - before.get(key, 0.0) for key in after if after[key] - before.get(key, 0.0) > 0}


def _is_ready(obj: Mapping[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _is_stalled(obj: Mapping[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Stalled" and c.get("status") == "True" for c in conditions)


class InstanceWatcher:
    """Watches a namespace's DeploymentInstances and notes when each first became Ready, and when
    each was gone (deleted from the API), on the monotonic clock. Use as a context manager."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self._plane = plane
        self._path = DI_PATH.format(namespace=namespace)
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._resource_version = ""
        self.ready_at: dict[str, float] = {}
        self.gone_at: dict[str, float] = {}
        self.stalled: dict[str, str] = {}
        self.last: dict[str, dict[str, Any]] = {}
        self.events = 0

    def __enter__(self) -> InstanceWatcher:
        self._list()
        self._thread = threading.Thread(target=self._watch_forever, name="bench-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _connection(self) -> http.client.HTTPSConnection:
        url = urllib.parse.urlsplit(self._plane.server)
        return http.client.HTTPSConnection(url.hostname or "127.0.0.1", url.port,
                                           context=self._plane.ssl_context(), timeout=30)

    def _list(self) -> None:
        connection = self._connection()
        try:
            connection.request("GET", self._path)
            listing = json.loads(connection.getresponse().read())
        finally:
            connection.close()
        for item in listing.get("items", []):
            self._note("ADDED", item)
        self._resource_version = listing["metadata"]["resourceVersion"]

    def _watch_forever(self) -> None:
        while not self._stop.is_set():
            query = urllib.parse.urlencode({"watch": "1", "resourceVersion": self._resource_version,
                                            "timeoutSeconds": "5", "allowWatchBookmarks": "true"})
            connection = self._connection()
            try:
                connection.request("GET", f"{self._path}?{query}")
                response = connection.getresponse()
                for line in response:
                    event = json.loads(line)
                    if event["type"] == "ERROR":  # 410 Gone: start again from a fresh list
                        self._list()
                        break
                    self._resource_version = event["object"]["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self._note(event["type"], event["object"])
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.2)  # the apiserver is busy or restarting; the loop is bounded by stop
            finally:
                connection.close()

    def _note(self, kind: str, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        name = obj["metadata"]["name"]
        with self._changed:
            self.events += 1
            if kind == "DELETED":
                self.gone_at.setdefault(name, now)
                self.last.pop(name, None)
            else:
                self.last[name] = obj
                if _is_ready(obj):
                    self.ready_at.setdefault(name, now)
                if _is_stalled(obj):
                    self.stalled[name] = (obj.get("status") or {}).get("phase", "")
            self._changed.notify_all()

    def wait(self, done: Callable[[InstanceWatcher], bool], timeout: float) -> bool:
        """Block until ``done(self)`` or the timeout; returns whether it is done."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 1.0))
            return True


# ---- processes -------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (not its children), from ``/proc/<pid>/stat``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class ProcessSampler:
    """Samples a process's RSS every ``interval`` seconds and its CPU time at start and stop."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.rss: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self.started = self.stopped = 0.0
        self.cpu_start = self.cpu_stop = 0.0

    def __enter__(self) -> ProcessSampler:
        self.started, self.cpu_start = time.monotonic(), cpu_seconds(self.pid)
        self.rss.append(rss_bytes(self.pid))
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.stopped, self.cpu_stop = time.monotonic(), cpu_seconds(self.pid)
        self.rss.append(rss_bytes(self.pid))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError):
                self.rss.append(rss_bytes(self.pid))

    @property
    def elapsed(self) -> float:
        return self.stopped - self.started

    @property
    def cpu_used(self) -> float:
        return self.cpu_stop - self.cpu_start

    def summary(self) -> dict[str, Any]:
        mib = 1024 * 1024
        return {"seconds": round(self.elapsed, 1), "cpu_seconds": round(self.cpu_used, 3),
                "cpu_percent_of_one_core": round(100 * self.cpu_used / max(self.elapsed, 1e-9), 3),
                "rss_mib_max": round(max(self.rss) / mib, 1), "rss_mib_last": round(self.rss[-1] / mib, 1),
                "rss_mib_mean": round(sum(self.rss) / len(self.rss) / mib, 1), "samples": len(self.rss)}


def children_cpu_seconds(pid: int) -> float:
    """A process's own CPU time plus that of its reaped descendants (cutime + cstime)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return sum(int(fields[index]) for index in (11, 12, 13, 14)) / CLOCK_TICKS


def sandbox_cpu_seconds(fleet: SandboxFleet) -> float:
    """CPU time spent by every sandbox host's sshd and all it ran (sessions, bash, shims, git, ...).

    Sessions are counted once they have ended and been reaped, so read this after the
    operator closed its SSH connections.
    """
    total = 0.0
    for host in fleet.hosts.values():
        process = getattr(host, "_process", None)  # SandboxHost keeps its sshd listener here
        if process is not None:
            with contextlib.suppress(OSError):
                total += children_cpu_seconds(process.pid)
    return total


def system_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine so far (all cores), from ``/proc/stat``."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS
