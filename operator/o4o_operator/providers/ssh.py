"""Opens SSH connections to hosts (asyncssh): the real :class:`HostConnector`.

Owns: host key pinning (a pinned fingerprint that does not match refuses the
connection during key exchange, before authentication, so nothing ever runs
on the wrong host), first-seen fingerprints for the caller to store, retry
with exponential backoff while a server boots, keepalives, one cached
connection per (host, port, user), and the cap on concurrent SSH sessions.
What runs on a connection lives in :mod:`o4o_operator.providers.ssh_session`.

The sandbox root (a host's ``O4O_ROOT``, see :mod:`o4o_operator.rendering`) is a
test hook: it is honoured only when the connector is made with
``honour_sandbox_root=True``, which only :mod:`o4o_operator.testing` does. The
shipped operator never asks a host for it and clears it for every script.

Must not: read ``~/.ssh`` (no user config, agent or known_hosts), log or raise
key material, or decide what to run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh

from o4o_operator.errors import PermanentError, TransientError
from o4o_operator.providers.ssh_session import Connection, Key, SshSession

__all__ = ["SshConnector", "SshSession", "normalise_fingerprint"]

_ROOT_PROBE = 'printf %s "${O4O_ROOT:-}"'


def normalise_fingerprint(fingerprint: str) -> str:
    """``SHA256:<base64 without padding>``, as OpenSSH prints it."""
    value = fingerprint.strip()
    if not value.startswith("SHA256:"):
        value = f"SHA256:{value}"
    return value.rstrip("=")


class _PinningClient(asyncssh.SSHClient):
    """Accepts the server key only if it matches the pin (or there is none); remembers what it saw."""

    def __init__(self, expected: str | None) -> None:
        self.expected = expected
        self.seen: str | None = None
        self.lost = False

    def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
        self.seen = normalise_fingerprint(key.get_fingerprint("sha256"))
        return self.expected is None or self.seen == self.expected

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


def _no_trusted_keys(host: str, addr: str, port: int | None) -> tuple[list[Any], list[Any], list[Any]]:
    """Trust nothing up front, so every host key goes through ``_PinningClient``."""
    return [], [], []


def _mismatch(host: str, port: int, expected: str, seen: str | None) -> PermanentError:
    return PermanentError("HostKeyMismatch", f"The SSH host key of {host}:{port} is {seen or 'unknown'}, but "
                          f"{expected} is pinned; refusing to connect")


class SshConnector:
    """Hands out sessions on cached connections; ``close_all`` closes them."""

    def __init__(self, *, max_sessions: int = 8, keepalive_interval: float = 15.0,
                 attempt_timeout: float = 20.0, max_backoff: float = 10.0,
                 use_sudo: bool | None = None, honour_sandbox_root: bool = False) -> None:
        """``use_sudo`` None means: through ``sudo -n`` unless the login user is root.

        ``honour_sandbox_root``: prefix paths with the host's ``O4O_ROOT``. For test peers only.
        """
        self._connections: dict[Key, Connection] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._sessions = asyncio.Semaphore(max_sessions)
        self._keepalive_interval = keepalive_interval
        self._attempt_timeout = attempt_timeout
        self._max_backoff = max_backoff
        self._use_sudo = use_sudo
        self._honour_sandbox_root = honour_sandbox_root

    @property
    def honours_sandbox_root(self) -> bool:
        return self._honour_sandbox_root

    async def connect(self, host: str, port: int, user: str, private_key_pem: str,
                      known_fingerprint: str | None, timeout: float) -> SshSession:  # noqa: ASYNC109
        """Pin ``known_fingerprint`` if given; ``timeout`` bounds connecting, retries included."""
        expected = normalise_fingerprint(known_fingerprint) if known_fingerprint else None
        key: Key = (host, port, user)
        async with self._locks.setdefault(key, asyncio.Lock()):
            connection = self._connections.get(key)
            if connection is not None and not connection.alive():
                self.forget(connection)
                connection = None
            if connection is None:
                connection = await self._open(key, private_key_pem, expected, budget=timeout)
                self._connections[key] = connection
            elif expected is not None and connection.fingerprint != expected:
                raise _mismatch(host, port, expected, connection.fingerprint)
        return SshSession(connection, self._sessions, self.forget)

    def forget(self, connection: Connection) -> None:
        """Drop a connection from the cache (it dropped, or it is being replaced) and close it."""
        if self._connections.get(connection.key) is connection:
            del self._connections[connection.key]
        connection.conn.close()

    async def close_all(self) -> None:
        connections = list(self._connections.values())
        self._connections.clear()
        for connection in connections:
            connection.conn.close()
        for connection in connections:
            await connection.conn.wait_closed()

    async def _open(self, key: Key, private_key_pem: str, expected: str | None, *,
                    budget: float) -> Connection:
        host, port, user = key
        try:
            client_key = asyncssh.import_private_key(private_key_pem)
        except (asyncssh.KeyImportError, ValueError, TypeError):
            raise PermanentError("InvalidSshKey", "The SSH private key could not be read; it must be an "
                                 "unencrypted PEM or OpenSSH private key") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        delay = 0.5
        while True:
            client = _PinningClient(expected)
            try:
                async with asyncio.timeout(max(0.1, min(self._attempt_timeout, deadline - loop.time()))):
                    conn = await asyncssh.connect(
                        host, port, username=user, client_keys=[client_key], known_hosts=_no_trusted_keys,
                        client_factory=_factory(client), config=None, agent_path=None,
                        preferred_auth="publickey", keepalive_interval=self._keepalive_interval,
                        keepalive_count_max=3)
                return await self._describe(key, conn, client)
            except asyncssh.HostKeyNotVerifiable:
                raise _mismatch(host, port, expected or "another key", client.seen) from None
            except asyncssh.PermissionDenied:
                failure = TransientError("SshAuthenticationFailed",
                                         f"{user}@{host}:{port} refused the SSH key")
            except (OSError, TimeoutError, asyncssh.Error) as exc:
                failure = TransientError("HostUnreachable", f"Could not open SSH to {host}:{port} "
                                         f"({type(exc).__name__})")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise failure
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, self._max_backoff)

    async def _describe(self, key: Key, conn: Any, client: _PinningClient) -> Connection:
        """Read the host's ``O4O_ROOT`` once if honoured; close the connection if that fails."""
        assert client.seen is not None  # the key exchange validated a host key
        elevate = key[2] != "root" if self._use_sudo is None else self._use_sudo
        if not self._honour_sandbox_root:
            return Connection(key, conn, client, client.seen, "", elevate, honours_root=False)
        try:
            result = await conn.run(_ROOT_PROBE, check=False, timeout=self._attempt_timeout)
        except BaseException:
            conn.close()
            raise
        root = str(result.stdout or "").rstrip("/")
        if result.exit_status != 0 or (root and not root.startswith("/")) or "\n" in root:
            conn.close()
            raise TransientError("HostUnreachable", f"{key[0]}:{key[1]} did not report a usable O4O_ROOT")
        return Connection(key, conn, client, client.seen, root, elevate, honours_root=True)


def _factory(client: _PinningClient) -> Any:
    return lambda: client
