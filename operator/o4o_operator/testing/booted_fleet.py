"""Booted Debian hosts as the local cloud's servers: what ``CreateInstances`` starts and ``DeleteInstance`` stops.

Owns: :class:`BootedFleet`, the booted-host peer of :class:`~o4o_operator.testing.world.SandboxFleet`. It plugs
into :class:`~o4o_operator.testing.lightsail.LocalLightsail` the same way (``ip_allocator``, ``host_keys``) and
also as its ``fleet`` (``create_server``, ``is_running``, ``delete_server``):

- an address in 198.51.100.0/24 per server name, fixed at the first ask; the static IP ``<server>-ip`` is the
  same address, so "the static IP is the server's address", as a host sees it;
- ``CreateInstances`` boots a host from the cached image at that address, on a worker thread (the call returns
  at once, the instance stays ``pending`` until sshd answers), with the Lightsail key pair's public key
  authorised for the blueprint's login (``admin`` on ``debian_12``: the only blueprint the image is);
- ``GetInstanceAccessDetails`` reports the host's real public host keys;
- ``DeleteInstance`` powers it off and removes it (also on a worker thread);
- at most ``max_hosts`` booted at once: a further create waits for a place.

:meth:`BootedFleet.existing_host` boots the same machine without the cloud (``provider.existing``).
Must not start the world's other services (see ``real_world.py``) or stop the :class:`HostWorld` it is given.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from o4o_operator.testing.hosts import BootedHost, HostWorld
from o4o_operator.testing.hosts.network import FIRST_HOST_NUMBER, SUBNET
from o4o_operator.testing.lightsail_catalog import host_key_entry

logger = logging.getLogger(__name__)
_STOP_TIMEOUT = 120.0


class BootedFleet:
    """Servers of the local cloud that are booted hosts of ``world`` (started by the caller)."""

    def __init__(self, world: HostWorld, *, max_hosts: int = 2, first_number: int = 20,
                 trusted_roots: Mapping[str, str] | None = None) -> None:
        """``trusted_roots``: name -> PEM each host trusts system-wide (a corporate CA, e.g. the git host's)."""
        self.world = world
        self.trusted_roots = dict(trusted_roots or {})
        self.max_hosts = max_hosts
        self._first_number = max(first_number, FIRST_HOST_NUMBER)
        self._lock = threading.Lock()
        self._places = threading.BoundedSemaphore(max_hosts)
        self._addresses: dict[str, str] = {}
        self._deleting: dict[str, threading.Thread] = {}
        """Deletes under way, by name: a server made again under its name boots once the old one is gone."""
        self.hosts: dict[str, BootedHost] = {}
        self.boot_errors: dict[str, str] = {}
        self._workers: list[threading.Thread] = []
        self._stopping = threading.Event()

    # ---- addresses (LocalLightsail's ip_allocator) -------------------------------------------------------

    def ip_allocator(self, name: str) -> str:
        """The address of server ``name`` (a static IP ``<name>-ip`` gets the same one)."""
        server = name.removesuffix("-ip")
        with self._lock:
            if server not in self._addresses:
                taken = set(self._addresses.values()) | {host.address for host in self.world.hosts.values()}
                for number in range(self._first_number, SUBNET.num_addresses - 1):
                    candidate = str(SUBNET.network_address + number)
                    if candidate not in taken:
                        self._addresses[server] = candidate
                        break
                else:
                    raise RuntimeError(f"no free address left in {SUBNET}")
            return self._addresses[server]

    def host_keys(self, name: str) -> list[dict[str, Any]]:
        host = self.hosts.get(name)
        if host is None or not host.running:
            return []
        return [host_key_entry(key.algorithm, base64.b64decode(key.public_key.split()[1]))
                for key in host.host_keys()]

    # ---- lifecycle (LocalLightsail's fleet) --------------------------------------------------------------

    def create_server(self, name: str, *, login_user: str, public_key: str | None) -> None:
        if login_user != "admin":
            raise ValueError(f"the booted hosts are Debian 12 (blueprint debian_12, login admin), "
                             f"not a blueprint whose login is {login_user!r}")
        address = self.ip_allocator(name)
        keys = [public_key] if public_key else []
        self._spawn(f"boot-{name}", self._boot, name, address, keys)

    def is_running(self, name: str) -> bool:
        host = self.hosts.get(name)
        return host is not None and host.boot_seconds is not None and host.running

    def delete_server(self, name: str) -> None:
        worker = self._spawn(f"delete-{name}", self._delete, name)
        with self._lock:
            self._deleting[name] = worker

    # ---- existing hosts ------------------------------------------------------------------------------------

    def existing_host(self, name: str, authorized_keys: Sequence[str]) -> BootedHost:
        """A booted host that no cloud knows of (blocks until sshd answers); remove with :meth:`remove`."""
        address = self.ip_allocator(name)
        if not self._take_place():
            raise RuntimeError("the fleet is stopping")
        try:
            host = self._new_host(name, list(authorized_keys), address)
            try:
                host.start()
            except BaseException:
                self.world.remove_host(host)
                raise
        except BaseException:
            self._places.release()
            with self._lock:
                self._addresses.pop(name, None)
            raise
        self.hosts[name] = host
        return host

    def _new_host(self, name: str, keys: list[str], address: str) -> BootedHost:
        host = self.world.new_host(name, keys, address=address)
        for root_name, pem in self.trusted_roots.items():
            host.trust_root(root_name, pem)
        return host

    def remove(self, name: str) -> None:
        """Power off and remove host ``name`` now (what a delete does, without waiting for a thread)."""
        self._delete(name)

    # ---- workers -------------------------------------------------------------------------------------------

    def _spawn(self, thread_name: str, target: Any, *args: Any) -> threading.Thread:
        worker = threading.Thread(target=target, args=args, name=thread_name, daemon=True)
        with self._lock:
            self._workers = [w for w in self._workers if w.is_alive()]
            self._workers.append(worker)
        worker.start()
        return worker

    def _take_place(self) -> bool:
        while not self._places.acquire(timeout=0.5):
            if self._stopping.is_set():
                return False
        if self._stopping.is_set():
            self._places.release()
            return False
        return True

    def _boot(self, name: str, address: str, keys: list[str]) -> None:
        with self._lock:
            deleting = self._deleting.pop(name, None)
        if deleting is not None:  # a server made again under its name: the old machine goes first
            deleting.join(timeout=_STOP_TIMEOUT)
        if not self._take_place():
            return
        try:
            host = self._new_host(name, keys, address)
        except Exception as failure:
            self._boot_failed(name, failure)
            return
        self.hosts[name] = host
        try:
            host.start()
        except Exception as failure:  # the instance stays pending: the operator reports ServerNotRunning
            self.hosts.pop(name, None)
            with contextlib.suppress(Exception):
                self.world.remove_host(host)
            self._boot_failed(name, failure)
            return
        logger.info("Booted host %s at %s in %.1f s", name, address, host.boot_seconds or 0.0)

    def _boot_failed(self, name: str, failure: Exception) -> None:
        self.boot_errors[name] = str(failure)
        self._places.release()
        logger.warning("Booting host %s failed: %s", name, failure)

    def _delete(self, name: str) -> None:
        host = self.hosts.get(name)
        if host is None:
            return
        try:
            self.world.remove_host(host)
        finally:
            # Only once gone (a test waits for this), and only this machine. The name keeps its address: a
            # server made again under it boots where its static IP points.
            with self._lock:
                if self.hosts.get(name) is host:
                    self.hosts.pop(name, None)
            with contextlib.suppress(ValueError):
                self._places.release()

    def stop(self) -> None:
        """Wait for boots and deletes under way, then remove every host this fleet booted."""
        self._stopping.set()
        for worker in list(self._workers):
            worker.join(timeout=_STOP_TIMEOUT)
        for name in list(self.hosts):
            with contextlib.suppress(Exception):
                self._delete(name)

