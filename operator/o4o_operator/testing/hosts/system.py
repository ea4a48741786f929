"""Running the machine's own tools for the booted-host world: checked commands and guarded children.

Owns: :func:`run_checked` (a command whose failure raises :class:`HostWorldError` with its output), and
:func:`spawn_guarded`, which starts a long-lived child that is SIGKILLed when this Python process dies.
Must not know what the commands do.

Linux delivers ``PR_SET_PDEATHSIG`` when the *thread* that forked the child exits, not the process. Callers
such as the local cloud start hosts from short-lived request threads, so every guarded child is forked by one
daemon thread that lives as long as the interpreter.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


class HostWorldError(RuntimeError):
    """A step of building, booting or wiring a host failed; the message says which and why."""


def run_checked(args: Sequence[str], *, timeout: float = 120.0, input_text: str | None = None,
                env: Mapping[str, str] | None = None) -> str:
    """Run ``args``, return stdout; raise :class:`HostWorldError` with stderr when it fails."""
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, input=input_text,
                              env=dict(env) if env is not None else None, check=False)
    except subprocess.TimeoutExpired as error:
        raise HostWorldError(f"{args[0]} did not finish within {timeout:.0f} s: {' '.join(args)}") from error
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[-2000:]
        raise HostWorldError(f"{' '.join(args)} exited with {done.returncode}: {output}")
    return done.stdout


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class _Spawner:
    """One daemon thread that forks every guarded child, so their death signal fires only with the process.

    A daemon thread (not an executor's worker) because interpreter shutdown joins executor workers before
    ``atexit`` hooks run, which would SIGKILL the children before the hooks could stop them in order.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[Callable[[], subprocess.Popen[bytes]],
                                                concurrent.futures.Future[subprocess.Popen[bytes]]]]
        self._requests = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _serve(self) -> None:
        while True:
            function, future = self._requests.get()
            try:
                future.set_result(function())
            except BaseException as error:  # handed to the caller's thread
                future.set_exception(error)

    def call(self, function: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="o4o-host-spawner", daemon=True)
                self._thread.start()
        future: concurrent.futures.Future[subprocess.Popen[bytes]] = concurrent.futures.Future()
        self._requests.put((function, future))
        return future.result()


_SPAWNER = _Spawner()


def spawn_guarded(args: Sequence[str], log_path: Path, *,
                  env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``args`` (output appended to ``log_path``); it gets SIGKILL if this process dies."""

    def start() -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            return subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=dict(env) if env is not None else None, preexec_fn=_die_with_parent)

    return _SPAWNER.call(start)


def children_of(pid: int) -> list[int]:
    """The direct children of ``pid`` (empty when it has gone)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]
