"""The operator hands the C allocator's free memory back now and then (bench p4_memory: 40 MiB at 1000 instances)."""

from __future__ import annotations

import asyncio
import contextlib

from o4o_operator.runner.memory_trim import libc_malloc_trim, trim_forever
from o4o_operator.runner.runtime import OperatorState
from o4o_operator.runner.settings import OperatorSettings


def test_this_c_library_has_malloc_trim() -> None:
    trim = libc_malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)


async def test_the_loop_trims_again_and_again_until_cancelled() -> None:
    calls: list[int] = []
    twice = asyncio.Event()

    def trim(pad: int) -> int:
        calls.append(pad)
        if len(calls) == 2:
            twice.set()
        return 1

    loop = asyncio.create_task(trim_forever(trim, interval=0.01))
    await asyncio.wait_for(twice.wait(), timeout=10)
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    assert calls[:2] == [0, 0]


async def test_the_operator_state_trims_from_its_start_to_its_close() -> None:
    state = OperatorState(OperatorSettings())
    state.start_memory_trim()
    task = state._trimming
    assert task is not None and not task.done()
    await state.close()
    assert task.cancelled()
