"""The booted-host worker runs ahead of the others: it is ``make test``'s critical path.

Owns: :func:`put_first`, which gives the calling worker and every process it has started (its control plane)
and will start (booted hosts, their operators, everything inside the hosts) a higher CPU priority, once.

Why: the booted-host modules are one unit of work for one worker (one world at a time owns the bridge), and
that worker finishes last. Run alone, the first contract instance is Ready in about 75 s; beside three other
workers on 2 cores it took 280-300 s, its processes waiting for the CPU behind modules that had minutes to
spare. With its processes at nice -5 (weight 3121 against 1024) the scheduler serves it first and the other
workers take the CPU it leaves. Changes no test and asserts nothing; without root (when the booted tier skips
anyway) it does nothing.

Must not: lower anyone else's priority, or be used for anything but the booted-host group.
"""

from __future__ import annotations

import contextlib
import os

from cpu_accounting import process_tree

NICENESS = -5
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
