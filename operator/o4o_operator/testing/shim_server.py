"""A fork server for a SandboxHost's shims: each shimmed command costs a fork, not a Python start.

A sandboxed lifecycle runs about 700 shimmed commands. Started as its own Python each, they were most of the
suite's CPU (a Python start and the shim's imports: tens of milliseconds each). Here one process per sandbox
imports the shim once; each command's tiny client (``shim_client.c``) connects to its Unix socket and sends
argv, environment and working directory, with its own stdin, stdout and stderr as file descriptors
(SCM_RIGHTS). The server forks; the child takes those descriptors as 0, 1 and 2, the client's environment and
directory, and runs :func:`sandbox_shim.main` exactly as the script would (a passthrough still ``exec``s the
real program); the server sends the child's exit status back (128 + the signal, if one ended it). A client that
goes away first (killed with its SSH session) takes its command along: the child gets SIGTERM.

Owns: the socket protocol (both sides: see ``shim_client.c``) and the serving loop. Must not: act out any
command itself, or import anything beyond the standard library and the shim's own modules (it runs as a
standalone script: ``shim_server.py <socket path>``; it prints ``ready`` once it accepts connections).
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import selectors
import signal
import socket
import struct
import sys
from pathlib import Path

_ORPHAN_CHECK_SECONDS = 2.0
_MAX_REQUEST = 4 << 20
"""argv, environment and directory of one command: far below this."""


_MAX_FDS = 250
"""As many descriptors as the client sends at most (SCM_RIGHTS carries 253)."""


def _read_request(connection: socket.socket) -> tuple[list[str], dict[str, str], str, dict[int, int]]:
    """``u32 length`` then NUL-separated fields: argc, argv..., envc, env..., cwd, fdc, fd numbers...; the
    client's open descriptors ride the first part. Returns the fds as {number in the client: received fd}."""
    fds = array.array("i")
    header, ancillary, _, _ = connection.recvmsg(4, socket.CMSG_SPACE(_MAX_FDS * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if len(header) != 4:
        raise ConnectionError("short request")
    (length,) = struct.unpack("=I", header)
    if length > _MAX_REQUEST:
        raise ConnectionError("request too long")
    body = bytearray()
    while len(body) < length:
        chunk = connection.recv(length - len(body))
        if not chunk:
            raise ConnectionError("truncated request")
        body += chunk
    fields = [field.decode("utf-8", "surrogateescape") for field in bytes(body).split(b"\0")[:-1]]
    argc = int(fields[0])
    argv = fields[1:1 + argc]
    envc = int(fields[1 + argc])
    pairs = fields[2 + argc:2 + argc + envc]
    cwd = fields[2 + argc + envc]
    fdc = int(fields[3 + argc + envc])
    numbers = [int(number) for number in fields[4 + argc + envc:4 + argc + envc + fdc]]
    environment = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
    if len(numbers) != len(fds):
        for fd in fds:
            os.close(fd)
        raise ConnectionError("descriptors and their numbers differ")
    return argv, environment, cwd, dict(zip(numbers, fds, strict=True))


def _take_descriptors(fds: dict[int, int]) -> None:
    """Give each received descriptor its number in the client (out of the way first, so none is clobbered)."""
    above = max(fds, default=2) + 1
    parked = {number: fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, above) for number, fd in fds.items()}
    for fd in fds.values():
        os.close(fd)
    for number, fd in parked.items():
        os.dup2(fd, number)  # inheritable, as it was in the client
        os.close(fd)


def _run_in_child(argv: list[str], environment: dict[str, str], cwd: str, fds: dict[int, int]) -> None:
    """In the forked child: become the command, run the shim, never return."""
    code = 1
    try:
        _take_descriptors(fds)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(environment)
        try:
            os.chdir(cwd)
        except OSError:
            os.chdir("/")
        import sandbox_shim  # type: ignore[import-not-found]  # imported by the server already: bound here

        sandbox_shim.configure()
        sys.argv = ["sandbox_shim.py", *argv]
        code = sandbox_shim.main(argv)
    except SystemExit as exiting:
        code = exiting.code if isinstance(exiting.code, int) else 1
    except BaseException as error:
        import traceback

        traceback.print_exception(error)
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code & 0xFF)


def serve(path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import sandbox_shim  # a sibling script, as the shims import it

    sandbox_shim.preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(128)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_read, selectors.EVENT_READ, "reap")
    running: dict[int, socket.socket] = {}
    parent = os.getppid()
    print("ready", flush=True)
    while os.getppid() == parent and path.exists():  # the sandbox, or the test process, is gone: so are we
        for key, _ in selector.select(timeout=_ORPHAN_CHECK_SECONDS):
            if key.data == "accept":
                connection, _ = listener.accept()
                try:
                    argv, environment, cwd, fds = _read_request(connection)
                except (ConnectionError, OSError, ValueError, IndexError):
                    connection.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    for other in running.values():
                        other.close()
                    _run_in_child(argv, environment, cwd, fds)
                for fd in fds.values():
                    os.close(fd)
                running[pid] = connection
                selector.register(connection, selectors.EVENT_READ, pid)
            elif key.data == "reap":
                os.read(wake_read, 4096)
                _reap(running, selector)
            else:  # the client went away (or misbehaved): its command goes too
                pid = key.data
                selector.unregister(key.fileobj)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)


def _reap(running: dict[int, socket.socket], selector: selectors.BaseSelector) -> None:
    while running:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        connection = running.pop(pid, None)
        if connection is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
        with contextlib.suppress(KeyError):
            selector.unregister(connection)
        with contextlib.suppress(OSError):
            connection.sendall(struct.pack("=i", code))
        connection.close()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
