"""A fault-injecting HTTPS reverse proxy in front of kube-apiserver, for reliability tests.

Owns: :class:`FaultyApiserver`, an aiohttp server on its own event loop in a
thread, serving TLS with a certificate from its own throwaway CA (made with
:mod:`o4o_operator.testing.pki`'s helpers), that forwards every request to the
real apiserver with the control plane's admin client certificate and streams
the answer back chunk by chunk, so watches (``GET ...?watch=1``) keep working.
A configurable fraction of writes (PATCH and PUT by default) is answered
``409 Conflict`` with a proper ``metav1.Status`` body instead, drawn from a
seedable RNG; :meth:`FaultyApiserver.write_kubeconfig` points a client at it.
Every request's method and raw path (as the client sent it, before any
decoding) is recorded in :attr:`ProxyStats.paths`, so a test can assert where a
client went.

Must not: be imported by shipped code, change what it forwards, or log bodies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import ipaddress
import json
import random
import re
import shutil
import ssl
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from o4o_operator.testing.controlplane import ControlPlane
from o4o_operator.testing.pki import _issue, _key_pem, _name

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                         "trailer", "transfer-encoding", "upgrade", "content-length", "host"})
_NOT_FORWARDED = _HOP_BY_HOP | {"authorization", "accept-encoding"}
_OBJECT_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)/(?:namespaces/[^/]+/)?"
                          r"(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?")
_START_TIMEOUT = 15.0


@dataclasses.dataclass
class ProxyStats:
    """What went through the proxy, for tests to print and assert on."""

    requests: int = 0
    writes: int = 0
    conflicts: int = 0
    watches: int = 0
    conflicts_by_path: dict[str, int] = dataclasses.field(default_factory=dict)
    paths: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """(method, raw path without the query) of every request, in arrival order."""


def conflict_status(path: str) -> dict[str, Any]:
    """The ``metav1.Status`` kube-apiserver answers when a write lost an optimistic-concurrency race."""
    match = _OBJECT_PATH.match(path)
    group = (match.group("group") or "") if match else ""
    resource = match.group("resource") if match else "objects"
    name = (match.group("name") or "") if match else ""
    qualified = f"{resource}.{group}" if group else resource
    return {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified; '
                   "please apply your changes to the latest version and try again",
        "reason": "Conflict", "details": {"name": name, "group": group, "kind": resource}, "code": 409,
    }


def _abort_transports_of(loop: asyncio.AbstractEventLoop) -> None:
    """Close at once every transport still open on ``loop``. A TLS transport's close waits for the peer's
    close_notify: on a busy machine the loop was closed before that came, and the sockets were left to the garbage
    collector, whose ResourceWarnings then failed whichever test it ran in (a later one, on the same worker)."""
    for candidate in gc.get_objects():
        if isinstance(candidate, asyncio.BaseTransport) and getattr(candidate, "_loop", None) is loop:
            abort = getattr(candidate, "abort", None)
            if callable(abort):
                abort()


class FaultyApiserver:
    """``with FaultyApiserver(plane, conflict_rate=0.1, seed=1) as proxy:`` then ``proxy.write_kubeconfig(p)``."""

    def __init__(self, control_plane: ControlPlane, *, conflict_rate: float = 0.0, seed: int | None = None,
                 methods: tuple[str, ...] = ("PATCH", "PUT"), path_pattern: str = "") -> None:
        """``path_pattern``: a regex a request path must contain to be faulted (empty: every path)."""
        self.control_plane = control_plane
        self.conflict_rate = conflict_rate
        self.methods = frozenset(m.upper() for m in methods)
        self.path_pattern = re.compile(path_pattern) if path_pattern else None
        self.rng = random.Random(seed)
        self.stats = ProxyStats()
        self.directory = Path(tempfile.mkdtemp(prefix="o4o-faulty-apiserver-"))
        self.port = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ca_path, self._cert_path, self._key_path = self._write_certificates()

    # ---- TLS ---------------------------------------------------------------------

    def _write_certificates(self) -> tuple[Path, Path, Path]:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("o4o-faulty-apiserver-ca")
        ca_cert = _issue(ca_name, ca_key.public_key(), ca_name, ca_key, is_ca=True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(_name("o4o-faulty-apiserver"), key.public_key(), ca_name, ca_key,
                      usage=[ExtendedKeyUsageOID.SERVER_AUTH],
                      sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        paths = (self.directory / "ca.crt", self.directory / "proxy.crt", self.directory / "proxy.key")
        paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[2].write_bytes(_key_pem(key))
        paths[2].chmod(0o600)
        return paths

    # ---- lifecycle -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_path(self) -> Path:
        """The CA that signed the proxy's serving certificate."""
        return self._ca_path

    def start(self) -> FaultyApiserver:
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start_server())
            except BaseException as error:  # reported to start()'s caller
                failure.append(error)
                loop.run_until_complete(self._stop_server())
                loop.close()
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_server())
            loop.close()

        self._thread = threading.Thread(target=serve, name="faulty-apiserver", daemon=True)
        self._thread.start()
        if not started.wait(_START_TIMEOUT) or failure:
            self.stop()
            raise RuntimeError(f"the faulty apiserver did not start: {failure[:1]}")
        return self

    async def _start_server(self) -> None:
        upstream_tls = self.control_plane.ssl_context()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=upstream_tls, limit=0), auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        serving_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        serving_tls.load_cert_chain(str(self._cert_path), str(self._key_path))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=serving_tls)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def _stop_server(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:  # open watches: their clients are gone or going
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        _abort_transports_of(asyncio.get_running_loop())
        await asyncio.sleep(0)  # their connection_lost callbacks run before the loop goes

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        self._loop = self._thread = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> FaultyApiserver:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for the proxy (its CA; the admin certificate, which the proxy does not need)."""
        pki = self.control_plane.pki
        assert pki is not None, "the control plane is not started"
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "faulty",
            "clusters": [{"name": "faulty", "cluster": {"server": self.url,
                                                        "certificate-authority": str(self.ca_path)}}],
            "users": [{"name": "o4o-admin", "user": {"client-certificate": str(pki.admin_cert),
                                                     "client-key": str(pki.admin_key)}}],
            "contexts": [{"name": "faulty", "context": {"cluster": "faulty", "user": "o4o-admin"}}],
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    # ---- one request -----------------------------------------------------------------

    def _inject_conflict(self, method: str, path: str) -> bool:
        if method not in self.methods:
            return False
        if self.path_pattern is not None and not self.path_pattern.search(path):
            return False
        with self._lock:
            self.stats.writes += 1
            if self.rng.random() >= self.conflict_rate:
                return False
            self.stats.conflicts += 1
            self.stats.conflicts_by_path[path] = self.stats.conflicts_by_path.get(path, 0) + 1
        return True

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        with self._lock:
            self.stats.requests += 1
            self.stats.paths.append((request.method, request.raw_path.split("?", 1)[0]))
            if request.query.get("watch") in ("1", "true"):
                self.stats.watches += 1
        if self._inject_conflict(request.method, request.path):
            return web.json_response(conflict_status(request.path), status=409)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        async with self._session.request(request.method, self.control_plane.server + request.path_qs,
                                         headers=headers, data=body or None, allow_redirects=False) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    response.headers.add(key, value)
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)  # a watch event reaches the client as soon as it arrives
            except (ConnectionResetError, aiohttp.ClientError):
                return response  # either side went away mid-stream: nothing more to relay
            await response.write_eof()
        return response
