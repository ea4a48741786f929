"""P1: N instances applied at once; wall time to all Ready divided by one instance's critical path.

Everything on the operator's side is real and local (kube-apiserver, the operator as a child process,
LocalLightsail), with fixed latencies standing in for the remote world: every LocalLightsail API call sleeps
``cloud_latency`` seconds (``faults.latency_seconds``), and every shimmed command on a host (apt-get,
systemctl, pnpm, pm2, certbot, ...) takes ``command_latency`` seconds.

The hosts only wait (``hosts="waiting"``, the default; :mod:`o4o_operator.testing.waiting_hosts`): one
instance is first deployed on a sandbox host whose every script runs for real and is recorded (what it printed,
when, after how many shimmed commands, how it exited; what the instance's API answered). Every other host is an
SSH server in one stand-in process that replays those recordings, waiting the recorded time plus
``command_latency`` for every shimmed command, without running anything. So the hosts' own work (sshd
sessions, bash, git, tar, the shims: about 2.6 CPU-seconds per deployment, which on a real fleet each server
spends on itself) stays off this machine's two cores, and what is measured is the operator, the control plane
and the cloud. ``hosts="sandbox"`` keeps a real sshd and shims per host (each shimmed command waits
``command_latency`` and then acts), as P1 first measured.

Then one instance alone goes from apply to Ready: that is the critical path, T(1). Then N more are created at
once (concurrent POSTs) and the clock runs until the last is Ready. Hosts are up before either clock starts.
The ratio is ``T(N) / T(1)``; 1.0 would be perfect overlap.

The operator's concurrency caps are settings: ``python -m bench`` passes
``O4O_MAX_PIPELINES=N`` and ``O4O_MAX_SSH_SESSIONS=N`` unless told ``--operator-defaults``
(20 pipelines: N=500 then needs 25 rounds by design).

The CPU time of every party is read from ``/proc`` (``p1_costs``): the operator's own CPU-seconds per
deployment is what a real fleet pays; the hosts' stand-ins', the apiserver's and etcd's say what the rest took
from the same cores. Their sum over the cores, against T(1), is reported as a floor ("cpu_floor_ratio"): when
it nears the ratio, the machine, not the operator, is what limits it. The machine's load average is written
with the result.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import p1_costs
from bench.common import (
    DI_PATH,
    InstanceWatcher,
    apiserver_requests,
    bench_world,
    request_delta,
    say,
    server_name,
    start_control_plane,
    system_busy_seconds,
    verdict,
    waiting_world,
    write_result,
)
from o4o_operator.testing import ControlPlane
from o4o_operator.testing.world import LocalWorld

NAME = "p1-concurrency"
NAMESPACE = "bench-p1"
TARGET = 1.2
RECORDED = "recorded"
"""The instance deployed first on a sandbox host whose scripts the waiting hosts replay."""


@dataclasses.dataclass(frozen=True)
class Options:
    n: int = 500
    cloud_latency: float = 1.0
    """Seconds every LocalLightsail API call takes."""
    command_latency: float = 5.0
    """Seconds every shimmed command on a sandbox host waits before it acts. A deployment makes about 140
    shimmed calls (``runuser`` and the command it runs count once each), so 5 s makes one deployment take
    13 minutes, about as long as a real one with its apt-get installs, builds and certbot. The hosts'
    own CPU (about 2 s per deployment: sshd sessions, bash, git, the shims' effects) stays on this
    machine whatever the latency."""
    max_pipelines: int | None = None
    """``O4O_MAX_PIPELINES`` for the operator; None keeps the operator's default (20)."""
    max_ssh_sessions: int | None = None
    """``O4O_MAX_SSH_SESSIONS`` for the operator; None keeps the operator's default (50)."""
    profile: Path | None = None
    """Where to write a ``py-spy record`` (speedscope) of the operator over the N run; None: no profile."""
    hosts: str = "waiting"
    """``waiting``: stand-ins replaying one recorded deployment; ``sandbox``: an sshd with shims per host."""
    subnet: int = 91
    timeout: float = 3600.0


def create_all(plane: ControlPlane, namespace: str, manifests: list[dict[str, Any]]) -> None:
    """POST every manifest, 16 at a time, so that N instances really arrive at once."""
    context = plane.ssl_context()
    url = plane.server + DI_PATH.format(namespace=namespace)

    def create(manifest: dict[str, Any]) -> None:
        request = urllib.request.Request(url, data=json.dumps(manifest).encode(), method="POST",  # noqa: S310
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, context=context, timeout=60) as response:  # noqa: S310
            response.read()

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(create, manifests))


_STAGE_SAMPLE = re.compile(r'^o4o_stage_duration_seconds_(sum|count)\{outcome="success",stage="([^"]+)"\}\s+(\S+)$')


