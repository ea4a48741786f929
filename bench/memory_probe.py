"""``python -m bench.memory_probe run ...``: the shipped CLI with a memory report on SIGUSR2, for ``bench.p4_memory``.

Owns: starting the operator exactly as ``python -m o4o_operator`` does (see ``bench.p4_idle.shipped_cli``),
after optionally starting ``tracemalloc`` (``O4O_PROBE_TRACEMALLOC_FRAMES``: frames per trace, 0 or unset: off;
with more than one frame, only after the operator's modules are imported, which would take minutes traced), and a
SIGUSR2 handler that writes one JSON report to ``O4O_PROBE_REPORT``: RSS, what tracemalloc traces (top sites
by line and, with more than one frame, by traceback), the live objects by type and how many ``gc`` tracks,
and RSS again after ``malloc_trim(0)`` (how much of RSS the allocator held free). Nothing of the operator's
code changes; only the benchmarks use this module. Must not assert anything.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import gc
import json
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

FRAMES_VARIABLE = "O4O_PROBE_TRACEMALLOC_FRAMES"
REPORT_VARIABLE = "O4O_PROBE_REPORT"
TOP = 40


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _sites(snapshot: tracemalloc.Snapshot, key: str, top: int) -> list[dict[str, Any]]:
    stats = snapshot.statistics(key)
    return [{"kib": round(stat.size / 1024, 1), "count": stat.count,
             "where": [f"{frame.filename}:{frame.lineno}" for frame in stat.traceback]} for stat in stats[:top]]


def _by_package(snapshot: tracemalloc.Snapshot) -> dict[str, float]:
    """Traced MiB by the package (or our module) of the allocating line."""
    sizes: collections.Counter[str] = collections.Counter()
    for stat in snapshot.statistics("filename"):
        name = stat.traceback[0].filename
        marker = "site-packages/"
        if marker in name:
            name = name.split(marker, 1)[1].split("/", 1)[0]
        elif "/o4o_operator/" in name:
            name = "o4o_operator/" + name.split("/o4o_operator/", 1)[1]
        elif "/lib/python" in name:
            name = "stdlib/" + name.split("/lib/python", 1)[1].split("/", 2)[-1]
        sizes[name] += stat.size
    return {name: round(size / 1024 / 1024, 2) for name, size in sizes.most_common(TOP)}


def report() -> dict[str, Any]:
    started = time.monotonic()
    result: dict[str, Any] = {"rss_mib": _rss_mib()}
    snapshot: tracemalloc.Snapshot | None = None
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot().filter_traces((
            tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        ))
        current, peak = tracemalloc.get_traced_memory()
        result["tracemalloc"] = {
            "traced_mib": round(current / 1024 / 1024, 1), "peak_mib": round(peak / 1024 / 1024, 1),
            "overhead_mib": round(tracemalloc.get_tracemalloc_memory() / 1024 / 1024, 1),
            "by_package_mib": _by_package(snapshot), "by_line": _sites(snapshot, "lineno", TOP),
            "by_traceback": _sites(snapshot, "traceback", 15) if tracemalloc.get_traceback_limit() > 1 else []}
    objects = gc.get_objects()
    counts: collections.Counter[str] = collections.Counter(type(obj).__qualname__ for obj in objects)
    coroutines = collections.Counter(obj.__qualname__ for obj in objects if type(obj).__name__ == "coroutine")
    result["coroutines"] = dict(coroutines.most_common(20))
    del objects
    result["gc_tracked_objects"] = sum(counts.values())
    result["gc_top_types"] = dict(counts.most_common(25))
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    result["gc_unreachable_collected"] = gc.collect()
    result["rss_mib_after_collect"] = _rss_mib()
    if snapshot is not None:  # what the collection freed: cyclic garbage still held until then
        freed = tracemalloc.take_snapshot().compare_to(snapshot, "lineno")
        freed.sort(key=lambda stat: stat.size_diff)
        result["tracemalloc"]["traced_mib_after_collect"] = round(tracemalloc.get_traced_memory()[0] / 1024 / 1024, 1)
        result["tracemalloc"]["freed_by_collect"] = [
            {"kib": round(-stat.size_diff / 1024, 1), "count": -stat.count_diff, "where": str(stat.traceback[0])}
            for stat in freed[:15] if stat.size_diff < 0]
    libc.malloc_trim(0)
    result["rss_mib_after_malloc_trim"] = _rss_mib()
    result["report_seconds"] = round(time.monotonic() - started, 1)
    return result


def _on_signal(_signum: int, _frame: FrameType | None) -> None:
    path = os.environ.get(REPORT_VARIABLE)
    if path:
        Path(path).write_text(json.dumps(report(), indent=1) + "\n")


def main() -> int:
    frames = int(os.environ.get(FRAMES_VARIABLE) or 0)
    if frames > 1:  # deep traces make imports too slow for the liveness wait: trace from after them
        sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]  # as the CLI does
        from o4o_operator import cli, handlers, handlers_fleet  # noqa: F401
    if frames > 0:
        tracemalloc.start(frames)
    signal.signal(signal.SIGUSR2, _on_signal)
    from o4o_operator import cli

    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
