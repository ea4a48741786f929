"""The booted hosts' network: one bridge in the machine's namespace, and one namespace plus veth per host.

Owns: the bridge (``o4obr0``, ``198.51.100.1/24``: where the world's services listen), each host's network
namespace (``o4o-host-<n>``) holding ``eth0`` at ``198.51.100.<n>/24``, the veth's machine side (``o4ov<n>``,
enslaved to the bridge), and removing all of them by name prefix. Must not enable forwarding, NAT or a
default route: a host's packets reach the bridge address and its peers, and nothing else (no route to any
other address, so even a machine that forwards cannot carry them further). IPv6 is off on every link it makes.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from pathlib import Path

from o4o_operator.testing.hosts.system import run_checked

BRIDGE = "o4obr0"
SUBNET = ipaddress.IPv4Network("198.51.100.0/24")  # TEST-NET-2: never routed, never a private range
WORLD_ADDRESS = SUBNET.network_address + 1
FIRST_HOST_NUMBER = 10
NETNS_PREFIX = "o4o-host-"
VETH_PREFIX = "o4ov"
HOST_INTERFACE = "eth0"
_NETNS_DIR = Path("/run/netns")
_SYS_NET = Path("/sys/class/net")


def _link_exists(name: str) -> bool:
    return (_SYS_NET / name).exists()


def _disable_ipv6(interface: str) -> None:
    switch = Path(f"/proc/sys/net/ipv6/conf/{interface}/disable_ipv6")
    if switch.exists():
        switch.write_text("1\n")


def create_bridge(name: str = BRIDGE) -> None:
    """The bridge with the world's address, up (no forwarding: ``net.ipv4.ip_forward`` is left alone)."""
    if not _link_exists(name):
        run_checked(["ip", "link", "add", name, "type", "bridge"])
    _disable_ipv6(name)
    run_checked(["ip", "address", "replace", f"{WORLD_ADDRESS}/{SUBNET.prefixlen}", "dev", name])
    run_checked(["ip", "link", "set", name, "up"])


def remove_bridge(name: str = BRIDGE) -> None:
    if _link_exists(name):
        run_checked(["ip", "link", "delete", name])


@dataclasses.dataclass(frozen=True)
class HostLink:
    """One host's place on the network: its namespace, the veth's machine side, and its address."""

    number: int

    def __post_init__(self) -> None:
        if not FIRST_HOST_NUMBER <= self.number < SUBNET.num_addresses - 1:
            raise ValueError(f"host number {self.number} is outside {FIRST_HOST_NUMBER}..{SUBNET.num_addresses - 2}")

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.number}"

    @property
    def netns_path(self) -> Path:
        return _NETNS_DIR / self.netns

    @property
    def veth(self) -> str:
        return f"{VETH_PREFIX}{self.number}"

    @property
    def address(self) -> str:
        return str(SUBNET.network_address + self.number)

    def create(self, bridge: str = BRIDGE) -> None:
        """Namespace, veth pair (``eth0`` inside), address and links up; only on-link routes inside."""
        self.remove()
        run_checked(["ip", "netns", "add", self.netns])
        run_checked(["ip", "link", "add", self.veth, "type", "veth", "peer", "name", HOST_INTERFACE,
                     "netns", self.netns])
        _disable_ipv6(self.veth)
        run_checked(["ip", "link", "set", self.veth, "master", bridge, "up"])
        run_checked(["ip", "netns", "exec", self.netns, "sh", "-c",
                     "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
                     "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"])
        run_checked(["ip", "-n", self.netns, "address", "add", f"{self.address}/{SUBNET.prefixlen}",
                     "dev", HOST_INTERFACE])
        run_checked(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        run_checked(["ip", "-n", self.netns, "link", "set", HOST_INTERFACE, "up"])

    def remove(self) -> None:
        """Remove the veth pair and the namespace; nothing to do when they are gone."""
        if _link_exists(self.veth):
            run_checked(["ip", "link", "delete", self.veth])
        if self.netns_path.exists():
            run_checked(["ip", "netns", "delete", self.netns])

    def cut(self) -> None:
        """Take the host off the network (its veth down) without stopping it."""
        run_checked(["ip", "link", "set", self.veth, "down"])

    def reconnect(self) -> None:
        run_checked(["ip", "link", "set", self.veth, "up"])


def stale_netns() -> list[str]:
    """Our namespaces still present (named with :data:`NETNS_PREFIX`)."""
    if not _NETNS_DIR.is_dir():
        return []
    return sorted(entry.name for entry in _NETNS_DIR.iterdir() if entry.name.startswith(NETNS_PREFIX))


def stale_links() -> list[str]:
    """Our veths and the bridge still present in the machine's namespace."""
    return sorted(name for name in os.listdir(_SYS_NET) if name.startswith(VETH_PREFIX) or name == BRIDGE)


def remove_stale_network() -> list[str]:
    """Delete every veth, namespace and the bridge named by our prefixes; returns what it removed."""
    removed: list[str] = []
    for link in stale_links():
        if link != BRIDGE and _link_exists(link):
            run_checked(["ip", "link", "delete", link])
            removed.append(link)
    for netns in stale_netns():
        run_checked(["ip", "netns", "delete", netns])
        removed.append(netns)
    if _link_exists(BRIDGE):
        remove_bridge()
        removed.append(BRIDGE)
    return removed
