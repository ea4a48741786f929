"""A boto3 call whose caller was cancelled still runs in its thread; the instance's in-flight count says so
until it lands, so that teardown can wait for it (issue 19: a create landing after teardown looked)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from o4o_operator.providers.aws import AwsClient, ClientSettings, InFlightCalls


async def test_a_cancelled_call_counts_until_its_thread_is_done() -> None:
    tracker = InFlightCalls()
    client = AwsClient("lightsail", "us-east-1", ClientSettings(in_flight=tracker))
    started, release, landed = threading.Event(), threading.Event(), []

    def blocking_call(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        started.set()
        release.wait(10)
        landed.append(operation)
        return {}

    client._blocking_call = blocking_call  # type: ignore[method-assign]
    call = asyncio.create_task(client.call("create_instances", instanceNames=["web-1"]))
    assert await asyncio.to_thread(started.wait, 5)
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await call

    assert len(tracker) == 1, "the thread still runs: its create may still land"
    assert not await tracker.wait_idle(0.05)
    release.set()
    assert await tracker.wait_idle(5)
    assert landed == ["create_instances"] and len(tracker) == 0


async def test_nothing_in_flight_is_idle_at_once() -> None:
    assert await InFlightCalls().wait_idle(0)
