"""How the test peers pick their loopback ports and sandbox addresses, so that two at once never pick one.

A port handed out by ``bind(0)`` comes from the kernel's ephemeral range, where any outgoing connection may take
it before the peer binds it (a restarted operator once failed on its metrics port so); and two worlds probing
127.77.x.y at the same moment both found one address free (the second sshd could not bind, and the first
instance met another host's key there).
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from o4o_operator.testing import processes
from o4o_operator.testing.file_lock import exclusive


def test_free_ports_come_from_below_the_ephemeral_range_and_are_free() -> None:
    low = processes._ephemeral_low()
    ports = {processes.free_port() for _ in range(50)}
    assert all(low - processes.PORTS_BELOW_EPHEMERAL <= port < low for port in ports)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", port))


def test_a_port_someone_holds_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a range of 1000 ports of which all but one are held, only that one (or, when it is taken too, a
    port from bind(0)) comes back."""
    low = processes._ephemeral_low()
    monkeypatch.setattr(processes, "PORTS_BELOW_EPHEMERAL", 1000)
    held = []
    for port in range(low - 1000, low - 1):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            holder.bind(("127.0.0.1", port))
        except OSError:
            holder.close()
            continue
        held.append(holder)
    try:
        ports = {holder.getsockname()[1] for holder in held}
        handed = {processes.free_port() for _ in range(10)}
        assert not handed & ports
        assert handed <= {low - 1} | set(range(low, 65536))
    finally:
        for holder in held:
            holder.close()


def test_the_address_lock_lets_one_holder_in_at_a_time(tmp_path: Path) -> None:
    lock = tmp_path / "addresses.lock"
    inside, overlaps = [0], []
    guard = threading.Lock()

    def hold() -> None:
        for _ in range(20):
            with exclusive(lock):
                with guard:
                    inside[0] += 1
                    overlaps.append(inside[0])
                with guard:
                    inside[0] -= 1

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps and max(overlaps) == 1
