"""What happens on an open SSH connection: running scripts, uploading files, and tunnels to the API.

Owns: streaming of command output, local port forwarding to the instance's API on the host's
loopback, remote timeouts that really kill the remote process group, mapping of exit statuses and marker lines to
Transient/PermanentError, atomic uploads (written by their owner through
``runuser`` when they have one, never chowned by root), the ``O4O_ROOT`` path
prefix, and ``sudo`` for a login user other than root. :mod:`o4o_operator.providers.ssh`
opens and caches the connections.

With a :class:`HostFence` (leader election on), every script runs behind the host fence under the term's epoch,
and nothing is run, uploaded or tunnelled once the term is over (:class:`o4o_operator.fencing.Deposed`); a script
the host refused for an older epoch deposes the term (the operator stops; the instance is not stalled).

Must not: put a secret on a remote command line (scripts and ``env`` travel
on stdin), log or raise a secret value (output is redacted with the ``env``
values before it reaches the sink), or decide what to run: callers bring
rendered scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import posixpath
import re
import secrets
import shlex
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import asyncssh

from o4o_operator import metrics
from o4o_operator.errors import PermanentError, StageError, TransientError
from o4o_operator.fencing import Deposed, Term
from o4o_operator.markers import FENCED_EXIT_STATUS, parse_failure, parse_results, refusal_reason
from o4o_operator.providers.protocols import CommandResult, LogSink
from o4o_operator.redaction import Redactor

TAIL_LINES = 20
PERMANENT_EXIT_STATUSES = range(64, 79)
"""sysexits.h: a script exiting with one of these says retrying cannot help."""

PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
"""The standard proxy settings, carried across ``sudo`` from the login's environment when set there."""
_PID_MARKER = "::o4o::pid "
_REMOTE_GRACE_SECONDS = 30
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
Key = tuple[str, int, str, str, tuple[str, ...]]
"""A cached connection's identity: (host, port, user, client key fingerprint, pinned host key fingerprints)."""


@dataclasses.dataclass(frozen=True)
class HostFence:
    """The leader's term, and the fence script (``templates/scripts/_fence.sh``) run before every script."""

    term: Term
    script: str


@dataclasses.dataclass
class Connection:
    """An open asyncssh connection and what was learnt while opening it."""

    key: Key
    conn: Any
    client: Any
    """The ``asyncssh.SSHClient``; its ``lost`` flag turns true when the connection drops."""
    fingerprint: str
    root: str
    elevate: bool
    """Run scripts and moves into place through ``sudo -n`` (a login user other than root)."""
    honours_root: bool = False
    """Pass the host's ``O4O_ROOT`` to scripts (test peers only); otherwise it is cleared for them."""
    api_stand_in: str = ""
    """``address:port`` where a sandbox host serves its stand-in for the instances' APIs (test peers only):
    tunnels lead there instead of to the API's port on the host's loopback."""

    def alive(self) -> bool:
        return not self.client.lost and not self.conn.is_closed()


@dataclasses.dataclass
class _RunState:
    redact: Redactor
    log: LogSink
    tail: deque[str] = dataclasses.field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    process_group: int | None = None
    failure_line: str | None = None
    results: dict[str, str] = dataclasses.field(default_factory=dict)
    fenced: str | None = None
    """The host fence's refusal, as a sentence."""

    def on_line(self, line: str) -> None:
        if self.fenced is None:
            self.fenced = refusal_reason(line)
        if line.startswith(_PID_MARKER) and self.process_group is None:
            with contextlib.suppress(ValueError):
                group = int(line[len(_PID_MARKER):])
                self.process_group = group if group > 1 else None
            return
        clean = self.redact(line)
        self.tail.append(clean)
        if parse_failure(clean):
            self.failure_line = clean
        self.results.update(parse_results([clean]))
        self.log(clean)


def _command_line(timeout: float, elevate: bool, honours_root: bool = False) -> str:
    """Runs ``bash -s`` under a remote ``timeout`` as a safety net should the connection drop.

    Unless the sandbox root is honoured, ``O4O_ROOT`` is removed from the script's environment, so
    whatever a host's login environment holds, scripts work on the real paths.
    """
    runner = f"timeout --kill-after=10 {math.ceil(timeout) + _REMOTE_GRACE_SECONDS} bash -s"
    root = 'env "O4O_ROOT=${O4O_ROOT:-}"' if honours_root else "env -u O4O_ROOT"
    if elevate:
        # sudo resets the environment; the login's proxy settings (/etc/environment on a server behind
        # one) must still reach apt, curl, npm and certbot, whatever sudoers keeps.
        proxies = " ".join(f'${{{name}+"{name}=${name}"}}' for name in PROXY_VARIABLES)
        return f"exec sudo -n {root} {proxies} {runner}"
    return f"exec {runner}" if honours_root else f"exec {root} {runner}"


