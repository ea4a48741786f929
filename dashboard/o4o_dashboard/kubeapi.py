"""The only code that talks to the Kubernetes API: paginated lists and watch streams.

Owns: one aiohttp session to the API server, the list (with ``limit`` and
``continue``) and watch (``allowWatchBookmarks``, ``timeoutSeconds``) requests,
decoding the newline-delimited watch stream, mapping failures to
:class:`ApiError` / :class:`ResourceExpired` / :class:`ApiUnreachable`, and
counting every request made (``calls``, and the ``kube_api_calls`` metric).

Must not: write to the cluster (only GET), read Secrets, retry (the reflector
owns retries and backoff), or put credentials into error messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import aiohttp

from o4o_dashboard.credentials import ApiCredentials
from o4o_dashboard.metrics import DashboardMetrics

LIST_PAGE_SIZE = 500
MAX_WATCH_LINE_BYTES = 16 * 1024 * 1024
_MESSAGE_CHARS = 300


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if message else f"HTTP {status}")
        self.status = status


class ResourceExpired(ApiError):
    """410 Gone: the resourceVersion is too old to resume from; list again."""


class ApiUnreachable(Exception):
    """No answer from the API server (connection refused, reset, timed out, broken stream)."""


@dataclasses.dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str
    object: Mapping[str, Any]


def _status_error(status: int, body: Any) -> ApiError:
    message = ""
    if isinstance(body, Mapping):
        message = str(body.get("message", ""))[:_MESSAGE_CHARS]
    error_type = ResourceExpired if status == 410 else ApiError
    return error_type(status, message)


async def _error_from_response(response: aiohttp.ClientResponse) -> ApiError:
    try:
        body: Any = json.loads(await response.read())
    except (ValueError, aiohttp.ClientError):
        body = None
    return _status_error(response.status, body)


async def watch_lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Non-empty lines of a newline-delimited stream, of any length up to a safety cap."""
    buffer = bytearray()
    async for chunk in content.iter_any():
        searched_from = len(buffer)
        buffer += chunk
        while (end := buffer.find(b"\n", searched_from)) >= 0:
            line = bytes(buffer[:end])
            del buffer[:end + 1]
            searched_from = 0
            if line.strip():
                yield line
        if len(buffer) > MAX_WATCH_LINE_BYTES:
            raise ApiUnreachable(f"watch stream sent a line over {MAX_WATCH_LINE_BYTES} bytes")
    if buffer.strip():
        yield bytes(buffer)


class KubeApi:
    """GET-only client for list and watch, with a count of every request."""

    def __init__(self, credentials: ApiCredentials, metrics: DashboardMetrics | None = None, *,
                 connect_timeout: float = 10.0, request_timeout: float = 60.0) -> None:
        self._credentials = credentials
        self._metrics = metrics
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None
        self.calls = 0

    async def __aenter__(self) -> KubeApi:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def server(self) -> str:
        return self._credentials.server

    def _session_for_requests(self) -> aiohttp.ClientSession:
        if self._session is None:
            tls = self._credentials.ssl_context
            connector = aiohttp.TCPConnector(ssl=tls if tls is not None else True, limit=8)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def _count(self, verb: str) -> None:
        self.calls += 1
        if self._metrics is not None:
            self._metrics.api_calls.labels(verb).inc()

    @contextlib.asynccontextmanager
    async def _get(self, path: str, params: Mapping[str, str], client_timeout: aiohttp.ClientTimeout,
                   ) -> AsyncIterator[aiohttp.ClientResponse]:
        async with self._session_for_requests().get(
                self._credentials.server + path, params=dict(params), headers=self._credentials.headers(),
                timeout=client_timeout, server_hostname=self._credentials.server_hostname,
                allow_redirects=False) as response:
            yield response

    async def list(self, path: str, params: Mapping[str, str] | None = None,
                   ) -> tuple[list[Mapping[str, Any]], str]:
        """All items (page by page) and the list's resourceVersion."""
        items: list[Mapping[str, Any]] = []
        query = {**(params or {}), "limit": str(LIST_PAGE_SIZE)}
        timeout = aiohttp.ClientTimeout(total=self._request_timeout, connect=self._connect_timeout)
        while True:
            self._count("list")
            try:
                async with self._get(path, query, timeout) as response:
                    if response.status != 200:
                        raise await _error_from_response(response)
                    body = json.loads(await response.read())
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                raise ApiUnreachable(f"list {path}: {type(error).__name__}: {error}") from None
            except ValueError:
                raise ApiUnreachable(f"list {path}: the answer is not JSON") from None
            items.extend(item for item in body.get("items") or [] if isinstance(item, Mapping))
            metadata = body.get("metadata") or {}
            continue_token = metadata.get("continue")
            if not continue_token:
                return items, str(metadata.get("resourceVersion", ""))
            query["continue"] = str(continue_token)

    @contextlib.asynccontextmanager
    async def watch(self, path: str, resource_version: str, timeout_seconds: int,
                    params: Mapping[str, str] | None = None,
                    ) -> AsyncIterator[AsyncGenerator[WatchEvent, None]]:
        """Open a watch after ``resource_version`` (bookmarks on); yields the stream of its events.

        Entering raises :class:`ResourceExpired`, :class:`ApiError` or :class:`ApiUnreachable` if the
        watch cannot start; iterating raises them if it breaks off. The stream ends when the server
        closes it (``timeoutSeconds``).
        """
        query = {**(params or {}), "watch": "true", "resourceVersion": resource_version,
                 "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_seconds)}
        timeout = aiohttp.ClientTimeout(total=None, connect=self._connect_timeout,
                                        sock_read=timeout_seconds + 30)
        self._count("watch")
        try:
            async with self._get(path, query, timeout) as response:
                if response.status != 200:
                    raise await _error_from_response(response)
                stream = _events(path, response)
                try:
                    yield stream
                except BaseException:
                    _abort(response)  # a watch given up half-way: drop it now, no TLS goodbye to wait for
                    raise
                finally:
                    await stream.aclose()
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise ApiUnreachable(f"watch {path}: {type(error).__name__}: {error}") from None


def _abort(response: aiohttp.ClientResponse) -> None:
    connection = response.connection
    transport = connection.transport if connection is not None else None
    if transport is not None:
        transport.abort()


async def _events(path: str, response: aiohttp.ClientResponse) -> AsyncGenerator[WatchEvent, None]:
    try:
        async for line in watch_lines(response.content):
            yield _decode_event(line)
    except (aiohttp.ClientError, TimeoutError, OSError, asyncio.IncompleteReadError) as error:
        raise ApiUnreachable(f"watch {path}: the stream broke off ({type(error).__name__})") from None


def _decode_event(line: bytes) -> WatchEvent:
    try:
        decoded = json.loads(line)
    except ValueError:
        raise ApiUnreachable("watch stream sent a line that is not JSON") from None
    event_type = str(decoded.get("type", "")) if isinstance(decoded, Mapping) else ""
    obj = decoded.get("object") if isinstance(decoded, Mapping) else None
    if not event_type or not isinstance(obj, Mapping):
        raise ApiUnreachable("watch stream sent an event without type or object")
    if event_type == "ERROR":
        raise _status_error(int(obj.get("code") or 500), obj)
    return WatchEvent(type=event_type, object=obj)