def stage_seconds(metrics_text: str) -> dict[str, dict[str, float]]:
    """Per stage: total seconds and count of successful attempts, from the operator's metrics."""
    stages: dict[str, dict[str, float]] = {}
    for line in metrics_text.splitlines():
        match = _STAGE_SAMPLE.match(line)
        if match:
            kind, stage, value = match.groups()
            stages.setdefault(stage, {"sum": 0.0, "count": 0.0})[kind] = float(value)
    return stages


_FAILURE_SAMPLE = re.compile(r'^o4o_stage_failures_total\{reason="([^"]+)",stage="([^"]+)"\}\s+(\S+)$')


def stage_failures(metrics_text: str) -> dict[str, float]:
    """Failed stage attempts so far, as ``stage: reason`` -> count (retries stretch the wall time)."""
    failures = {}
    for line in metrics_text.splitlines():
        match = _FAILURE_SAMPLE.match(line)
        if match and float(match.group(3)):
            failures[f"{match.group(2)}: {match.group(1)}"] = float(match.group(3))
    return failures


def mean_stage_seconds(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, float]:
    means = {}
    for stage, figures in after.items():
        count = figures["count"] - before.get(stage, {}).get("count", 0.0)
        total = figures["sum"] - before.get(stage, {}).get("sum", 0.0)
        if count:
            means[stage] = round(total / count, 2)
    return means


def _wait_ready(watcher: InstanceWatcher, world: LocalWorld, names: list[str], timeout: float) -> None:
    wanted = set(names)
    if not watcher.wait(lambda w: wanted <= w.ready_at.keys(), timeout):
        missing = sorted(wanted - watcher.ready_at.keys())
        operator_log = world.operator.output()[-3000:] if world.operator else ""
        raise RuntimeError(f"{len(missing)} instance(s) not Ready after {timeout:.0f}s (e.g. {missing[:5]}); "
                           f"stalled: {dict(list(watcher.stalled.items())[:5])}\noperator log:\n{operator_log}")