def _wrap(script: str, env: Mapping[str, str], fence: HostFence | None = None) -> str:
    """The stdin for ``bash -s``: report the process group, detach stdin, export env, pass the fence (with
    ``fence``: ``O4O_EPOCH`` exported, its script run first), run the script.

    The braces make bash read the whole script before running any of it, so no
    command in it can swallow the rest of the script from stdin.
    """
    lines = ["{", f"printf '{_PID_MARKER}%s\\n' \"$PPID\"", "exec </dev/null"]
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid environment variable name")
        lines.append(f"export {name}={shlex.quote(value)}")
    if fence is not None:
        lines += [f"export O4O_EPOCH={fence.term.epoch.token}", fence.script.rstrip("\n")]
    return "\n".join([*lines, script.rstrip("\n"), "}", ""])


def _kill_script(process_group: int) -> str:
    group = f"-{process_group}"
    alive = f"ps -e -o pgid=,stat= | awk -v g={process_group} '$1 == g && $2 !~ /^Z/' | grep -q ."
    return "\n".join([
        f"kill -TERM -- {group} 2>/dev/null || exit 0",
        f"for _ in $(seq 30); do {alive} || exit 0; sleep 0.1; done",
        f"kill -KILL -- {group} 2>/dev/null || true",
        "",
    ])


def _failure(exit_status: int | None, signal: str | None, state: _RunState) -> StageError:
    tail = "\n".join(state.tail)
    marker = parse_failure(state.failure_line) if state.failure_line else None
    if marker:
        message = f"{marker.message or marker.reason}\nLast lines:\n{tail}"
        return (PermanentError if marker.permanent else TransientError)(marker.reason, message)
    summary = f"The script was killed by signal {signal}" if signal else \
        f"The script exited with status {exit_status}"
    message = f"{summary}\nLast lines:\n{tail}"
    if exit_status in PERMANENT_EXIT_STATUSES:
        return PermanentError("CommandFailed", message)
    return TransientError("CommandFailed", message)


async def _pump(stream: Any, on_line: Callable[[str], None]) -> None:
    while True:
        line = await stream.readline()
        if not line:
            return
        on_line(line.rstrip("\r\n"))


