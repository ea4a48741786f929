"""Hands the C allocator's free memory back to the system, now and then (glibc's ``malloc_trim``).

Owns: finding ``malloc_trim`` in the C library (None where there is none, e.g. musl), and the loop that
calls it every :data:`TRIM_INTERVAL_SECONDS` in a thread of its own. Python returns what it frees to the
C allocator, which keeps it: after an operator with 1000 instances has listed them and made every
worker's first pass, glibc held 40 MiB free (bench ``p4_memory``: 222 MiB of RSS, 182 after a trim).
Must not do anything else; a trim changes no object, only what the process keeps mapped.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

TRIM_INTERVAL_SECONDS = 10.0
"""Short enough that a peak's leftovers (a start, many instances changed at once) go within seconds;
a trim takes milliseconds."""

Trim = Callable[[int], int]


def libc_malloc_trim() -> Trim | None:
    """glibc's ``malloc_trim(pad)``, or None when the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


async def trim_forever(trim: Trim, interval: float = TRIM_INTERVAL_SECONDS) -> None:
    """Call ``trim(0)`` every ``interval`` seconds, off the event loop, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(trim, 0)
