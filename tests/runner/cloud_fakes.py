"""A cloud and DNS that record every call, for driving provision and dns without a Lightsail endpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from o4o_operator.providers.ownership import RecordOwner, public_key_fingerprints
from o4o_operator.providers.protocols import KeyPairFacts, ServerFacts, ServerRequest

HOST_KEY = "SHA256:" + "H" * 43


class FakeCloud:
    def __init__(self, servers: Mapping[str, ServerFacts] | None = None,
                 key_pairs: Mapping[str, KeyPairFacts] | None = None) -> None:
        self.servers = dict(servers or {})
        self.key_pairs = dict(key_pairs or {})
        self.calls: list[str] = []
        self.created = 0
        self.validated_min_ram_gb: float | None = None
        """The least memory provision asked the bundle for (BUILD_RAM_GB)."""

    async def validate(self, region: str, availability_zone: str | None, bundle_id: str, blueprint_id: str, *,
                       min_ram_gb: float = 0.0) -> None:
        self.validated_min_ram_gb = min_ram_gb

    async def find_server(self, name: str) -> ServerFacts | None:
        return self.servers.get(name)

    async def find_key_pair(self, name: str) -> KeyPairFacts | None:
        return self.key_pairs.get(name)

    async def ensure_key_pair(self, name: str, public_key_openssh: str,
                              tags: Mapping[str, str] | None = None) -> KeyPairFacts:
        if name not in self.key_pairs:
            self.calls.append(f"import key pair {name}")
            fingerprint = sorted(public_key_fingerprints(public_key_openssh))[0]
            self.key_pairs[name] = KeyPairFacts(name, fingerprint, dict(tags or {}))
        return self.key_pairs[name]

    async def tag_key_pair(self, name: str, tags: Mapping[str, str]) -> None:
        self.calls.append(f"tag key pair {name}")

    async def delete_key_pair(self, name: str) -> None:
        self.calls.append(f"delete key pair {name}")
        self.key_pairs.pop(name, None)

    async def tag_server(self, name: str, tags: Mapping[str, str]) -> None:
        self.calls.append(f"tag server {name}")
        self.servers[name] = ServerFacts(**{**self.servers[name].__dict__, "tags": dict(tags)})

    async def create_server(self, request: ServerRequest) -> None:
        self.calls.append(f"create server {request.name}")
        self.created += 1
        self.servers[request.name] = ServerFacts(request.name, "running", dict(request.tags),
                                                 key_pair_name=request.key_pair_name,
                                                 cloud_id=f"arn:fake:Instance/{request.name}/{self.created}")

    async def start_server(self, name: str) -> None:
        self.calls.append(f"start server {name}")
        self.servers[name] = ServerFacts(**{**self.servers[name].__dict__, "state": "running"})

    async def wait_running(self, name: str, timeout: float) -> ServerFacts:  # noqa: ASYNC109 - the protocol's
        return self.servers[name]

    async def ensure_static_ip(self, server_name: str, static_ip_name: str) -> str:
        return "198.51.100.20"

    async def ensure_ports(self, server_name: str, ssh_cidrs: tuple[str, ...]) -> None:
        return None

    async def host_key_fingerprint(self, server_name: str) -> str | None:
        return HOST_KEY

    async def host_key_fingerprints(self, server_name: str) -> tuple[str, ...]:
        return (HOST_KEY,)

    async def delete_server(self, server_name: str, static_ip_name: str | None) -> None:
        self.calls.append(f"delete server {server_name}")
        self.servers.pop(server_name, None)

    async def release_static_ip(self, static_ip_name: str) -> None:
        self.calls.append(f"release static IP {static_ip_name}")


class FakeDns:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def upsert_a_record(self, domain: str, zone: str | None, ip: str, ttl: int, owner: RecordOwner) -> None:
        self.calls.append(("upsert", domain, zone, ip, owner.uid))

    async def delete_a_record(self, domain: str, zone: str | None, ip: str | None, owner: RecordOwner) -> None:
        self.calls.append(("delete", domain, zone, ip, owner.uid))
