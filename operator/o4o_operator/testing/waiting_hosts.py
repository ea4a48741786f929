"""Hosts that only wait: one process serving many SSH hosts that replay host scripts recorded once (bench P1).

Owns: the stand-in process (``python -m o4o_operator.testing.waiting_hosts``), which serves every host of a
:class:`WaitingFleet` with asyncssh on its own address, and the fleet, its parent-side handle (the same
interface as :class:`~o4o_operator.testing.world.SandboxFleet`: ``host_for``, ``ip_allocator``,
``host_keys``, ``stop``). One host records: it runs every command for real on a
:class:`~o4o_operator.testing.sandbox.SandboxHost`'s root and shims (whose commands do not wait), and its
SFTP and API tunnels reach that sandbox's files and API listener; what its scripts printed, when, after how
many shimmed commands, and how they exited, and what the API answered, go to one
:class:`~o4o_operator.testing.replay.Transcript`. Every other host replays: each script (by identity and by
its own count of them) prints what the recording printed, at the recorded moments plus the latency for every
shimmed command before (so one alone takes as long as on a sandbox host with waiting shims), exits the same
way, and its API answers as recorded. SFTP uploads land in the host's own directory, owners' uploads and kill
scripts succeed without acting. So the hosts' own work (sshd sessions, bash, git, the shims) stays off the
machine, and what is left is the operator's, the control plane's and the cloud's.

Must not: keep any command's stdin (it carries the Secrets' values; only its identity is kept), write outside
its directory (the recording sandbox's root included), or leave a process behind (``stop``; the stand-in
process exits when its stdin closes).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import http
import json
import os
import pwd
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import asyncssh

from o4o_operator.providers.ownership import server_name
from o4o_operator.rendering.env_values import database_identifier
from o4o_operator.rendering.host_context import instance_user
from o4o_operator.testing.file_lock import exclusive
from o4o_operator.testing.lightsail_catalog import host_key_entry
from o4o_operator.testing.processes import stop_process
from o4o_operator.testing.replay import (
    KILL,
    PROBE,
    UPLOAD,
    HttpRecording,
    Occurrences,
    OutputLine,
    ScriptRecording,
    Transcript,
    command_identity,
    http_identity,
    renamed,
)
from o4o_operator.testing.sandbox import SandboxHost
from o4o_operator.testing.world import ADDRESS_LOCK, free_address

_LINE_LIMIT = 1 << 20


class _ShimCounter:
    """How many shimmed commands the recording sandbox has made (lines of its ``.shim-log``)."""

    def __init__(self, log: Path) -> None:
        self._log, self._offset, self.calls = log, 0, 0

    def read(self) -> int:
        with contextlib.suppress(FileNotFoundError), self._log.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
            self._offset += len(data)
            self.calls += data.count(b"\n")
        return self.calls


async def _read_message(reader: Any) -> tuple[bytes, dict[str, str], bytes] | None:
    """One HTTP/1.1 message from a stream: its head as read, its headers (names in lower case) and its body (by
    Content-Length); None at the stream's end."""
    try:
        head = bytes(await reader.readuntil(b"\r\n\r\n"))
    except (asyncio.IncompleteReadError, asyncssh.Error, ConnectionError):
        return None
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    return head, headers, bytes(await reader.readexactly(length)) if length else b""


