"""Fixtures for the booted-host tier: a HostWorld per test module, a client key pair, and an SSH client.

Tests that use them boot real Debian servers under systemd-nspawn (marker ``realhost``), at most two at once;
without root or the Debian tools they skip, saying which package is missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from booted_tools import BOOT_TOOLS, skip_without_root_or
from o4o_operator.testing.hosts import HostWorld
from o4o_operator.testing.hosts.ssh_client import ClientKey, SshClient, generate_key_pair

_TOOLS = {**BOOT_TOOLS, "ssh-keygen": "openssh-client"}


def _skip_without_root_or_tools() -> None:
    skip_without_root_or(_TOOLS, "booted hosts need root (network namespaces, systemd-nspawn)")


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> ClientKey:
    """The Lightsail key pair's stand-in: its public half is what the hosts authorise."""
    _skip_without_root_or_tools()
    return generate_key_pair(tmp_path_factory.mktemp("client-key"))


@pytest.fixture(scope="module")
def host_world() -> Iterator[HostWorld]:
    _skip_without_root_or_tools()
    with HostWorld() as world:
        assert world.rootfs is not None
        how = "built" if world.rootfs.built_now else "cached, built"
        print(f"\nrootfs {world.rootfs.key}: {how} in {world.rootfs.build_seconds:.1f} s, "
              f"{world.rootfs.size_bytes / 2**20:.0f} MiB")
        yield world


@pytest.fixture(scope="session")
def ssh(client_key: ClientKey, tmp_path_factory: pytest.TempPathFactory) -> SshClient:
    """Runs commands over real SSH as the hosts' login user, pinning the host keys they report."""
    return SshClient(client_key, tmp_path_factory.mktemp("known-hosts"))
