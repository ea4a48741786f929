"""A host world leaves nothing behind: not after a clean stop, and not after its test process is SIGKILLed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from o4o_operator.testing.hosts import HostWorld, network
from o4o_operator.testing.hosts.ssh_client import ClientKey
from o4o_operator.testing.hosts.world import STATE_ROOT, _processes_naming

pytestmark = [pytest.mark.realhost, pytest.mark.timeout(1200)]

_BOOT_THEN_DIE = """
import os, signal, sys
from o4o_operator.testing.hosts import HostWorld
world = HostWorld().start()
host = world.boot_host("doomed", authorized_keys=[sys.argv[1]])
print(host._container_init(), host.link.netns, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def _leftovers() -> dict[str, object]:
    state = sorted(entry.name for entry in STATE_ROOT.iterdir()) if STATE_ROOT.is_dir() else []
    return {"links": network.stale_links(), "netns": network.stale_netns(), "state": state,
            "processes": _processes_naming(STATE_ROOT),
            "mounts": [line for line in Path("/proc/self/mounts").read_text().splitlines() if "o4o-host" in line]}


_NOTHING = {"links": [], "netns": [], "state": [], "processes": [], "mounts": []}


def test_stopping_the_world_removes_hosts_proxy_bridge_and_directories(client_key: ClientKey) -> None:
    with HostWorld() as world:
        host = world.boot_host(authorized_keys=[client_key.public_line])
        print(f"\nbooted {host.name} in {host.boot_seconds:.1f} s")
        init = host._container_init()
        assert world.proxy is not None
        assert _leftovers()["links"] == [network.BRIDGE, host.link.veth]
    assert _gone(init)
    assert _leftovers() == _NOTHING


def test_a_killed_test_process_takes_its_container_along_and_the_next_world_clears_the_rest(
        client_key: ClientKey) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    died = subprocess.run([sys.executable, "-c", _BOOT_THEN_DIE, client_key.public_line], capture_output=True,
                          text=True, timeout=600, env=env, check=False)
    assert died.returncode == -9, died.stderr
    init, netns = died.stdout.split()
    deadline = time.monotonic() + 30
    while not _gone(int(init)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(int(init)), "the container's systemd outlived the process that booted it"
    assert netns in network.stale_netns()  # what the kernel cannot clean up: the next world's job
    with HostWorld() as world:
        assert f"{netns}" in world.stale_removed and network.BRIDGE in world.stale_removed
        assert world.stale_removed
    assert _leftovers() == _NOTHING
