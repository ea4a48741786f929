"""P4's memory, taken apart: the operator's RSS at several scales, the per-instance slope, and where it goes.

``python -m bench.p4_memory --scales 0,200,400,1000 --trace 400`` loads Ready instances exactly as P4
does (:func:`bench.p4_idle.load`), one scale after the other in one control plane. At each scale the
operator first takes the new instances over (a start, as in P4), then is started again (the steady state,
as P4 measures it) through :mod:`bench.memory_probe`, sampled for ``--idle-seconds``, and asked for its
report (SIGUSR2): live objects by type, RSS after ``gc.collect()`` and after ``malloc_trim(0)``. At the
``--trace`` scales a third start runs under ``tracemalloc`` (``--frames`` per trace) and reports the top
allocation sites by package, line and traceback: tracemalloc's own memory and slower start are kept off
the RSS figures. Also printed: RSS after importing what the operator imports, with no instances at all.

Prints figures and writes ``bench/results/p4-memory.json``; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import memory_probe
from bench.common import ProcessSampler, say, start_control_plane, write_result
from bench.p4_idle import DRIFT_INTERVAL_SECONDS, NAMESPACE, RSS_TARGET_MB, load, shipped_cli, wait_settled
from o4o_operator.testing.operator_process import OperatorProcess

NAME = "p4-memory"
REPORT_TIMEOUT_SECONDS = 300.0
IMPORTS = """
import sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return round(int(line.split()[1]) / 1024, 1)
steps = {'python': rss()}
sys.modules.setdefault('kubernetes', None)
for name in ('kopf', 'aiohttp', 'pydantic', 'boto3', 'asyncssh', 'jinja2', 'prometheus_client'):
    __import__(name)
    steps[name] = rss()
from o4o_operator import handlers, handlers_fleet, kopf_namespaces, metrics, cli
steps['o4o_operator'] = rss()
steps['modules'] = len(sys.modules)
print(repr(steps))
"""


def import_baseline() -> dict[str, Any]:
    """RSS (MiB) after each import, cumulative, in a fresh interpreter: the floor under every scale."""
    output = subprocess.run([sys.executable, "-c", IMPORTS], capture_output=True, text=True, check=True).stdout
    return dict(eval(output.strip().splitlines()[-1]))  # noqa: S307 - our own child's repr of a dict


def _probe_launcher(_env: Mapping[str, str]) -> list[str]:
    return [sys.executable, "-m", "bench.memory_probe"]


def _ask_report(operator: OperatorProcess, path: Path) -> dict[str, Any]:
    assert operator.process is not None
    path.unlink(missing_ok=True)
    operator.process.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + REPORT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if path.exists():
            try:
                return dict(json.loads(path.read_text()))
            except json.JSONDecodeError:
                pass  # still being written
        time.sleep(0.5)  # polling the child's report file, bounded by the deadline
    raise RuntimeError(f"no memory report after {REPORT_TIMEOUT_SECONDS:.0f}s:\n{operator.output()[-2000:]}")


def _settle(operator: OperatorProcess, count: int) -> dict[str, Any]:
    """``wait_settled``, again if the metrics endpoint did not answer in time (a traced operator, or 1000
    instances taken over on a busy machine, can keep it from answering within its 5 s)."""
    deadline = time.monotonic() + 1800.0
    while True:
        try:
            return wait_settled(operator, count, timeout=max(1.0, deadline - time.monotonic()))
        except OSError:
            if time.monotonic() > deadline:
                raise


def measure(kubeconfig: Path, directory: Path, count: int, env: Mapping[str, str], idle_seconds: float,
            frames: int = 0) -> dict[str, Any]:
    """One steady-state start at ``count`` instances: RSS over the idle window and the probe's report."""
    report_path = directory / f"report-{count}-{frames}.json"
    probe_env = {**env, memory_probe.REPORT_VARIABLE: str(report_path),
                 memory_probe.FRAMES_VARIABLE: str(frames)}
    log = directory / f"operator-{count}-{frames}.log"
    with OperatorProcess(kubeconfig, log, env=probe_env, launcher=_probe_launcher) as operator:
        assert operator.process is not None
        settled = _settle(operator, count)
        sampler = ProcessSampler(operator.process.pid)
        with sampler:
            time.sleep(idle_seconds)
        result = {"settled_seconds": settled["quiet_after_seconds"], "idle": sampler.summary()}
        result["probe"] = _ask_report(operator, report_path)
    return result