def run(options: Options) -> dict[str, Any]:
    env = {"O4O_DRIFT_INTERVAL_SECONDS": "3600"}  # one check on the way to Ready, none after
    if options.max_pipelines:
        env["O4O_MAX_PIPELINES"] = str(options.max_pipelines)
    if options.max_ssh_sessions:
        env["O4O_MAX_SSH_SESSIONS"] = str(options.max_ssh_sessions)
    plane = start_control_plane()
    try:
        waiting = options.hosts == "waiting"
        world = waiting_world(plane, subnet=options.subnet, command_latency=options.command_latency,
                              namespace=NAMESPACE, recorder=RECORDED, operator_env=env) if waiting else \
            bench_world(plane, subnet=options.subnet, command_latency=options.command_latency, operator_env=env)
        recorded: dict[str, Any] = {}
        with world:
            world.lightsail.faults.latency_seconds = options.cloud_latency
            plane.create_namespace(NAMESPACE)
            world.create_secrets(NAMESPACE)
            names = [f"i{index:04d}" for index in range(options.n)]
            everyone = [RECORDED, "solo", *names] if waiting else ["solo", *names]
            say(f"P1: starting {len(everyone)} {options.hosts} hosts on 127.{options.subnet}.x.y ...")
            booted = time.monotonic()
            for name in everyone:
                world.fleet.host_for(world.fleet.name_instance(name) if waiting  # type: ignore[attr-defined]
                                     else server_name(NAMESPACE, name))
            booted = time.monotonic() - booted
            assert world.operator is not None and world.operator.process is not None
            pid = world.operator.process.pid
            with InstanceWatcher(plane, NAMESPACE) as watcher:
                if waiting:
                    say(f"P1: {len(everyone)} hosts up in {booted:.0f}s; recording one deployment on a sandbox "
                        "host (its shims do not wait) ...")
                    started = time.monotonic()
                    create_all(plane, NAMESPACE, [world.manifest(RECORDED, NAMESPACE)])
                    _wait_ready(watcher, world, [RECORDED], options.timeout)
                    recorded = {"seconds": round(watcher.ready_at[RECORDED] - started, 2),
                                "recordings": world.fleet.recorded()}  # type: ignore[attr-defined]
                    say(f"P1:   recorded in {recorded['seconds']:.0f}s: {sum(recorded['recordings'].values())} "
                        f"script runs and API answers of {len(recorded['recordings'])} kinds")
                say("P1: one instance alone (the critical path) ...")
                metrics_before = stage_seconds(world.operator.metrics())
                costs_before = p1_costs.reading(plane, world)
                started = time.monotonic()
                create_all(plane, NAMESPACE, [world.manifest("solo", NAMESPACE)])
                _wait_ready(watcher, world, ["solo"], options.timeout)
                single = watcher.ready_at["solo"] - started
                metrics_single = stage_seconds(world.operator.metrics())
                costs_single = p1_costs.reading(plane, world)
                say(f"P1:   T(1) = {single:.1f}s; now {options.n} at once ...")
                busy_before = system_busy_seconds()
                requests_before = apiserver_requests(plane)
                with p1_costs.OperatorProfile(pid, options.profile):
                    started = time.monotonic()
                    create_all(plane, NAMESPACE, [world.manifest(name, NAMESPACE) for name in names])
                    created = time.monotonic() - started
                    _wait_ready(watcher, world, names, options.timeout)
                times = sorted(watcher.ready_at[name] - started for name in names)
                machine_busy = system_busy_seconds() - busy_before
                costs_many = p1_costs.reading(plane, world)
                requests = request_delta(requests_before, apiserver_requests(plane))
                metrics_text = world.operator.metrics()
                metrics_many, failures = stage_seconds(metrics_text), stage_failures(metrics_text)
            world.operator.stop()  # closes its SSH connections, so sshd reaps (and counts) every session
            time.sleep(1.0)
            costs_end = p1_costs.reading(plane, world)
    finally:
        plane.stop()
    # Host sessions are counted once reaped (after the operator closed its connections): those of both runs
    # are split in proportion to the instances, the rest as read at each clock's end.
    host_sessions = costs_end["host_sessions"] - costs_before["host_sessions"]
    single_costs = p1_costs.spent(costs_before, costs_single)
    many_costs = p1_costs.spent(costs_single, costs_many)
    single_costs["host_sessions"] = round(host_sessions / (options.n + 1), 1)
    many_costs["host_sessions"] = round(host_sessions * options.n / (options.n + 1), 1)
    wall = times[-1]
    ratio = wall / single
    cpus = os.cpu_count() or 1
    needed = sum(many_costs.values())
    return {
        "benchmark": NAME, "target": f"<= {TARGET}", "ratio": round(ratio, 3),
        "verdict": verdict(ratio, TARGET),
        "n": options.n, "single_seconds": round(single, 2), "all_ready_seconds": round(wall, 2),
        "first_ready_seconds": round(times[0], 2), "median_ready_seconds": round(times[len(times) // 2], 2),
        "create_seconds": round(created, 2), "hosts_boot_seconds": round(booted, 1),
        "recording": recorded,
        "settings": {"cloud_latency_seconds": options.cloud_latency,
                     "command_latency_seconds": options.command_latency, "hosts": options.hosts,
                     "operator_env": env, "sandbox_hosts": options.n + 1},
        "cpu_seconds_single": single_costs,
        "cpu_seconds_during_n": many_costs,
        "operator_cpu_seconds_per_deployment": {
            "alone": single_costs["operator"], "with_n": round(many_costs["operator"] / options.n, 3)},
        "cpu_floor_ratio": round(needed / cpus / single, 3),
        "machine_busy_percent_during_n": round(100 * machine_busy / wall / cpus, 1),
        "apiserver_requests_per_deployment": p1_costs.requests_per_deployment(requests, options.n),
        "stage_failures": failures,
        "mean_stage_seconds_single": mean_stage_seconds(metrics_before, metrics_single),
        "mean_stage_seconds_n": mean_stage_seconds(metrics_single, metrics_many),
        "operator_profile": str(options.profile) if options.profile else None,
    }


def report(result: dict[str, Any]) -> None:
    settings, cpu = result["settings"], result["cpu_seconds_during_n"]
    per = result["operator_cpu_seconds_per_deployment"]
    say(f"P1  {result['n']} instances at once: all Ready in {result['all_ready_seconds']}s; one alone "
        f"{result['single_seconds']}s -> ratio {result['ratio']} (target {result['target']}: {result['verdict']})")
    say(f"    operator CPU per deployment: {per['with_n']}s with N at once, {per['alone']}s alone")
    say(f"    latencies: cloud {settings['cloud_latency_seconds']}s/call, "
        f"command {settings['command_latency_seconds']}s/shimmed command; operator env {settings['operator_env']}")
    say(f"    first Ready {result['first_ready_seconds']}s, median {result['median_ready_seconds']}s; "
        f"machine busy {result['machine_busy_percent_during_n']}% of {os.cpu_count()} cores; "
        f"{settings['sandbox_hosts']} {settings['hosts']} hosts up in {result['hosts_boot_seconds']}s")
    say(f"    CPU seconds during the N run: {cpu}: all of it needs {result['cpu_floor_ratio']} x T(1) on "
        f"this machine")
    say(f"    apiserver requests per deployment during the N run (all clients): "
        f"{result['apiserver_requests_per_deployment']}")
    say(f"    CPU seconds of the one alone: {result['cpu_seconds_single']}")
    if result["stage_failures"]:
        say(f"    failed stage attempts (retried): {result['stage_failures']}")
    say(f"    mean stage seconds alone: {result['mean_stage_seconds_single']}")
    say(f"    mean stage seconds with N: {result['mean_stage_seconds_n']}")
    if result["operator_profile"]:
        say(f"    operator profile (speedscope): {result['operator_profile']}")


def main(options: Options) -> dict[str, Any]:
    result = run(options)
    path = write_result(NAME, result)
    report(result)
    say(f"    wrote {path}")
    return result
