"""Opt-in (``O4O_CPU_ACCOUNTING=1``): the CPU each test costs the machine, its own and every process it starts.

Owns: per test, the wall time and the CPU seconds (user + system) of this worker's process tree: the worker
itself, its live descendants (operators, control planes, booted hosts' systemd-nspawn and everything in
them), and whatever they reaped. One TSV line per test into ``$O4O_ARTIFACTS/cpu-<worker>.tsv``; ``python -m
bench.suite_cpu`` sums them per module and directory. Measures only: it asserts nothing and changes no test.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from pathlib import Path

import pytest

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[int, float] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), sum(int(value) for value in fields[11:15]) / _TICK


def _processes() -> dict[int, tuple[int, float]]:
    """Every live process: its parent and its CPU seconds (utime + stime + cutime + cstime)."""
    found: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(entry)) is not None:
            found[int(entry)] = stat
    return found


def process_tree(root: int, processes: dict[int, tuple[int, float]] | None = None) -> list[int]:
    """``root`` and every live descendant."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in (processes if processes is not None else _processes()).items():
        children.setdefault(parent, []).append(pid)
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, ()))
    return found


def tree_cpu_seconds(root: int) -> float:
    """utime + stime + cutime + cstime of ``root`` and of every live descendant."""
    processes = _processes()
    return sum(processes[pid][1] for pid in process_tree(root, processes) if pid in processes)


class CpuAccounting:
    def __init__(self, output: Path) -> None:
        output.parent.mkdir(parents=True, exist_ok=True)
        self.output = output

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, None, None]:
        started_wall, started_cpu = time.monotonic(), tree_cpu_seconds(os.getpid())
        yield
        wall, cpu = time.monotonic() - started_wall, tree_cpu_seconds(os.getpid()) - started_cpu
        with self.output.open("a") as out:
            out.write(f"{item.nodeid}\t{wall:.2f}\t{cpu:.2f}\n")


def register(config: pytest.Config) -> None:
    if os.environ.get("O4O_CPU_ACCOUNTING") != "1":
        return
    artifacts = Path(os.environ.get("O4O_ARTIFACTS") or Path(os.environ.get("TMPDIR", "/tmp")) / "o4o-artifacts")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    config.pluginmanager.register(CpuAccounting(artifacts / f"cpu-{worker}.tsv"), "o4o-cpu-accounting")