def slope(points: Sequence[tuple[int, float]]) -> tuple[float, float] | None:
    """Least squares (intercept MiB, KiB per instance) over (instances, RSS MiB); None below two scales."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    per = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    return round(mean_y - per * mean_x, 1), round(per * 1024, 1)


def run(scales: Sequence[int], traced: Sequence[int], frames: int, idle_seconds: float,
        env: Mapping[str, str]) -> dict[str, Any]:
    operator_env = {"O4O_DRIFT_INTERVAL_SECONDS": str(DRIFT_INTERVAL_SECONDS), **env}
    result: dict[str, Any] = {"benchmark": NAME, "operator_env": dict(env), "imports_mib": import_baseline(),
                              "scales": {}}
    say(f"P4 memory: RSS (MiB) after the operator's imports alone: {result['imports_mib']}")
    plane = start_control_plane()
    directory = Path(tempfile.mkdtemp(prefix="o4o-bench-p4m-"))
    loaded = 0
    try:
        plane.create_namespace(NAMESPACE)
        for count in sorted(scales):
            if count > loaded:
                seconds = asyncio.run(load(plane, count, start=loaded))
                say(f"P4 memory: {count} Ready instances loaded (+{count - loaded} in {seconds:.1f}s); takeover ...")
                loaded = count
                with OperatorProcess(plane.kubeconfig, directory / f"takeover-{count}.log",
                                     env=operator_env, launcher=shipped_cli) as operator:
                    _settle(operator, count)
            figures = measure(plane.kubeconfig, directory, count, operator_env, idle_seconds)
            if count in traced:
                figures["traced"] = measure(plane.kubeconfig, directory, count, operator_env, 2.0, frames)["probe"]
            result["scales"][str(count)] = figures
            report_scale(count, figures)
    finally:
        plane.stop()
        shutil.rmtree(directory, ignore_errors=True)
    points = [(int(count), figures["idle"]["rss_mib_max"]) for count, figures in result["scales"].items()]
    fit = slope(points)
    result["fit"] = None if fit is None else {"intercept_mib": fit[0], "kib_per_instance": fit[1],
                                              "at_1000_mb": round((fit[0] + fit[1] * 1000 / 1024) * 1.048576, 1)}
    result["target_mb"] = RSS_TARGET_MB
    return result


def report_scale(count: int, figures: dict[str, Any]) -> None:
    probe = figures["probe"]
    say(f"P4 memory: {count:5d} instances: RSS {figures['idle']['rss_mib_max']} MiB idle max "
        f"(last {figures['idle']['rss_mib_last']}) "
        f"({figures['idle']['rss_mib_max'] * 1.048576:.1f} MB), {probe['rss_mib_after_collect']} after gc.collect, "
        f"{probe['rss_mib_after_malloc_trim']} after malloc_trim; {probe['gc_tracked_objects']} gc-tracked objects; "
        f"CPU {figures['idle']['cpu_percent_of_one_core']}%")
    say(f"    top types: {json.dumps(dict(list(probe['gc_top_types'].items())[:12]))}")
    traced = figures.get("traced", {}).get("tracemalloc")
    if traced:
        say(f"    tracemalloc: {traced['traced_mib']} MiB traced (its own overhead {traced['overhead_mib']} MiB); "
            f"by package: {json.dumps(dict(list(traced['by_package_mib'].items())[:15]))}")
        for site in traced["by_line"][:25]:
            say(f"      {site['kib']:10.1f} KiB {site['count']:8d}  {site['where'][0]}")
        say(f"    gc.collect() found {figures['traced']['gc_unreachable_collected']} unreachable objects; traced "
            f"{traced.get('traced_mib_after_collect')} MiB after it; it freed most at:")
        for site in traced.get("freed_by_collect", [])[:10]:
            say(f"      {site['kib']:10.1f} KiB {site['count']:8d}  {site['where']}")
        for site in traced["by_traceback"][:8]:
            say(f"      {site['kib']:10.1f} KiB {site['count']:8d}  " + " <- ".join(reversed(site["where"][-6:])))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.p4_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="0,200,400,1000", help="instance counts, measured in turn")
    parser.add_argument("--trace", default="400", help="scales also measured under tracemalloc ('' for none)")
    parser.add_argument("--frames", type=int, default=1, help="tracemalloc frames per trace")
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="RSS sampling window at each scale")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra operator environment (e.g. MALLOC_ARENA_MAX=2); repeatable")
    args = parser.parse_args(argv)
    scales = [int(x) for x in args.scales.split(",") if x.strip()]
    traced = [int(x) for x in args.trace.split(",") if x.strip()]
    env = dict(item.split("=", 1) for item in args.env)
    result = run(scales, traced, args.frames, args.idle_seconds, env)
    path = write_result(NAME, result)
    fit = result["fit"]
    if fit is not None:
        say(f"P4 memory: fit: {fit['intercept_mib']} MiB + {fit['kib_per_instance']} KiB per instance; "
            f"at 1000: {fit['at_1000_mb']} MB (target {RSS_TARGET_MB:g} MB)")
    say(f"    wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
