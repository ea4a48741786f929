"""P1's CPU bookkeeping: who spent the machine's CPU while N instances were deployed at once, and a profile.

Owns: reading, from ``/proc``, the CPU time of every party of a bench world (the operator, kube-apiserver,
etcd, the benchmark's own process with LocalLightsail and the sandbox hosts' API listeners, and the hosts:
the sandbox hosts' sshd sessions (bash, git, tar, ...) and their shim servers' forked commands, or the waiting
hosts' stand-in process with the recording host's commands), the difference of
two such readings, and an optional ``py-spy record`` of the operator over the N run. Must not assert
anything or change the world it reads.

Everything runs on one machine here, while on a real fleet every host's own work runs on that host: so the
operator's own CPU-seconds per deployment is the figure a real fleet pays, and the others say how much of
this machine's two cores the stand-ins took from it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.common import RequestKey, children_cpu_seconds, cpu_seconds
from o4o_operator.testing import ControlPlane
from o4o_operator.testing.world import LocalWorld

PARTIES = ("operator", "apiserver", "etcd", "bench_process", "host_sessions", "host_shims", "host_standins")


def _quiet(reading: Any) -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return float(reading())
    return 0.0


def _standins_cpu(world: LocalWorld) -> float:
    """The waiting hosts' process (and the recording host's commands, once reaped); 0 with sandbox hosts."""
    process = getattr(world.fleet, "process", None)
    return _quiet(lambda: children_cpu_seconds(process.pid)) if process is not None else 0.0


def _host_cpu(world: LocalWorld) -> tuple[float, float]:
    """(sshd and everything it ran, the shim servers and every command they forked), reaped processes only."""
    sessions = shims = 0.0
    for host in list(world.fleet.hosts.values()):
        sshd = getattr(host, "_process", None)
        if sshd is not None:
            sessions += _quiet(lambda pid=sshd.pid: children_cpu_seconds(pid))
        server = getattr(getattr(host, "_shim_server", None), "_process", None)
        if server is not None:
            shims += _quiet(lambda pid=server.pid: children_cpu_seconds(pid))
    return sessions, shims


def reading(plane: ControlPlane, world: LocalWorld) -> dict[str, float]:
    """CPU seconds so far of every party (see :data:`PARTIES`)."""
    processes = getattr(plane, "_processes", [])
    etcd = processes[0].pid if processes else None
    operator = world.operator.process.pid if world.operator and world.operator.process else None
    sessions, shims = _host_cpu(world)
    return {
        "operator": _quiet(lambda: cpu_seconds(operator)) if operator else 0.0,
        "apiserver": _quiet(lambda: cpu_seconds(plane.apiserver_pid())),
        "etcd": _quiet(lambda: cpu_seconds(etcd)) if etcd else 0.0,
        "bench_process": _quiet(lambda: cpu_seconds(os.getpid())),
        "host_sessions": sessions,
        "host_shims": shims,
        "host_standins": _standins_cpu(world),
    }


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What each party spent between two readings, rounded to 0.1 s."""
    return {party: round(after[party] - before.get(party, 0.0), 1) for party in after}


def requests_per_deployment(delta: Mapping[RequestKey, float], instances: int) -> dict[str, float]:
    """apiserver requests per deployment, as ``VERB resource[/subresource]``, the busiest first; watches
    and the apiserver's own lease and discovery traffic are in it too (it is what the apiserver served)."""
    totals: dict[str, float] = {}
    for key, count in delta.items():
        name = f"{key.verb} {key.resource}" + (f"/{key.subresource}" if key.subresource else "")
        totals[name] = totals.get(name, 0.0) + count
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    return {"all": round(sum(totals.values()) / instances, 1),
            **{name: round(count / instances, 2) for name, count in ranked if count / instances >= 0.05}}


class OperatorProfile:
    """``py-spy record`` of the operator while the block runs, written as a speedscope file (or nothing when
    py-spy is missing or no path was given). Sampling costs CPU on the same cores (at 50 Hz, with the
    operator's hundreds of threads, about half a core): 10 Hz by default."""

    def __init__(self, pid: int, path: Path | None, *, rate: int = 10) -> None:
        self._pid, self._path, self._rate = pid, path, rate
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> OperatorProfile:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if self._path is None or not Path(spy).exists():
            return self
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [spy, "record", "--pid", str(self._pid), "--rate", str(self._rate), "--format", "speedscope",
             "--output", str(self._path), "--nonblocking"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            self._process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