def _answer(recording: HttpRecording, body: bytes) -> bytes:
    try:
        reason = http.HTTPStatus(recording.status).phrase
    except ValueError:
        reason = "Answer"
    return (f"HTTP/1.1 {recording.status} {reason}\r\nContent-Type: {recording.content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class StandInHost:
    """One SSH server (see the module docstring); recording when it has a sandbox, else replaying."""

    def __init__(self, transcript: Transcript, *, address: str, port: int, directory: Path, latency: float,
                 renames: tuple[tuple[str, str], ...], sandbox: SandboxHost | None) -> None:
        self.transcript, self.address, self.port, self.latency = transcript, address, port, latency
        self.renames, self.sandbox = renames, sandbox
        self.key = asyncssh.generate_private_key("ssh-ed25519")
        self.root = sandbox.root if sandbox is not None else directory / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.api = sandbox.api.address if sandbox is not None else f"{address}:9"
        """Where tunnels lead: the sandbox's listener when recording; when replaying, nowhere (answered here)."""
        self._occurrences = Occurrences()
        self._counter = _ShimCounter(self.root / ".shim-log")
        self._server: Any = None

    async def start(self, client_keys: Any) -> None:
        host = self

        class Server(asyncssh.SSHServer):
            def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> Any:
                return host.serve_api

        self._server = await asyncssh.create_server(
            Server, self.address, self.port, server_host_keys=[self.key], authorized_client_keys=client_keys,
            process_factory=self.serve_command, sftp_factory=True, encoding=None, allow_scp=False,
            reuse_address=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.sandbox is not None:
            await asyncio.to_thread(self.sandbox.close)

    # ---- commands ---------------------------------------------------------------------------------

    async def serve_command(self, process: Any) -> None:
        command = str(process.command or "")
        try:
            status = await (self._record(process, command) if self.sandbox is not None
                            else self._replay(process, command))
        except (asyncssh.Error, OSError):
            return  # the client went away (closed the channel, or its connection)
        with contextlib.suppress(asyncssh.Error, OSError):
            process.exit(status)

    def _environment(self) -> dict[str, str]:
        """What the sandbox's sshd gives a session (``SetEnv``), for commands run by the recording host."""
        assert self.sandbox is not None
        user = pwd.getpwuid(os.getuid())
        return {"PATH": f"{self.sandbox.shim_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": str(self.sandbox.home), "USER": user.pw_name, "LOGNAME": user.pw_name,
                "SHELL": "/bin/bash", "O4O_ROOT": str(self.root), "O4O_SANDBOX_API": self.api}

    async def _record(self, process: Any, command: str) -> int:
        assert self.sandbox is not None
        child = await asyncio.create_subprocess_exec(
            "/bin/bash", "-c", command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=self._environment(), cwd=str(self.sandbox.home), start_new_session=True, limit=_LINE_LIMIT)
        assert child.stdin is not None and child.stdout is not None and child.stderr is not None
        loop = asyncio.get_running_loop()
        started, calls_before = loop.time(), self._counter.read()
        stdin: list[bytes] = []
        lines: list[OutputLine] = []

        async def feed(target: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncssh.Error):
                while data := await process.stdin.read(65536):
                    stdin.append(data)
                    target.write(data)
                    await target.drain()
            target.close()

        async def pump(source: asyncio.StreamReader, target: Any, is_stderr: bool) -> None:
            async for raw in source:
                target.write(raw)
                lines.append(OutputLine(round(loop.time() - started, 3), self._counter.read() - calls_before,
                                        raw.decode("utf-8", "replace").rstrip("\r\n"), is_stderr))

        feeding = asyncio.create_task(feed(child.stdin))
        await asyncio.gather(pump(child.stdout, process.stdout, False), pump(child.stderr, process.stderr, True))
        returned = await child.wait()
        feeding.cancel()  # a command that never reads its stdin (the probe) gets no EOF from the client
        status = returned if returned >= 0 else 128 - returned
        identity = command_identity(command, b"".join(stdin).decode("utf-8", "replace"))
        if identity not in (PROBE, UPLOAD, KILL):
            self.transcript.add_script(identity, ScriptRecording(
                tuple(lines), round(loop.time() - started, 3), self._counter.read() - calls_before, status))
        return status

    async def _replay(self, process: Any, command: str) -> int:
        if command_identity(command, "") == PROBE:
            process.stdout.write(f"{self.root}\n{self.api}".encode())
            return 0
        stdin = (await process.stdin.read()).decode("utf-8", "replace")
        identity = command_identity(command, stdin)
        del stdin
        if identity in (UPLOAD, KILL):
            return 0
        recording = self.transcript.script(identity, self._occurrences.next(identity))
        if recording is None:
            if not identity.startswith("script "):
                return 0
            process.stdout.write(f"::o4o::transient reason=NotRecorded {identity} was never recorded\n".encode())
            return 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        timed, end = recording.schedule(self.latency)
        for at, line in timed:
            await asyncio.sleep(max(0.0, started + at - loop.time()))
            (process.stderr if line.stderr else process.stdout).write(
                (renamed(line.text, self.renames) + "\n").encode())
        await asyncio.sleep(max(0.0, started + end - loop.time()))
        return recording.exit_status

    # ---- the instance's API, through tunnels -------------------------------------------------------

    async def serve_api(self, reader: Any, writer: Any) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while (request := await _read_message(reader)) is not None:
                request_head, _, request_body = request
                method, path = request_head.split(b" ", 2)[:2]
                identity = http_identity(method.decode(), path.decode())
                if self.sandbox is None:
                    recording = self.transcript.answer(identity, self._occurrences.next(f"http {identity}")) \
                        or HttpRecording(404, b'{"message": "not recorded"}')
                    writer.write(_answer(recording, renamed(recording.body.decode(), self.renames).encode()))
                    continue
                if upstream is None:
                    host, _, port = self.api.rpartition(":")
                    upstream = await asyncio.open_connection(host, int(port))
                upstream[1].write(request_head + request_body)
                answer = await _read_message(upstream[0])
                if answer is None:
                    break
                head, headers, body = answer
                status = int(head.split(b" ", 2)[1])
                self.transcript.add_answer(identity, HttpRecording(
                    status, body, headers.get("content-type", "application/json")))
                writer.write(head + body)
        except (asyncssh.Error, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if upstream is not None:
                upstream[1].close()
            with contextlib.suppress(asyncssh.Error, OSError):
                writer.close()


# ---- the stand-in process ---------------------------------------------------------------------------


async def _serve(configuration: dict[str, Any]) -> None:
    directory = Path(configuration["directory"])
    client_keys = asyncssh.import_authorized_keys(configuration["authorized_keys"])
    transcript = Transcript()
    hosts: list[StandInHost] = []
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=_LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)

    def reply(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    reply({"ready": True})
    try:
        async for line in commands:
            request = json.loads(line)
            if request["op"] == "add":
                host_directory = directory / f"host-{len(hosts):04d}"
                host_directory.mkdir(parents=True, exist_ok=True)
                sandbox = await asyncio.to_thread(SandboxHost, request["address"], 0, directory=host_directory) \
                    if request["record"] else None
                if sandbox is not None:
                    sandbox.api.start()
                host = StandInHost(transcript, address=request["address"], port=int(request["port"]),
                                   directory=host_directory, latency=float(configuration["latency"]),
                                   renames=tuple((old, new) for old, new in request["renames"]), sandbox=sandbox)
                await host.start(client_keys)
                hosts.append(host)
                reply({"host_public_key": host.key.export_public_key("openssh").decode().strip(),
                       "root": str(host.root)})
            elif request["op"] == "recorded":
                reply({"recorded": transcript.counts()})
            else:
                break
    finally:
        await asyncio.gather(*(host.close() for host in hosts), return_exceptions=True)


def main() -> None:
    configuration = json.loads(sys.stdin.readline())
    asyncio.run(_serve(configuration))


# ---- the parent's handle ----------------------------------------------------------------------------


def instance_renames(namespace: str, recorded: str, instance: str) -> tuple[tuple[str, str], ...]:
    """What a replay changes so that the recording of ``recorded`` speaks of ``instance``: its system user and
    database names first (they carry a hash of the name), then the name itself (slugs, domains, paths)."""
    if recorded == instance:
        return ()
    old_user, new_user = instance_user(namespace, recorded), instance_user(namespace, instance)
    return ((old_user, new_user), (database_identifier(old_user), database_identifier(new_user)),
            (recorded, instance))


@dataclasses.dataclass(frozen=True)
class WaitingHost:
    """What the world knows of a stand-in host: where it listens and its host key."""

    address: str
    port: int
    host_public_key_openssh: str
    root: Path


class WaitingFleet:
    """Stand-in hosts on ``127.<subnet>.x.y:22``, served by one child process; the host of instance ``recorder``
    (of ``namespace``) records, every other host replays what it recorded, with ``command_latency_seconds`` for
    every shimmed command. :meth:`name_instance` tells a host which instance it serves (its replays then speak
    of it)."""

    def __init__(self, directory: Path, *, subnet: int, command_latency_seconds: float, namespace: str,
                 recorder: str) -> None:
        self._directory = directory / "waiting-hosts"
        self._directory.mkdir(parents=True, exist_ok=True)
        self._subnet, self._next = subnet, 0
        self._namespace, self._recorder_instance = namespace, recorder
        self._recorder = server_name(namespace, recorder)
        self._instances: dict[str, str] = {}
        self._lock = threading.Lock()
        self.hosts: dict[str, WaitingHost] = {}
        key = asyncssh.generate_private_key("ssh-ed25519")
        self.private_key_pem = key.export_private_key("openssh").decode()
        self.public_key_openssh = key.export_public_key("openssh").decode().strip()
        self._log: IO[bytes] = (self._directory / "stand-in.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "o4o_operator.testing.waiting_hosts"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, start_new_session=True)
        self._send({"directory": str(self._directory), "authorized_keys": self.public_key_openssh + "\n",
                    "latency": command_latency_seconds})

    def _send(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the stand-in hosts' process exited:\n{self.log()[-3000:]}")
        return dict(json.loads(answer))

    def log(self) -> str:
        path = self._directory / "stand-in.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def name_instance(self, instance: str) -> str:
        """The server name of ``instance`` (of the fleet's namespace), whose host's replays then speak of it."""
        server = server_name(self._namespace, instance)
        self._instances[server] = instance
        return server

    def host_for(self, server: str) -> WaitingHost:
        server = server.removesuffix("-ip")
        with self._lock:
            host = self.hosts.get(server)
            if host is None:
                instance = self._instances.get(server)
                renames = instance_renames(self._namespace, self._recorder_instance, instance) if instance else ()
                with exclusive(ADDRESS_LOCK):
                    self._next, address = free_address(self._subnet, self._next)
                    answer = self._send({"op": "add", "address": address, "port": 22, "renames": renames,
                                         "record": server == self._recorder})
                host = WaitingHost(address, 22, answer["host_public_key"], Path(answer["root"]))
                self.hosts[server] = host
            return host

    def ip_allocator(self, name: str) -> str:
        return self.host_for(name).address

    def host_keys(self, instance_name: str) -> list[dict[str, Any]]:
        algorithm, blob = self.host_for(instance_name).host_public_key_openssh.split()[:2]
        return [host_key_entry(algorithm, base64.b64decode(blob))]

    def recorded(self) -> dict[str, int]:
        """How many recordings of each script and API route the recording host has made."""
        with self._lock:
            return dict(self._send({"op": "recorded"})["recorded"])

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert self.process.stdin is not None
                self.process.stdin.close()
            stop_process(self.process, grace_seconds=30)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


if __name__ == "__main__":
    main()
