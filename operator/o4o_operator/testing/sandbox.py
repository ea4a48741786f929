"""A real OpenSSH server standing in for a deployment target: the local peer of SshConnector.

Owns: one ``/usr/sbin/sshd`` per :class:`SandboxHost`, with its own ed25519
host key, an authorised client key, a temporary root directory handed to
every session as ``O4O_ROOT`` (scripts put everything under it), and a PATH
whose first directory holds shims (see ``sandbox_shim.py``) for every command
that would change the machine. ``git``, ``openssl``, coreutils and bash run
for real. Tests read what happened through :meth:`commands` and :meth:`read`.

Must not: leave processes behind (``stop`` kills sshd and its sessions, and
so does an ``atexit`` hook), or write outside its temporary directory except
``/run/sshd``, which sshd insists on. Its instances' own API is served by an HTTP listener of its own
(:attr:`SandboxHost.api`), reached through the operator's SSH tunnels (sshd forwards TCP by default).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncssh

from o4o_operator.testing import sandbox_shim, shim_fork
from o4o_operator.testing.file_lock import exclusive
from o4o_operator.testing.sandbox_api_listener import ApiListener

SSHD = "/usr/sbin/sshd"
SHIMMED = tuple(sandbox_shim.COMMANDS)
_SHIM_ENTRY = shlex.quote(f"import sys; sys.path.insert(0, {str(Path(sandbox_shim.__file__).parent)!r}); "
                          "import sandbox_shim; sys.exit(sandbox_shim.main(sys.argv[1:]))")
"""The shim as an imported module rather than a script, so that Python reuses its compiled bytecode: each
shimmed command is a Python start, and a sandboxed lifecycle makes about 160 of them."""
_START_TIMEOUT = 15.0


@dataclasses.dataclass(frozen=True)
class ShimCall:
    """One call of a shimmed command, as the shim recorded it."""

    argv: tuple[str, ...]
    cwd: str
    user: str = ""
    """Whom ``runuser -u`` ran it as ("" when root ran it directly)."""
    env: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False)
    """The call's values of ``sandbox_shim.LOGGED_ENVIRONMENT`` (proxy settings, ``REQUESTS_CA_BUNDLE``)."""

    @property
    def name(self) -> str:
        return self.argv[0]

    @property
    def args(self) -> tuple[str, ...]:
        return self.argv[1:]


def write_shims(directory: Path, names: tuple[str, ...] = SHIMMED, *, latency_seconds: float = 0.0,
                server_socket: Path | None = None) -> None:
    """One executable per command in ``directory``, each running ``sandbox_shim.py <command>``: by the fork
    server listening on ``server_socket`` when one is given (see ``shim_server``), else as its own Python.

    Put ``directory`` first on PATH (with ``O4O_ROOT`` set) and those commands act out their effects.
    """
    unknown = set(names) - set(SHIMMED)
    if unknown:
        raise ValueError(f"not shimmed: {', '.join(sorted(unknown))}")
    directory.mkdir(parents=True, exist_ok=True)
    client = shim_fork.client_binary() if server_socket is not None else None
    for name in names:
        shim = directory / name
        run = f"{client} {shlex.quote(str(server_socket))}" if client is not None \
            else f"{sys.executable} -I -S -c {_SHIM_ENTRY}"
        shim.write_text(f"#!/bin/sh\nO4O_SHIM_DIR={directory} O4O_SHIM_LATENCY_SECONDS={latency_seconds:g} "
                        f"exec {run} {name} \"$@\"\n")
        shim.chmod(0o755)


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, session id) for every live (not zombie) process."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":
                table[int(entry.name)] = (int(fields[1]), int(fields[3]))
    return table


def _sandbox_processes(listener: int, table: dict[int, tuple[int, int]]) -> set[int]:
    """Everything sshd started: its descendants, and whatever shares a session with them (orphans)."""
    found, queue = set(), [listener]
    while queue:
        parent = queue.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                queue.append(pid)
    sessions = {table[pid][1] for pid in found if pid in table} | {listener}
    same_session = {pid for pid, (_, sid) in table.items() if sid in sessions}
    return (same_session | found) - {listener}


