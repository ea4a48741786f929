"""The booted-host worker runs ahead of the others: it is ``make test``'s critical path.

Owns: :func:`put_first`, which gives the calling worker and every process it has started (its control plane)
and will start (booted hosts, their operators, everything inside the hosts) a higher CPU priority, once.

Why: the booted-host modules are one unit of work for one worker (one world at a time owns the bridge), and
that worker finishes last. Run alone, the first contract instance is Ready in about 75 s; beside three other
workers on 2 cores it took 280-300 s, its processes waiting for the CPU behind modules that had minutes to
spare. With its processes at nice -10 (weight 9548 against 1024) the scheduler serves it first and the other
workers take the CPU it leaves (about 0.7 of the 2 cores, on average, is the booted worker's when it runs alone,
so the others keep most of the machine). At nice -5, it still took 271 s beside the others (run of 49a2c27).
At nice -20 the booted worker took 1,079 s against 1,053 at -10, and the other three 911 s against 751-758
(runs of 5fa8e75): its share of the CPU is not what holds it back beside the others.
Changes no test and asserts nothing; without root (when the booted tier skips anyway) it does nothing.

Must not: lower anyone else's priority, or be used for anything but the booted-host group.
"""

from __future__ import annotations

import contextlib
import os

from cpu_accounting import process_tree

NICENESS = -10
_raised = False


def put_first() -> None:
    """Raise this process's tree to :data:`NICENESS` (once per process; root only)."""
    global _raised
    if _raised or os.geteuid() != 0:
        return
    _raised = True
    for pid in process_tree(os.getpid()):
        with contextlib.suppress(OSError):  # gone meanwhile
            os.setpriority(os.PRIO_PROCESS, pid, NICENESS)