class SshSession:
    """One logical session on a shared, cached connection (``close`` leaves the connection open)."""

    def __init__(self, connection: Connection, sessions: asyncio.Semaphore,
                 forget: Callable[[Connection], None], fence: HostFence | None = None) -> None:
        self._connection = connection
        self._sessions = sessions
        self._forget = forget
        self._fence = fence

    def _check_term(self, what: str) -> None:
        """Refuse (:class:`Deposed`) once this replica's term is over: nothing more reaches the host."""
        if self._fence is not None:
            self._fence.term.check(what)

    @property
    def host_key_fingerprint(self) -> str:
        return self._connection.fingerprint

    @property
    def root(self) -> str:
        """The host's ``O4O_ROOT`` when honoured (test peers), else empty; prefixed to every uploaded path."""
        return self._connection.root

    def _lost(self, exc: BaseException) -> TransientError:
        self._forget(self._connection)
        host, port = self._connection.key[:2]
        return TransientError("ConnectionLost",
                              f"The SSH connection to {host}:{port} was lost ({type(exc).__name__})")

    async def run(self, script: str, *, timeout: float, log: LogSink,  # noqa: ASYNC109 - the protocol's
                  env: Mapping[str, str] | None = None,
                  public_env: Mapping[str, str] | None = None) -> CommandResult:
        """Run a bash script (on stdin, ``public_env`` and ``env`` exported first), streaming its output lines
        to ``log`` with ``env``'s values redacted."""
        env = dict(env or {})
        state = _RunState(Redactor(env.values()), log)
        stdin = _wrap(script, {**(public_env or {}), **env}, self._fence)
        async with self._sessions:
            self._check_term("run a host script")
            try:
                process = await self._connection.conn.create_process(
                    _command_line(timeout, self._connection.elevate, self._connection.honours_root),
                    encoding="utf-8", errors="replace")
            except (asyncssh.Error, OSError) as exc:
                metrics.SSH_COMMANDS.labels(outcome="disconnected").inc()
                raise self._lost(exc) from None
            try:
                async with asyncio.timeout(timeout):
                    process.stdin.write(stdin)
                    process.stdin.write_eof()
                    await asyncio.gather(_pump(process.stdout, state.on_line),
                                         _pump(process.stderr, state.on_line))
                    await process.wait_closed()
            except TimeoutError:
                await self._kill(process, state.process_group)
                metrics.SSH_COMMANDS.labels(outcome="timeout").inc()
                raise TransientError("CommandTimedOut",
                                     f"The script did not finish within {timeout:g} seconds and was stopped."
                                     "\nLast lines:\n" + "\n".join(state.tail)) from None
            except (asyncssh.Error, OSError) as exc:
                metrics.SSH_COMMANDS.labels(outcome="disconnected").inc()
                raise self._lost(exc) from None
            except BaseException:  # cancelled, or the sink failed: the remote script must not run on
                await asyncio.shield(self._kill(process, state.process_group))
                raise
        if (process.exit_status is None and process.exit_signal is None) or not self._connection.alive():
            metrics.SSH_COMMANDS.labels(outcome="disconnected").inc()
            raise self._lost(ConnectionError("no exit status"))
        if state.fenced is not None and process.exit_status == FENCED_EXIT_STATUS and self._fence is not None:
            metrics.SSH_COMMANDS.labels(outcome="fenced").inc()
            self._fence.term.depose(state.fenced)
            raise Deposed(f"Stopped: {state.fenced}")
        if process.exit_status == 0:
            metrics.SSH_COMMANDS.labels(outcome="success").inc()
            return CommandResult(0, tuple(state.tail), state.results)
        metrics.SSH_COMMANDS.labels(outcome="failure").inc()
        signal = process.exit_signal[0] if process.exit_signal else None
        raise _failure(process.exit_status, signal, state)

    @contextlib.asynccontextmanager
    async def tunnel(self, port: int) -> AsyncIterator[str]:
        """``http://127.0.0.1:<local port>``: a local port forwarded over this connection to ``127.0.0.1:port``
        on the host (where the instance's API listens), for as long as the context lasts."""
        host, target = "127.0.0.1", port
        if self._connection.api_stand_in:
            host, _, stand_in = self._connection.api_stand_in.rpartition(":")
            target = int(stand_in)
        self._check_term("open a tunnel to the instance's API")
        try:
            listener = await self._connection.conn.forward_local_port("127.0.0.1", 0, host, target)
        except (asyncssh.Error, OSError) as exc:
            raise self._lost(exc) from None
        try:
            yield f"http://127.0.0.1:{listener.get_port()}"
        finally:
            listener.close()
            await listener.wait_closed()

    async def _kill(self, process: Any, process_group: int | None) -> None:
        """Stop the remote process group for good, then close the channel."""
        try:
            if process_group is not None:
                prefix = "sudo -n " if self._connection.elevate else ""
                await asyncio.wait_for(self._connection.conn.run(
                    f"{prefix}bash -s", input=_kill_script(process_group), check=False), timeout=15)
            else:
                process.send_signal("KILL")
        except (asyncssh.Error, OSError, TimeoutError):
            pass  # the remote ``timeout`` wrapper is the safety net
        finally:
            process.close()

    def _remote_path(self, path: str) -> str:
        if not path.startswith("/") or "\n" in path:
            raise ValueError(f"upload paths are logical absolute paths, not {path!r}")
        return self._connection.root + posixpath.normpath(path)

    async def upload(self, path: str, content: bytes, *, mode: int, owner: str | None = None) -> None:
        """Write atomically with ``mode``; with ``owner``, the owner writes it (see :func:`owner_upload_command`)."""
        target = self._remote_path(path)
        async with self._sessions:
            self._check_term(f"write {path} on the host")
            try:
                if owner is not None:
                    await self._upload_as_owner(target, content, mode, owner)
                    return
                async with self._connection.conn.start_sftp_client() as sftp:
                    if self._connection.elevate:
                        await self._upload_elevated(sftp, target, content, mode)
                    else:
                        await self._upload_direct(sftp, target, content, mode)
            except asyncssh.SFTPError as exc:
                raise TransientError("UploadFailed", f"Could not write {path}: {exc.reason}") from None
            except (asyncssh.Error, OSError) as exc:
                raise self._lost(exc) from None

    async def _upload_as_owner(self, target: str, content: bytes, mode: int, owner: str) -> None:
        prefix = "sudo -n " if self._connection.elevate else ""
        command = prefix + owner_upload_command(target, mode, owner, secrets.token_hex(6))
        result = await self._connection.conn.run(command, input=content, encoding=None, check=False, timeout=60)
        if result.exit_status != 0:
            stderr = bytes(result.stderr or b"").decode("utf-8", "replace").strip()[:300]
            raise TransientError("UploadFailed", f"Could not write {target} as {owner}: {stderr}")

    async def _upload_direct(self, sftp: Any, target: str, content: bytes, mode: int) -> None:
        directory, name = posixpath.split(target)
        temporary = f"{directory}/.{name}.tmp-{secrets.token_hex(6)}"
        await sftp.makedirs(directory, exist_ok=True)
        try:
            async with sftp.open(temporary, "wb", asyncssh.SFTPAttrs(permissions=0o600)) as handle:
                await handle.write(content)
                with contextlib.suppress(asyncssh.SFTPError):
                    await handle.fsync()
            await sftp.chmod(temporary, mode)
            await sftp.posix_rename(temporary, target)
        except BaseException:
            with contextlib.suppress(asyncssh.Error, OSError):
                await sftp.remove(temporary)
            raise

    async def _upload_elevated(self, sftp: Any, target: str, content: bytes, mode: int) -> None:
        """Stage in the login user's home (mode 0600), then move into place as root."""
        staging = await sftp.realpath(f".o4o-upload-{secrets.token_hex(6)}")
        directory, name = posixpath.split(target)
        temporary = f"{directory}/.{name}.tmp-{secrets.token_hex(6)}"
        try:
            async with sftp.open(staging, "wb", asyncssh.SFTPAttrs(permissions=0o600)) as handle:
                await handle.write(content)
            q = shlex.quote
            script = "\n".join([
                "set -euo pipefail", "umask 077", f"install -d -m 0755 {q(directory)}",
                f"cat {q(staging)} > {q(temporary)}", f"chmod {mode:o} {q(temporary)}",
                f"mv -Tf {q(temporary)} {q(target)}", "",
            ])
            await self._shell(script, f"Could not move the upload into {target}")
        finally:
            with contextlib.suppress(asyncssh.Error, OSError):
                await sftp.remove(staging)

    async def _shell(self, script: str, failure: str) -> None:
        prefix = "sudo -n " if self._connection.elevate else ""
        result = await self._connection.conn.run(f"{prefix}bash -s", input=script, check=False, timeout=60)
        if result.exit_status != 0:
            raise TransientError("UploadFailed", f"{failure}: {str(result.stderr or '').strip()[:300]}")

    async def close(self) -> None:
        """Release this session; the connection stays cached for the next one (see ``close_all``)."""


