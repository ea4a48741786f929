"""The booted hosts' world: the image, the bridge, the egress proxy, and the hosts, started and stopped together.

Owns: :class:`HostWorld` (``with HostWorld() as world: host = world.boot_host(authorized_keys=[pub])``), the
machine-wide lock that lets one world at a time own the bridge and its names (a second one waits), handing out
host numbers and addresses, :func:`cleanup_stale` (what a crashed earlier run left: its hosts' processes,
directories, namespaces, veths, the bridge), and the safety net that stops live worlds at interpreter exit and
on SIGTERM/SIGHUP. Must not start the world's other services (DNS, ACME, mirrors): they listen on
:attr:`HostWorld.address` and are someone else's; the image already points at them.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from o4o_operator.testing.hosts import network
from o4o_operator.testing.hosts.booted_host import BootedHost, signal_quietly
from o4o_operator.testing.hosts.egress_proxy import NPM_REGISTRY_HOST, EgressProxy
from o4o_operator.testing.hosts.rootfs import Rootfs, RootfsRecipe, cached_rootfs, default_cache_root
from o4o_operator.testing.hosts.system import HostWorldError, run_checked

STATE_ROOT = Path("/var/lib/o4o-hosts")  # per-host upper directories: on disk (they hold whole installs), root-only
LOCK_PATH = Path("/run/lock/o4o-host-world.lock")
_LOCK_TIMEOUT = 1800.0


def _processes_naming(directory: Path) -> list[int]:
    """Live processes whose command line mentions ``directory`` (a crashed run's boots)."""
    needle = str(directory).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def _mounts_under(directory: Path) -> list[str]:
    prefix = str(directory).rstrip("/") + "/"
    points = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    return sorted((point for point in points if point.startswith(prefix)), key=len, reverse=True)


def cleanup_stale(state_root: Path = STATE_ROOT) -> list[str]:
    """Remove what an earlier run that died left behind; returns what it removed. Call it holding the lock."""
    removed: list[str] = []
    if state_root.is_dir():
        victims = _processes_naming(state_root)
        for pid in victims:
            signal_quietly(pid, signal.SIGKILL)  # an unshare dies, and with it its namespaces and container
        removed += [f"process {pid}" for pid in victims]
        deadline = time.monotonic() + 10
        while _processes_naming(state_root) and time.monotonic() < deadline:
            time.sleep(0.05)
        for point in _mounts_under(state_root):
            with contextlib.suppress(HostWorldError):
                run_checked(["umount", "--lazy", point])
                removed.append(f"mount {point}")
        for entry in state_root.iterdir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(str(entry))
    removed += network.remove_stale_network()
    return removed


@contextlib.contextmanager
def _machine_lock(timeout: float) -> Iterator[None]:
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    handle = LOCK_PATH.open("a+")
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.seek(0)
                    raise HostWorldError(f"another host world ({handle.read().strip()}) held {LOCK_PATH} "
                                         f"for {timeout:.0f} s") from None
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


class HostWorld:
    """The machine side of the booted hosts; see the module docstring.

    ``allowed_hosts`` are the names the egress proxy lets through (default: the Debian mirror's hosts from
    this machine's apt sources, and the npm registry). ``address`` is where the world's services must listen.
    """

    def __init__(self, *, recipe: RootfsRecipe | None = None, cache_root: Path | None = None,
                 state_root: Path = STATE_ROOT, allowed_hosts: Sequence[str] | None = None,
                 lock_timeout: float = _LOCK_TIMEOUT) -> None:
        self.recipe = recipe or RootfsRecipe()
        self.cache_root = cache_root
        self.state_root = state_root
        self.allowed_hosts = tuple(allowed_hosts or (*self.recipe.mirror.hosts, NPM_REGISTRY_HOST))
        self.lock_timeout = lock_timeout
        self.address = str(network.WORLD_ADDRESS)
        self.subnet = str(network.SUBNET)
        self.bridge = network.BRIDGE
        self.rootfs: Rootfs | None = None
        self.proxy: EgressProxy | None = None
        self.hosts: dict[str, BootedHost] = {}
        self.stale_removed: list[str] = []
        self._lock: contextlib.ExitStack | None = None
        self._numbers_lock = threading.Lock()

    @property
    def package_cache(self) -> Path:
        """Where the Debian packages the hosts downloaded are kept for the next ones (``apt_archive.py``)."""
        return (self.cache_root or default_cache_root()) / "apt-archives"

    @property
    def proxy_url(self) -> str:
        return self.recipe.network.proxy_url

    def start(self) -> HostWorld:
        """Take the machine lock, clear a crashed run's leftovers, build or reuse the image, bridge and proxy."""
        stack = contextlib.ExitStack()
        stack.enter_context(_machine_lock(self.lock_timeout))
        self._lock = stack
        _LIVE_WORLDS.add(self)
        _install_safety_net()
        try:
            self.stale_removed = cleanup_stale(self.state_root)
            self.rootfs = cached_rootfs(self.recipe, self.cache_root)
            self.state_root.mkdir(parents=True, exist_ok=True)
            network.create_bridge(self.bridge)
            self.proxy = EgressProxy(self.allowed_hosts, directory=self.state_root).start()
        except BaseException:
            self.stop()
            raise
        return self

    def _number_for(self, address: str | None) -> int:
        used = {host.link.number for host in self.hosts.values()}
        if address is not None:
            wanted = ipaddress.IPv4Address(address)
            if wanted not in network.SUBNET:
                raise HostWorldError(f"address: {address} is outside {network.SUBNET}")
            number = int(wanted) - int(network.SUBNET.network_address)
            if number in used:
                raise HostWorldError(f"address: {address} is already a host's")
            if not network.FIRST_HOST_NUMBER <= number < network.SUBNET.num_addresses - 1:
                raise HostWorldError(f"address: {address} is below .{network.FIRST_HOST_NUMBER} or the broadcast")
            return number
        for number in range(network.FIRST_HOST_NUMBER, network.SUBNET.num_addresses - 1):
            if number not in used:
                return number
        raise HostWorldError(f"no free address left in {network.SUBNET}")

    def new_host(self, name: str | None = None, authorized_keys: Sequence[str] = (), *,
                 address: str | None = None) -> BootedHost:
        """A host with its network in place, not yet booted (call :meth:`BootedHost.start`).

        ``address``: the one it must have (e.g. what the local cloud handed out), ``198.51.100.10`` or above;
        by default the lowest free one.
        """
        if self.rootfs is None:
            raise HostWorldError("the host world has not been started")
        with self._numbers_lock:
            link = network.HostLink(self._number_for(address))
            name = name or f"o4o-host-{link.number}"
            if name in self.hosts:
                raise HostWorldError(f"a host named {name!r} already exists")
            host = BootedHost(name=name, link=link, image=self.rootfs.path,
                              directory=self.state_root / f"{name}-{link.number}", authorized_keys=authorized_keys,
                              package_cache=self.package_cache)
            self.hosts[name] = host
        try:
            link.create(self.bridge)
        except BaseException:
            self.hosts.pop(name, None)
            raise
        return host

    def boot_host(self, name: str | None = None, authorized_keys: Sequence[str] = (), *,
                  address: str | None = None) -> BootedHost:
        """A new host, booted, sshd answering on ``host.address:22`` (arguments as for :meth:`new_host`)."""
        host = self.new_host(name, authorized_keys, address=address)
        try:
            return host.start()
        except BaseException:
            self.remove_host(host)
            raise

    def remove_host(self, host: BootedHost) -> None:
        """Power ``host`` off and remove it, its directory and its network."""
        try:
            host.stop()
        finally:
            with self._numbers_lock:
                self.hosts.pop(host.name, None)

    def stop(self) -> None:
        """Stop every host, the proxy and the bridge, and release the machine lock. Safe to call twice."""
        try:
            for host in list(self.hosts.values()):
                with contextlib.suppress(Exception):
                    self.remove_host(host)
            if self.proxy is not None:
                self.proxy.stop()
                self.proxy = None
            if self._lock is not None:
                network.remove_bridge(self.bridge)
        finally:
            _LIVE_WORLDS.discard(self)
            lock, self._lock = self._lock, None
            if lock is not None:
                lock.close()

    def __enter__(self) -> HostWorld:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


_LIVE_WORLDS: set[HostWorld] = set()
_SAFETY_NET = {"installed": False}


def _stop_live_worlds() -> None:
    for world in list(_LIVE_WORLDS):
        with contextlib.suppress(Exception):
            world.stop()


def _on_signal(number: int, frame: FrameType | None) -> None:
    _stop_live_worlds()
    previous = _PREVIOUS_HANDLERS.get(number, signal.SIG_DFL)
    if callable(previous):
        previous(number, frame)
        return
    signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)


_PREVIOUS_HANDLERS: dict[int, Any] = {}


def _install_safety_net() -> None:
    """``atexit`` and SIGTERM/SIGHUP stop live worlds (only from the main thread: Python's rule for signals)."""
    if _SAFETY_NET["installed"]:
        return
    _SAFETY_NET["installed"] = True
    atexit.register(_stop_live_worlds)
    if threading.current_thread() is not threading.main_thread():
        return
    for number in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(number)
        if previous in (signal.SIG_DFL, None) or callable(previous):
            _PREVIOUS_HANDLERS[number] = previous
            signal.signal(number, _on_signal)
