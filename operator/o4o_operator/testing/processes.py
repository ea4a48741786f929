"""Child processes for test peers that never outlive their parent.

Owns: starting a logged subprocess that dies with the Python process (Linux
``PR_SET_PDEATHSIG``), stopping it with SIGTERM then SIGKILL, and picking free
loopback ports (outside the kernel's ephemeral range). Must not know what the processes are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def start_process(args: Sequence[str], log_path: Path, *,
                  env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``args`` with stdout and stderr appended to ``log_path``."""
    with log_path.open("ab") as log:
        return subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(env) if env is not None else None, preexec_fn=_die_with_parent)


def stop_process(process: subprocess.Popen[bytes], grace_seconds: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_seconds``; always reaps."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


PORTS_BELOW_EPHEMERAL = 12000
"""How many ports under the kernel's ephemeral range :func:`free_port` picks from."""


def _ephemeral_low(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now, from just below the kernel's ephemeral range when there is room: a port
    handed out there (``bind(0)``) can become some outgoing connection's local port before the peer this is
    for binds it (a restarted operator failed on its metrics port so), and a port outside it cannot."""
    low = _ephemeral_low()
    candidates = range(max(1024, low - PORTS_BELOW_EPHEMERAL), low)
    for _ in range(64 if len(candidates) >= 1000 else 0):
        port = random.choice(candidates)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
