"""The operator as a real child process, for end-to-end tests, ``make dev`` and benchmarks.

Owns: starting ``python -m o4o_operator.testing.operator_main run`` (the shipped
CLI, with the sandbox root honoured) against a kubeconfig with the
environment that points it at local peers, waiting until its liveness endpoint
answers, killing it (SIGKILL, for crash tests), stopping it (SIGTERM) and
restarting it. Must not reach into the operator's internals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from o4o_operator.testing.processes import free_port, log_tail, start_process, stop_process

READY_TIMEOUT_SECONDS = 60.0


class OperatorProcess:
    def __init__(self, kubeconfig: Path, log_path: Path, *, env: Mapping[str, str] | None = None,
                 namespaces: tuple[str, ...] = (), extra_args: tuple[str, ...] = (),
                 launcher: Callable[[Mapping[str, str]], list[str]] | None = None) -> None:
        """``launcher``: given the environment the operator gets, the command that starts the test CLI (its
        arguments follow); by default this Python (``tests/delivery/test_image.py`` runs it in the image)."""
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self._env = dict(env or {})
        self._namespaces = namespaces
        self._extra_args = extra_args
        self._launcher = launcher
        self.process: subprocess.Popen[bytes] | None = None
        self.liveness_port = 0
        self.metrics_port = 0

    def __enter__(self) -> OperatorProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        self.liveness_port, self.metrics_port = free_port(), free_port()
        scope = [arg for ns in self._namespaces for arg in ("--namespace", ns)] or ["--all-namespaces"]
        # One replica by default (no Lease to wait for after a restart); the failover tests turn election on.
        own_env = {"KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1", "O4O_LEADER_ELECTION": "false",
                   **self._env}
        command = self._launcher(own_env) if self._launcher is not None \
            else [sys.executable, "-m", "o4o_operator.testing.operator_main"]
        args = [*command, "run", *scope,
                "--liveness", f"http://127.0.0.1:{self.liveness_port}/healthz",
                "--metrics-port", str(self.metrics_port), "--metrics-address", "127.0.0.1", *self._extra_args]
        env = {**os.environ, **own_env}
        self.process = start_process(args, self.log_path, env=env)
        self._wait_live()

    def _wait_live(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"operator exited with {self.process.returncode}:\n{log_tail(self.log_path)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)  # polling the child's endpoint, bounded by the deadline
        raise RuntimeError(f"operator not live after {READY_TIMEOUT_SECONDS:.0f}s:\n{log_tail(self.log_path)}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizer handling, exactly like a crashed pod."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace_seconds=15)

    def restart(self) -> None:
        self.kill()
        self.start()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