def _kill_sandbox_processes(listener: int) -> int:
    """Freeze every sandbox process until none is left to fork, then kill them all."""
    frozen: set[int] = set()
    while True:
        victims = _sandbox_processes(listener, _process_table()) - frozen
        if not victims:
            break
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        frozen |= victims
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # SIGKILL is delivered, not done: on a loaded machine a killed process runs on for a moment. Return once
    # every one is gone (or a zombie), so that callers see no session left.
    deadline = time.monotonic() + 10
    while frozen & set(_process_table()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(frozen)


class SandboxHost:
    """``with SandboxHost() as host:`` gives a reachable SSH server; see the module docstring."""

    def __init__(self, address: str = "127.0.0.1", port: int | None = None, *,
                 directory: Path | None = None, command_latency_seconds: float = 0.0,
                 login_environment: Mapping[str, str] | None = None) -> None:
        """``command_latency_seconds``: a fixed delay before every shimmed command (benchmarks).
        ``login_environment``: more variables every SSH login starts with (say, a proxy, as
        ``/etc/environment`` sets one)."""
        self.address = address
        self.login_environment = dict(login_environment or {})
        self.command_latency_seconds = command_latency_seconds
        self.port = port if port is not None else _free_port(address)
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.directory = Path(tempfile.mkdtemp(prefix="o4o-sandbox-", dir=directory))
        self.root = self.directory / "root"
        self.shim_dir = self.directory / "shims"
        self._sshd_dir = self.directory / "sshd"
        self.home = self.directory / "home"
        """The sessions' HOME: nothing of the machine's login user's shell start-up files runs in a session."""
        self._process: subprocess.Popen[bytes] | None = None
        self._log_thread: threading.Thread | None = None
        socket_path = self.directory / "shim.sock"
        self._shim_server = shim_fork.ShimServer(socket_path, self.directory / "shim-server.log") \
            if shim_fork.ShimServer.usable(socket_path) else None
        self.api = ApiListener(address, self.root)
        """Where the operator's tunnels to its instances' APIs lead (sshd tells the test-peer connector)."""
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.host_key_fingerprint: str = host_key.get_fingerprint("sha256")
        self.host_public_key_openssh: str = host_key.export_public_key("openssh").decode().strip()
        self.private_key_pem: str = client_key.export_private_key("openssh").decode()
        self.public_key_openssh: str = client_key.export_public_key("openssh").decode().strip()
        self._write_files(host_key.export_private_key("openssh"))
        if self._shim_server is not None:  # the shims work from here on, sshd or not (tests run scripts by bash)
            self._shim_server.start()
        atexit.register(self.stop)

    # ---- setup --------------------------------------------------------------------------

    def _write_files(self, host_key: bytes) -> None:
        for directory in (self.root, self.shim_dir, self._sshd_dir, self.home):
            directory.mkdir(parents=True, exist_ok=True)
        key_file = self._sshd_dir / "ssh_host_ed25519_key"
        key_file.write_bytes(host_key)
        key_file.chmod(0o600)
        (self._sshd_dir / "authorized_keys").write_text(self.public_key_openssh + "\n")
        write_shims(self.shim_dir, latency_seconds=self.command_latency_seconds,
                    server_socket=self._shim_server.socket_path if self._shim_server else None)
        path = f"{self.shim_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        (self._sshd_dir / "sshd_config").write_text("\n".join([
            f"ListenAddress {self.address}:{self.port}",
            f"HostKey {key_file}",
            f"PidFile {self._sshd_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self._sshd_dir / 'authorized_keys'}",
            f"AllowUsers {self.user}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PrintMotd no",
            "MaxSessions 32",
            "MaxStartups 64",
            "LogLevel INFO",
            "Subsystem sftp internal-sftp",
            # A HOME of its own: bash run by sshd sources $HOME/.bashrc, and the machine's (pyenv init) can hang
            # every session on a stale rehash lock left by a session killed mid-login.
            f"SetEnv O4O_ROOT={self.root} O4O_SANDBOX_API={self.api.address} PATH={path} HOME={self.home}"
            + "".join(f' "{name}={value}"' for name, value in self.login_environment.items()),
            "",
        ]))
        (self.root / ".shim-plan.json").write_text(json.dumps({"failures": [], "http": []}))

    def authorize(self, public_key_openssh: str) -> None:
        """Also accept this client key (sshd reads the file at every login: no restart needed)."""
        with (self._sshd_dir / "authorized_keys").open("a") as keys:
            keys.write(public_key_openssh.strip() + "\n")

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> SandboxHost:
        if self._process is not None and self._process.poll() is None:
            return self
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        if self._shim_server is not None:
            self._shim_server.start()
        self.api.start()
        log = (self._sshd_dir / "sshd.log").open("ab")
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self._sshd_dir / "sshd_config")],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.PIPE,
                                   start_new_session=True)
        log.close()
        ready = threading.Event()
        self._log_thread = threading.Thread(target=self._follow_log, args=(process, ready), daemon=True)
        self._log_thread.start()
        if not ready.wait(_START_TIMEOUT) or process.poll() is not None:
            process.kill()
            process.wait()
            raise RuntimeError(f"sshd did not start:\n{self.sshd_log()}")
        self._process = process
        return self

    def _follow_log(self, process: subprocess.Popen[bytes], ready: threading.Event) -> None:
        assert process.stderr is not None
        with process.stderr, (self._sshd_dir / "sshd.log").open("ab") as log:
            for line in process.stderr:
                log.write(line)
                log.flush()
                if b"Server listening on" in line:
                    ready.set()
        ready.set()  # sshd exited: let start() notice

    def sshd_log(self) -> str:
        path = self._sshd_dir / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill_sessions(self) -> int:
        """Kill every live SSH connection (and what runs in it); return how many processes died."""
        return _kill_sandbox_processes(self._process.pid) if self._process is not None else 0

    def session_processes(self) -> set[int]:
        """The live processes sshd started for connections (none once ``kill_sessions`` returned)."""
        return _sandbox_processes(self._process.pid, _process_table()) if self._process is not None else set()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            if self._shim_server is not None:
                self._shim_server.stop()
            return
        _kill_sandbox_processes(process.pid)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_thread is not None:
            self._log_thread.join(timeout=10)
        if self._shim_server is not None:
            self._shim_server.stop()

    def restart(self) -> None:
        """Drop every connection and restart sshd on the same address, port and host key."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop (sshd and the API listener) and delete the sandbox's files."""
        self.stop()
        self.api.close()
        atexit.unregister(self.stop)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SandboxHost:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # ---- what tests ask for ---------------------------------------------------------------

    def path(self, logical_path: str) -> Path:
        """Where a logical absolute path (``/srv/o4o/...``) lives in this sandbox."""
        return self.root / logical_path.lstrip("/")

    def read(self, logical_path: str) -> bytes:
        return self.path(logical_path).read_bytes()

    def commands(self, name: str | None = None) -> list[ShimCall]:
        """Every shimmed call so far, oldest first, optionally only those of one command."""
        log = self.root / ".shim-log"
        if not log.exists():
            return []
        calls = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        return [ShimCall(tuple(c["argv"]), c["cwd"], c.get("user", ""), dict(c.get("env", {}))) for c in calls
                if name is None or c["argv"][0] == name]

    def shim_state(self) -> dict[str, Any]:
        """What the shims believe is installed, enabled, live (packages, users, live_release, ...)."""
        state = self.root / ".shim-state.json"
        return dict(json.loads(state.read_text())) if state.exists() else {}

    def fail_command(self, command: str, *, exit_code: int = 1, stderr: str = "", stdout: str = "",
                     times: int = 1, args_contain: str = "") -> None:
        """Make the next ``times`` calls of a shimmed command (``-1``: all) fail this way."""
        if command not in SHIMMED:
            raise ValueError(f"{command} is not shimmed; shimmed commands are {', '.join(SHIMMED)}")
        self._update_plan(lambda plan: plan["failures"].append({
            "command": command, "exit_code": exit_code, "stderr": stderr, "stdout": stdout,
            "times": times, "args_contain": args_contain}))

    def hold_command(self, command: str, *, args_contain: str = "", times: int = 1) -> Path:
        """Make the next ``times`` calls of a shimmed command wait (logged first) until the returned gate file
        exists, then run as usual: a stage held mid-way, for tests that kill or freeze the operator there."""
        if command not in SHIMMED:
            raise ValueError(f"{command} is not shimmed; shimmed commands are {', '.join(SHIMMED)}")
        gate = self.root / f".hold-{command}-{uuid.uuid4().hex[:8]}"
        self._update_plan(lambda plan: plan.setdefault("holds", []).append({
            "command": command, "times": times, "args_contain": args_contain, "gate": str(gate)}))
        return gate

    def set_http_response(self, status: int, body: str = "", *, url_contains: str = "",
                          live_release: str | None = None) -> None:
        """What the curl shim answers for matching URLs (while ``live_release`` is what PM2 runs)."""
        self._update_plan(lambda plan: plan["http"].append({
            "url_contains": url_contains, "status": status, "body": body, "live_release": live_release}))

    def edit_tables(self, database: str, *, create: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> None:
        """What ``psql -c 'CREATE TABLE ...'`` or ``'DROP TABLE ...'`` by hand does to the PostgreSQL shim's local
        ``database`` (tables as ``schema.name``)."""
        state_path = self.root / ".shim-state.json"
        with exclusive(self.root / ".shim-lock"):
            state = json.loads(state_path.read_text())
            tables = state["postgres"].setdefault("tables", {}).setdefault(database, [])
            tables[:] = [t for t in tables if t not in drop] + [t for t in create if t not in tables]
            state_path.write_text(json.dumps(state, indent=1, sort_keys=True))

    def psql(self, database: str, sql: str) -> str:
        """``psql -d <database> -c <sql>`` by hand, as the ``postgres`` user on the host (peer authentication),
        through the same shim the scripts run (logged like theirs): an ``INSERT`` a row, a ``DELETE FROM`` the
        damage, a ``SELECT count(*)`` the check. Returns its output; a refusal raises with psql's error."""
        environment = {**os.environ, "O4O_ROOT": str(self.root), "O4O_SHIM_USER": "postgres",
                       "PATH": f"{self.shim_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        done = subprocess.run([str(self.shim_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA",
                               "-d", database, "-c", sql], env=environment, capture_output=True, text=True,
                              timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"psql {sql!r} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def _update_plan(self, change: Any) -> None:
        plan_path = self.root / ".shim-plan.json"
        with exclusive(self.root / ".shim-lock"):
            plan = json.loads(plan_path.read_text())
            change(plan)
            plan_path.write_text(json.dumps(plan))
