"""How the operator's own Kubernetes client reaches the API server: credentials, TLS and one retried call.

Owns: :class:`Credentials` (what Kopf's login found), the TLS context made from them (a client key given
as data is on disk only while it is loaded), URL paths built
from names that cannot step out of their segment (:func:`api_path`), and :class:`KubeTransport`, the
aiohttp session and :meth:`KubeTransport.request` (retried on conflicts, throttling and server errors,
counting writes, each write first past the write guard: a deposed leader writes nothing), and
:class:`FencedConnector`, which asks the guard again once a write's connection is ready, the last point before
the request is written (Kopf's session uses it too, :mod:`o4o_operator.kopf_fence`).
Must not know any resource: :mod:`o4o_operator.kubeapi` builds on it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import ssl
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from o4o_operator.errors import TransientError

RETRYABLE = frozenset({409, 429, 500, 502, 503, 504})
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class FencedConnector(aiohttp.TCPConnector):
    """A connector that calls ``guard("<METHOD> <path>")`` for every request but a read: before it takes a
    connection, and again once it has one (made or reused), the last point aiohttp offers before it writes the
    request (its headers at once, on Python before 3.12 its body in a task of its own, in the next turn of the
    event loop). Every attempt passes it, retries included; ``guard`` refuses by raising, and a connection taken
    for a refused write is closed, never handed back."""

    def __init__(self, guard: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard = guard

    async def connect(self, req: aiohttp.ClientRequest, traces: list[Any],
                      timeout: aiohttp.ClientTimeout) -> aiohttp.connector.Connection:  # noqa: ASYNC109 - aiohttp's
        write = None if req.method.upper() in _READS else f"{req.method.upper()} {req.url.path}"
        if write is not None:
            self._guard(write)
        connection = await super().connect(req, traces, timeout)
        if write is not None:
            try:
                self._guard(write)
            except BaseException:
                connection.close()
                raise
        return connection


@dataclasses.dataclass(frozen=True)
class Credentials:
    server: str
    ca_path: str | None = None
    ca_data: bytes | None = None
    certificate_path: str | None = None
    certificate_data: bytes | None = None
    private_key_path: str | None = None
    private_key_data: bytes | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    insecure: bool = False


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def path_segment(value: str) -> str:
    """One URL path segment, percent-quoted; refuses what could step out of its place in the path.

    A referenced name goes into the URL as exactly one segment: ``""``, ``.``, ``..`` and anything
    holding a ``/`` are refused outright (aiohttp would resolve dot segments, and the apiserver
    decodes ``%2F``), so a name can never reach another namespace's objects.
    """
    if value in ("", ".", "..") or "/" in value:
        raise ValueError(f"{value!r} is not a valid object name")
    return urllib.parse.quote(value, safe="")


def api_path(prefix: str, *segments: str) -> str:
    """``prefix`` (a fixed API path such as ``/api/v1``) followed by quoted ``segments``."""
    return "/".join([prefix, *(path_segment(segment) for segment in segments)])


def _ssl_context(credentials: Credentials) -> ssl.SSLContext | bool:
    if credentials.insecure:
        return False
    context = ssl.create_default_context(cafile=credentials.ca_path,
                                         cadata=credentials.ca_data.decode() if credentials.ca_data else None)
    if credentials.certificate_data and credentials.private_key_data:
        _load_client_pair(context, credentials.certificate_data, credentials.private_key_data)
    elif credentials.certificate_path:
        context.load_cert_chain(credentials.certificate_path, credentials.private_key_path)
    return context


def _load_client_pair(context: ssl.SSLContext, certificate: bytes, private_key: bytes) -> None:
    """Load a client certificate and key given as data: :mod:`ssl` reads them only from a file, so they are
    written to one in a private (0700) temporary directory, which is gone again once they are loaded (the
    context keeps them in memory); the key never outlives this call on disk."""
    with tempfile.TemporaryDirectory(prefix="o4o-client-") as private:
        bundle = os.path.join(private, "client.pem")
        with open(os.open(bundle, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
            file.write(certificate + b"\n" + private_key)
        context.load_cert_chain(bundle)


class KubeTransport:
    def __init__(self, credentials: Credentials, *, attempts: int = 6,
                 write_guard: Callable[[str], None] | None = None, connections: int = 20,
                 read_timeout: float = 30.0) -> None:
        """``write_guard(what)``: called before every write, raises to refuse it (a deposed leader's term).
        ``connections``: the pool's size; ``read_timeout``: how long the API server may stay silent."""
        self._credentials = credentials
        self._attempts = attempts
        self._connections = connections
        self._read_timeout = read_timeout
        self._write_guard = write_guard
        self._session: aiohttp.ClientSession | None = None
        self.writes = 0

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Authorization": f"Bearer {self._credentials.token}"} if self._credentials.token else {}
            ssl_context = _ssl_context(self._credentials)
            connector = aiohttp.TCPConnector(ssl=ssl_context, limit=self._connections) if self._write_guard is None \
                else FencedConnector(self._write_guard, ssl=ssl_context, limit=self._connections)
            self._session = aiohttp.ClientSession(self._credentials.server, headers=headers, connector=connector,
                                                  timeout=_timeout(self._read_timeout))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, *, body: Any = None,
                      content_type: str = "application/json", params: Mapping[str, str] | None = None,
                      retry_on: frozenset[int] = RETRYABLE) -> Any:
        """One API call, retried on conflicts, throttling and server errors (``retry_on``) with the same body."""
        data = json.dumps(body) if body is not None else None
        for attempt in range(1, self._attempts + 1):
            if method != "GET" and self._write_guard is not None:
                self._write_guard(f"{method} {path}")  # before every attempt: a retry may come after the term
            client = await self._client()
            try:
                async with client.request(method, path, data=data, params=params,
                                          headers={"Content-Type": content_type}) as response:
                    text = await response.text()
                    if response.status < 400:
                        if method != "GET":
                            self.writes += 1
                        return json.loads(text) if text else None
                    if response.status not in retry_on or attempt == self._attempts:
                        raise ApiError(response.status, _message(text))
            except (TimeoutError, aiohttp.ClientConnectionError) as error:
                if attempt == self._attempts:
                    raise TransientError("ApiUnavailable", f"Kubernetes API unreachable: {error}") from error
            await asyncio.sleep(min(5.0, 0.2 * 2 ** attempt))  # backoff between retries of one call
        raise AssertionError("unreachable")


def _timeout(read_timeout: float) -> aiohttp.ClientTimeout:
    """Bounds on the API server, not on our own queue: connecting, then each wait for its next bytes. A call
    waiting for one of the pool's connections (hundreds of instances at once) waits its turn; a total
    bound counted that wait and failed calls the API server never saw."""
    return aiohttp.ClientTimeout(total=None, connect=None, sock_connect=10.0, sock_read=read_timeout)


def _message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text))[:500]
    except ValueError:
        return text[:500]
