"""Opens SSH connections to hosts (asyncssh): the real :class:`HostConnector`.

Owns: host key pinning (a host key outside the pinned fingerprints refuses the
connection during key exchange, before authentication, so nothing ever runs
on the wrong host; any of several pins may match, whichever host key
algorithm is negotiated), first-seen fingerprints for the caller to store
(only when the caller passes no pin), retry with exponential backoff while a
server boots, keepalives, one cached connection per (host, port, user, client
key fingerprint, pins), so a cached connection is never reused with another
key or another pin, and the cap on concurrent SSH sessions.
What runs on a connection lives in :mod:`o4o_operator.providers.ssh_session`.

The sandbox root (a host's ``O4O_ROOT``, see :mod:`o4o_operator.rendering`) is a
test hook: it is honoured only when the connector is made with
``honour_sandbox_root=True``, which only :mod:`o4o_operator.testing` does. The
shipped operator never asks a host for it and clears it for every script. So is the
sandbox's ``O4O_SANDBOX_API`` (``127.x.y.z:port``, where a sandbox host serves its stand-in
for every instance's API): read only with the root, it is where tunnels lead instead of the
API's port on the host's loopback.

Must not: read ``~/.ssh`` (no user config, agent or known_hosts), log or raise
key material, or decide what to run.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any

import asyncssh

from o4o_operator.errors import PermanentError, StageError, TransientError
from o4o_operator.providers.ssh_session import Connection, HostFence, Key, SshSession

__all__ = ["SshConnector", "SshSession", "client_public_key", "load_client_key", "normalise_fingerprint"]

_ROOT_PROBE = 'printf "%s\\n%s" "${O4O_ROOT:-}" "${O4O_SANDBOX_API:-}"'
_API_STAND_IN = re.compile(r"^127\.[0-9.]+:[0-9]{1,5}$")


def normalise_fingerprint(fingerprint: str) -> str:
    """``SHA256:<base64 without padding>``, as OpenSSH prints it."""
    value = fingerprint.strip()
    if not value.startswith("SHA256:"):
        value = f"SHA256:{value}"
    return value.rstrip("=")


def _pins(known: str | Iterable[str] | None) -> tuple[str, ...]:
    """The pinned fingerprints, normalised, sorted and unique; empty means no pin."""
    if known is None:
        return ()
    values = [known] if isinstance(known, str) else list(known)
    return tuple(sorted({normalise_fingerprint(value) for value in values if value and value.strip()}))


def load_client_key(private_key_pem: str) -> Any:
    """The client key, or PermanentError(InvalidSshKey) that never quotes the key."""
    try:
        return asyncssh.import_private_key(private_key_pem)
    except (asyncssh.KeyImportError, ValueError, TypeError):
        raise PermanentError("InvalidSshKey", "The SSH private key could not be read; it must be an "
                             "unencrypted PEM or OpenSSH private key") from None


def client_public_key(private_key_pem: str) -> str:
    """The OpenSSH public key line of a private key (e.g. to import as a Lightsail key pair)."""
    public: bytes = load_client_key(private_key_pem).export_public_key("openssh")
    return public.decode().strip()


class _PinningClient(asyncssh.SSHClient):
    """Accepts the server key only if it is one of the pins (or there is none); remembers what it saw."""

    def __init__(self, expected: tuple[str, ...]) -> None:
        self.expected = expected
        self.seen: str | None = None
        self.lost = False

    def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
        self.seen = normalise_fingerprint(key.get_fingerprint("sha256"))
        return not self.expected or self.seen in self.expected

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


def _no_trusted_keys(host: str, addr: str, port: int | None) -> tuple[list[Any], list[Any], list[Any]]:
    """Trust nothing up front, so every host key goes through ``_PinningClient``."""
    return [], [], []


def _mismatch(host: str, port: int, expected: tuple[str, ...], seen: str | None) -> PermanentError:
    pinned = " or ".join(expected) or "another key"
    return PermanentError("HostKeyMismatch", f"The SSH host key of {host}:{port} is {seen or 'unknown'}, but "
                          f"{pinned} is pinned; refusing to connect")


class SshConnector:
    """Hands out sessions on cached connections; ``close_all`` closes them."""

    def __init__(self, *, max_sessions: int = 8, keepalive_interval: float = 15.0,
                 attempt_timeout: float = 20.0, max_backoff: float = 10.0,
                 use_sudo: bool | None = None, honour_sandbox_root: bool = False,
                 fence: HostFence | None = None) -> None:
        """``use_sudo`` None means: through ``sudo -n`` unless the login user is root.

        ``honour_sandbox_root``: prefix paths with the host's ``O4O_ROOT``. For test peers only.
        ``fence``: the leader's term and host fence every session runs its scripts behind (election on).
        """
        self._fence = fence
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
                      known_fingerprint: str | Iterable[str] | None, timeout: float) -> SshSession:  # noqa: ASYNC109
        """Pin ``known_fingerprint`` (one or several: any may match) if given; ``timeout`` bounds connecting,
        retries included. A connection is reused only for the same client key and the same pins."""
        expected = _pins(known_fingerprint)
        client_key = load_client_key(private_key_pem)
        key: Key = (host, port, user, client_key.get_fingerprint("sha256"), expected)
        async with self._locks.setdefault(key, asyncio.Lock()):
            connection = self._connections.get(key)
            if connection is not None and not connection.alive():
                self.forget(connection)
                connection = None
            if connection is None:
                connection = await self._open(key, client_key, expected, budget=timeout)
                self._connections[key] = connection
            elif expected and connection.fingerprint not in expected:  # never skip the pin, even on reuse
                raise _mismatch(host, port, expected, connection.fingerprint)
        return SshSession(connection, self._sessions, self.forget, self._fence)

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

    async def _open(self, key: Key, client_key: Any, expected: tuple[str, ...], *,
                    budget: float) -> Connection:
        """Connect, retrying until ``budget`` is spent; a key the host still refuses then is permanent."""
        host, port, user = key[:3]
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
                raise _mismatch(host, port, expected, client.seen) from None
            except asyncssh.PermissionDenied:
                # A booting server may not have the key installed yet: retry, but not forever.
                failure: StageError = PermanentError(
                    "SshAuthenticationFailed", f"{user}@{host}:{port} kept refusing the SSH key (fingerprint "
                    f"{client_key.get_fingerprint('sha256')}) for {budget:g} seconds")
            except (OSError, TimeoutError, asyncssh.Error) as exc:
                failure = TransientError("HostUnreachable", f"Could not open SSH to {host}:{port} "
                                         f"({type(exc).__name__})")
            remaining = deadline - loop.time()
            if remaining <= delay:  # no room for a real attempt after the pause: this failure is the answer
                raise failure
            await asyncio.sleep(delay)
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
        lines = str(result.stdout or "").split("\n")
        root, api = (lines[0].rstrip("/"), lines[1]) if len(lines) == 2 else ("-", "")
        if result.exit_status != 0 or (root and not root.startswith("/")) or \
                (api and not _API_STAND_IN.fullmatch(api)):
            conn.close()
            raise TransientError("HostUnreachable", f"{key[0]}:{key[1]} did not report a usable O4O_ROOT")
        return Connection(key, conn, client, client.seen, root, elevate, honours_root=True, api_stand_in=api)


def _factory(client: _PinningClient) -> Any:
    return lambda: client
