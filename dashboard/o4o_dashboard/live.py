"""The Server-Sent Events stream (``/events``) that keeps open pages current.

Owns: the wire format of the stream (``hello``, ``change`` and ``status``
events, keep-alive comments, the reconnect delay), one cache subscription per
client, the cap on concurrent clients, and ending every stream when the
server shuts down. The pages' script decides what to refetch.

Must not: call the Kubernetes API, or put instance data in the stream (events
carry only keys and revisions; the data comes from the escaped HTML fragments
and the JSON API).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from o4o_dashboard.cache import Change, InstanceCache
from o4o_dashboard.metrics import DashboardMetrics
from o4o_dashboard.views import iso

KEEPALIVE_SECONDS = 15.0
RECONNECT_MILLISECONDS = 3000
MAX_CLIENTS = 200
STREAM_HEADERS: Mapping[str, str] = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
}


def sse_message(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def status_payload(cache: InstanceCache) -> dict[str, Any]:
    return {"boot": cache.boot_id, "revision": cache.revision, "stale": cache.stale,
            "staleSince": iso(cache.stale_since)}


def change_message(change: Change, cache: InstanceCache) -> bytes:
    if change.kind == "status":
        return sse_message("status", status_payload(cache))
    return sse_message("change", {"kind": change.kind, "key": change.key, "revision": change.revision})


def event_stream_handler(cache: InstanceCache, metrics: DashboardMetrics,
                         ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def event_stream(request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            return web.Response(headers=STREAM_HEADERS)
        if cache.subscriber_count >= MAX_CLIENTS:
            raise web.HTTPServiceUnavailable(text="503: too many live clients\n",
                                             headers={"Retry-After": "30"})
        response = web.StreamResponse(headers=STREAM_HEADERS)
        subscription = cache.subscribe()
        metrics.live_clients.set(cache.subscriber_count)
        try:
            await response.prepare(request)
            await response.write(f"retry: {RECONNECT_MILLISECONDS}\n".encode()
                                 + sse_message("hello", status_payload(cache)))
            while not subscription.closed:
                batch = await subscription.next_batch(KEEPALIVE_SECONDS)
                if subscription.closed:
                    break
                payload = b"".join(change_message(change, cache) for change in batch)
                await response.write(payload or b": keep-alive\n\n")
        except ConnectionResetError:
            pass  # the browser went away
        finally:
            cache.unsubscribe(subscription)
            metrics.live_clients.set(cache.subscriber_count)
        return response

    return event_stream