_OWNER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_OWNER_WRITE = "\n".join([
    "set -euo pipefail -o noclobber", "umask 077", 'target="$1" temporary="$2" mode="$3"',
    'mkdir -p -- "$(dirname -- "$target")"', "trap 'rm -f -- \"$temporary\"' EXIT",
    'cat > "$temporary"', 'chmod -- "$mode" "$temporary"', 'mv -Tf -- "$temporary" "$target"', "trap - EXIT",
])


def owner_upload_command(target: str, mode: int, owner: str, token: str) -> str:
    """The remote command (run as root) that writes stdin to ``target`` as ``owner``, atomically, with ``mode``.

    Root only starts ``runuser``: the temporary file (created exclusively), its mode and the rename are
    the owner's own doing. The file lands in a directory the owner controls, so a symlink planted there
    can only ever lead to what the owner may write anyway; root's ``chmod``/``chown`` would follow it
    to any file on the host. Only paths travel on the command line; the content arrives on stdin.
    """
    if not _OWNER.fullmatch(owner):
        raise ValueError(f"upload owners are user names, not {owner!r}")
    directory, name = posixpath.split(target)
    q = shlex.quote
    return (f"runuser -u {q(owner)} -- bash -c {q(_OWNER_WRITE)} o4o-upload {q(target)} "
            f"{q(f'{directory}/.{name}.tmp-{token}')} {mode:o}")
