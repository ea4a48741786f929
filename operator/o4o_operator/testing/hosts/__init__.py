"""Booted Debian servers for the real test world: systemd under systemd-nspawn, reachable over SSH.

The integrator's API (everything else in this package is private to it)::

    with HostWorld() as world:                     # lock, leftovers cleared, image, bridge, egress proxy
        host = world.boot_host("web-1", authorized_keys=[public_key_line])   # address="198.51.100.N" to choose
        host.address                               # "198.51.100.10": ssh admin@<address>, port 22
        host.boot_seconds                          # until sshd answered
        host.login_user                            # "admin", with passwordless sudo
        host.host_keys()                           # [HostKey(algorithm, public_key, fingerprint_sha256, ...)]
        host.authorize(another_public_key)         # works before and after boot
        host.run(["systemctl", "is-active", "nginx"])  # as root inside, without SSH
        host.link.cut()                            # take it off the network (and .reconnect())
        world.remove_host(host)                    # power off, remove its directory and network

- :class:`HostWorld` (``world.py``): the bridge ``o4obr0`` at :attr:`HostWorld.address` (``198.51.100.1``)
  where the world's own services (DNS on :53, ACME, mirrors) must listen; the hosts' resolver is that address
  and their proxy is ``http://198.51.100.1:3128`` (tinyproxy, default deny, registries only).
- :class:`BootedHost` (``booted_host.py``): one server, overlayed on the cached image.
- :func:`cached_rootfs` / :class:`RootfsRecipe` (``rootfs.py``): the Debian 12 image, built once.
- ``apt_archive.py``: the Debian packages hosts downloaded, kept for the next hosts' apt archives.
- :func:`cleanup_stale`: what a crashed run left behind (``HostWorld.start`` calls it).
- :class:`SshClient` / :func:`generate_key_pair` (``ssh_client.py``): log in as a user would, host keys pinned.

Start the world before the services that listen on its address (the bridge must exist to bind to it). Names
the hosts reach directly, not through the proxy, belong in ``ImageNetwork.no_proxy`` (part of the image key).

Needs root, ``debootstrap``, ``systemd-nspawn`` (Debian ``systemd-container``), ``tinyproxy`` and ``iproute2``.
"""

from o4o_operator.testing.hosts.apt_sources import DebianMirror, machine_debian_mirror
from o4o_operator.testing.hosts.booted_host import BootedHost, HostKey
from o4o_operator.testing.hosts.egress_proxy import EgressProxy
from o4o_operator.testing.hosts.network import HostLink
from o4o_operator.testing.hosts.rootfs import ImageNetwork, Rootfs, RootfsRecipe, cached_rootfs
from o4o_operator.testing.hosts.ssh_client import ClientKey, SshClient, generate_key_pair
from o4o_operator.testing.hosts.system import HostWorldError
from o4o_operator.testing.hosts.world import HostWorld, cleanup_stale

__all__ = ["BootedHost", "ClientKey", "DebianMirror", "EgressProxy", "HostKey", "HostLink", "HostWorld",
           "HostWorldError", "ImageNetwork", "Rootfs", "RootfsRecipe", "SshClient", "cached_rootfs", "cleanup_stale",
           "generate_key_pair", "machine_debian_mirror"]
