"""What the runner needs from clouds, DNS and hosts, as Protocols.

Owns: the provider contracts and the plain data they exchange. Implementations
raise :class:`o4o_operator.errors.TransientError` for what is worth retrying and
:class:`~o4o_operator.errors.PermanentError` (or ``InvalidSpecError``) for what is
not. No secret value may appear in any message they raise or line they log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from o4o_operator.providers.ownership import RecordOwner

LogSink = Callable[[str], None]
"""Receives one line of output at a time; the sink redacts and stores it."""


@dataclasses.dataclass(frozen=True)
class ServerRequest:
    """Everything needed to create one server, idempotently, by its unique name."""

    name: str
    region: str
    availability_zone: str | None
    bundle_id: str
    blueprint_id: str
    key_pair_name: str
    tags: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class ServerFacts:
    """What the cloud says about a server right now."""

    name: str
    state: str  # "pending", "running", "stopped", ...
    tags: Mapping[str, str]
    public_ip: str | None = None
    static_ip: str | None = None
    availability_zone: str | None = None
    bundle_id: str | None = None
    blueprint_id: str | None = None
    key_pair_name: str | None = None
    cloud_id: str | None = None
    """The cloud's own identity of this server (Lightsail: its ARN); a server made again under the same name
    has another one."""


@dataclasses.dataclass(frozen=True)
class KeyPairFacts:
    """What the cloud says about a key pair: its fingerprint (as the cloud spells it) and tags."""

    name: str
    fingerprint: str | None
    tags: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class CommandResult:
    exit_status: int
    tail: tuple[str, ...]
    results: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """What the script reported with ``::o4o::result key=value`` lines (see :mod:`o4o_operator.markers`)."""


class CloudProvider(Protocol):
    """A cloud that creates servers by unique name (Lightsail)."""

    async def validate(self, region: str, availability_zone: str | None,
                       bundle_id: str, blueprint_id: str, *, min_ram_gb: float = 0.0) -> None:
        """Raise InvalidSpecError naming the field and the valid choices (BundleTooSmall below ``min_ram_gb``)."""

    async def find_server(self, name: str) -> ServerFacts | None: ...

    async def find_key_pair(self, name: str) -> KeyPairFacts | None: ...

    async def ensure_key_pair(self, name: str, public_key_openssh: str,
                              tags: Mapping[str, str] | None = None) -> KeyPairFacts:
        """Import (and tag) the key unless a key pair of that name exists; return what is there
        (which may hold another key: the caller checks the fingerprint and the tags)."""

    async def tag_key_pair(self, name: str, tags: Mapping[str, str]) -> None: ...

    async def delete_key_pair(self, name: str) -> None:
        """NotFound is success."""

    async def tag_server(self, name: str, tags: Mapping[str, str]) -> None:
        """Add (or overwrite) these tags on the server."""

    async def create_server(self, request: ServerRequest) -> None:
        """Start creating; succeed quietly if a server by that name appeared meanwhile."""

    async def wait_running(self, name: str, timeout: float) -> ServerFacts: ...

    async def start_server(self, name: str) -> None:
        """Start a stopped server (StartInstance); a server already starting or running is left alone."""

    async def ensure_static_ip(self, server_name: str, static_ip_name: str) -> str:
        """Allocate and attach (each only if needed); return the address."""

    async def ensure_ports(self, server_name: str, ssh_cidrs: tuple[str, ...]) -> None:
        """Declare the firewall: 80 and 443 open, 22 limited to ssh_cidrs when given."""

    async def host_key_fingerprint(self, server_name: str) -> str | None:
        """``SHA256:...`` of the server's preferred SSH host key, or None while unknown."""

    async def host_key_fingerprints(self, server_name: str) -> tuple[str, ...]:
        """``SHA256:...`` of every SSH host key the provider reports, preferred first; empty while unknown."""

    async def delete_server(self, server_name: str, static_ip_name: str | None) -> None:
        """Detach and release the static IP, then delete the server. NotFound is success."""

    async def release_static_ip(self, static_ip_name: str) -> None:
        """Release a static IP attached to no server (one attached to a server is left). NotFound is success."""


class DnsProvider(Protocol):
    """A records kept beside an ownership TXT record; a record that ``owner`` does not own is never
    changed or deleted (upsert raises ``InvalidSpecError('spec.domain', reason='DomainOwnedElsewhere')``)."""

    async def upsert_a_record(self, domain: str, zone: str | None, ip: str, ttl: int,
                              owner: RecordOwner) -> None: ...

    async def delete_a_record(self, domain: str, zone: str | None, ip: str | None, owner: RecordOwner) -> None:
        """Delete the A record and the ownership TXT if ``owner`` owns them; NotFound is success."""


class NameCheck(Protocol):
    """DNS managed elsewhere: only confirm that a name resolves to the server."""

    async def check_resolves_to(self, domain: str, addresses: Collection[str]) -> None:
        """Succeed when ``domain`` resolves to at least one of ``addresses``; else TransientError."""


class HostSession(Protocol):
    """One connection to one host. Commands stream output into ``log``."""

    @property
    def host_key_fingerprint(self) -> str: ...

    async def run(self, script: str, *, timeout: float, log: LogSink,
                  env: Mapping[str, str] | None = None,
                  public_env: Mapping[str, str] | None = None) -> CommandResult:
        """Run a bash script; non-zero exit raises TransientError/PermanentError with the tail.

        ``env`` and ``public_env`` are both exported before the script runs; only ``env``'s values are
        redacted from the output, so ``public_env`` holds names, hosts and ports, never a secret value.
        """

    async def upload(self, path: str, content: bytes, *, mode: int, owner: str | None = None) -> None:
        """Write atomically (temp file + rename) with the given mode."""

    def tunnel(self, port: int) -> AbstractAsyncContextManager[str]:
        """The base URL (``http://127.0.0.1:<local port>``) of a tunnel to ``127.0.0.1:port`` on the host."""

    async def close(self) -> None: ...


class HostConnector(Protocol):
    async def connect(self, host: str, port: int, user: str, private_key_pem: str,
                      known_fingerprint: str | Iterable[str] | None, timeout: float) -> HostSession:
        """Pin ``known_fingerprint`` (any of several may match) when given; a host key outside the pins raises
        PermanentError(HostKeyMismatch). No pin trusts whatever key is seen: callers decide when that is allowed."""

    async def close_all(self) -> None:
        """Close every cached connection (at operator shutdown)."""
