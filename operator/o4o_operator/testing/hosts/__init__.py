"""Booted Debian servers for the real test world: systemd under systemd-nspawn, reachable over SSH.

The integrator's API (everything else in this package is private to it)::

    with HostWorld() as world:                     # lock, leftovers cleared, image, bridge, egress proxy
        host = world.boot_host(authorized_keys=[public_key_line])
        host.address                               # "198.51.100.10": ssh admin@<address>, port 22
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
- :func:`cleanup_stale`: what a crashed run left behind (``HostWorld.start`` calls it).

Needs root, ``debootstrap``, ``systemd-nspawn`` (Debian ``systemd-container``), ``tinyproxy`` and ``iproute2``.
"""

from o4o_operator.testing.hosts.apt_sources import DebianMirror, machine_debian_mirror
from o4o_operator.testing.hosts.booted_host import BootedHost, HostKey
from o4o_operator.testing.hosts.egress_proxy import EgressProxy
from o4o_operator.testing.hosts.network import HostLink
from o4o_operator.testing.hosts.rootfs import ImageNetwork, Rootfs, RootfsRecipe, cached_rootfs
from o4o_operator.testing.hosts.system import HostWorldError
from o4o_operator.testing.hosts.world import HostWorld, cleanup_stale

__all__ = ["BootedHost", "DebianMirror", "EgressProxy", "HostKey", "HostLink", "HostWorld", "HostWorldError",
           "ImageNetwork", "Rootfs", "RootfsRecipe", "cached_rootfs", "cleanup_stale", "machine_debian_mirror"]
