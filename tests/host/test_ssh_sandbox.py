"""SshConnector and SshSession against a real OpenSSH server (SandboxHost)."""

from __future__ import annotations

import asyncio
import os
import pwd
import random
import re
from pathlib import Path

import asyncssh
import pytest

from o4o_operator.errors import PermanentError, TransientError
from o4o_operator.metrics import REGISTRY
from o4o_operator.providers.ssh import SshConnector, SshSession
from o4o_operator.testing import SandboxHost

CANARY = "canary-7f3a9e-secret-value"


def ssh_commands(outcome: str) -> float:
    return REGISTRY.get_sample_value("o4o_ssh_commands_total", {"outcome": outcome}) or 0.0


def process_is_gone(pid: int) -> bool:
    """Gone, or a zombie waiting to be reaped: either way it no longer runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def leftover_staging_files() -> list[Path]:
    """Uploads through sudo are staged in the login user's home; none may stay behind."""
    return list(Path(pwd.getpwuid(os.getuid()).pw_dir).glob(".o4o-upload-*"))


async def connect(connector: SshConnector, sandbox: SandboxHost, fingerprint: str | None,
                  budget: float = 30) -> SshSession:
    return await connector.connect(sandbox.address, sandbox.port, sandbox.user, sandbox.private_key_pem,
                                   fingerprint, budget)


# ---- connecting -------------------------------------------------------------------------------


async def test_session_reports_fingerprint_and_root(session: SshSession, sandbox: SandboxHost) -> None:
    assert session.host_key_fingerprint == sandbox.host_key_fingerprint
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", session.host_key_fingerprint)
    assert session.root == str(sandbox.root)


async def test_first_seen_fingerprint_is_exposed_when_none_is_pinned(
        sandbox: SandboxHost, connector: SshConnector) -> None:
    session = await connect(connector, sandbox, None)
    assert session.host_key_fingerprint == sandbox.host_key_fingerprint


async def test_mismatching_host_key_is_refused_before_authentication(
        sandbox: SandboxHost, connector: SshConnector) -> None:
    pinned = "SHA256:" + "A" * 43
    with pytest.raises(PermanentError) as caught:
        await connect(connector, sandbox, pinned)
    assert caught.value.reason == "HostKeyMismatch"
    assert pinned in caught.value.message
    assert sandbox.host_key_fingerprint in caught.value.message
    assert "Accepted publickey" not in sandbox.sshd_log()
    assert sandbox.commands() == []


async def test_a_cached_connection_is_reused_and_still_checked_against_the_pin(
        sandbox: SandboxHost, connector: SshConnector) -> None:
    first = await connect(connector, sandbox, sandbox.host_key_fingerprint)
    second = await connect(connector, sandbox, sandbox.host_key_fingerprint.removeprefix("SHA256:"))
    await first.run("true", timeout=30, log=lambda line: None)
    await second.run("true", timeout=30, log=lambda line: None)
    assert sandbox.sshd_log().count("Accepted publickey") == 1
    with pytest.raises(PermanentError, match="HostKeyMismatch"):
        await connect(connector, sandbox, "SHA256:" + "B" * 43)


async def test_another_authorised_key_can_log_in(sandbox: SandboxHost, connector: SshConnector) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519")
    sandbox.authorize(other.export_public_key("openssh").decode())
    session = await connector.connect(sandbox.address, sandbox.port, sandbox.user,
                                      other.export_private_key("openssh").decode(), None, 30)
    announced = asyncssh.import_public_key(sandbox.host_public_key_openssh).get_fingerprint("sha256")
    assert session.host_key_fingerprint == announced == sandbox.host_key_fingerprint


async def test_unreadable_private_key_is_permanent(sandbox: SandboxHost, connector: SshConnector) -> None:
    with pytest.raises(PermanentError) as caught:
        await connector.connect(sandbox.address, sandbox.port, sandbox.user, "not a key", None, 5)
    assert caught.value.reason == "InvalidSshKey"


def _stranger_key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()


async def test_a_key_the_host_refuses_is_permanent_once_the_budget_is_spent(
        sandbox: SandboxHost, connector: SshConnector) -> None:
    with pytest.raises(PermanentError) as caught:
        await connector.connect(sandbox.address, sandbox.port, sandbox.user, _stranger_key(), None, 3)
    assert caught.value.reason == "SshAuthenticationFailed"
    assert "PRIVATE KEY" not in caught.value.message


async def test_a_cached_connection_is_never_reused_with_another_key(
        sandbox: SandboxHost, connector: SshConnector) -> None:
    """A second instance naming the same host with a key the host refuses must not ride the first's session."""
    first = await connect(connector, sandbox, sandbox.host_key_fingerprint)
    await first.run("true", timeout=30, log=lambda line: None)
    with pytest.raises(PermanentError) as caught:
        await connector.connect(sandbox.address, sandbox.port, sandbox.user, _stranger_key(),
                                sandbox.host_key_fingerprint, 3)
    assert caught.value.reason == "SshAuthenticationFailed"
    await first.run("true", timeout=30, log=lambda line: None)  # the first instance's connection is untouched


async def test_each_authorised_key_logs_in_on_its_own_connection(
        sandbox: SandboxHost, connector: SshConnector) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519")
    sandbox.authorize(other.export_public_key("openssh").decode())
    await connect(connector, sandbox, sandbox.host_key_fingerprint)
    await connector.connect(sandbox.address, sandbox.port, sandbox.user,
                            other.export_private_key("openssh").decode(), sandbox.host_key_fingerprint, 30)
    await connect(connector, sandbox, sandbox.host_key_fingerprint)  # reused: same key, same pin
    assert sandbox.sshd_log().count("Accepted publickey") == 2


async def test_a_connection_opened_without_a_pin_is_not_reused_under_a_wrong_pin(
        sandbox: SandboxHost, connector: SshConnector) -> None:
    await connect(connector, sandbox, None)
    with pytest.raises(PermanentError, match="HostKeyMismatch"):
        await connect(connector, sandbox, "SHA256:" + "C" * 43)


async def test_any_of_several_pinned_fingerprints_may_match(sandbox: SandboxHost, connector: SshConnector) -> None:
    """Lightsail reports one key per algorithm: whichever is negotiated, a pin among them lets it in."""
    others = ["SHA256:" + "D" * 43, "SHA256:" + "E" * 43]
    session = await connector.connect(sandbox.address, sandbox.port, sandbox.user, sandbox.private_key_pem,
                                      [others[0], sandbox.host_key_fingerprint, others[1]], 30)
    assert session.host_key_fingerprint == sandbox.host_key_fingerprint
    with pytest.raises(PermanentError, match="HostKeyMismatch") as caught:
        await connector.connect(sandbox.address, sandbox.port, sandbox.user, sandbox.private_key_pem, others, 30)
    assert all(other in caught.value.message for other in others)


async def test_nobody_listening_is_transient_once_the_budget_is_spent(
        sandbox: SandboxHost, connector: SshConnector) -> None:
    sandbox.stop()
    with pytest.raises(TransientError) as caught:
        await connect(connector, sandbox, None, budget=1)
    assert caught.value.reason == "HostUnreachable"


async def test_connect_waits_for_a_booting_server(sandbox: SandboxHost, connector: SshConnector) -> None:
    sandbox.stop()
    connecting = asyncio.create_task(connect(connector, sandbox, sandbox.host_key_fingerprint, budget=60))
    await asyncio.to_thread(sandbox.start)
    session = await connecting
    result = await session.run("echo up", timeout=30, log=lambda line: None)
    assert result.tail == ("up",)


async def test_reconnects_after_sshd_restarts(sandbox: SandboxHost, connector: SshConnector) -> None:
    session = await connect(connector, sandbox, sandbox.host_key_fingerprint)
    await session.run("true", timeout=30, log=lambda line: None)
    sandbox.restart()
    disconnected = ssh_commands("disconnected")
    with pytest.raises(TransientError) as caught:
        await session.run("true", timeout=30, log=lambda line: None)
    assert caught.value.reason == "ConnectionLost"
    assert ssh_commands("disconnected") == disconnected + 1
    again = await connect(connector, sandbox, sandbox.host_key_fingerprint)
    assert (await again.run("echo again", timeout=30, log=lambda line: None)).tail == ("again",)


@pytest.mark.skipif(os.getuid() != 0, reason="binding port 22 needs root")
async def test_a_sandbox_can_listen_on_port_22_of_its_own_loopback_address(connector: SshConnector) -> None:
    address = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    with SandboxHost(address=address, port=22) as sandbox:
        session = await connector.connect(address, 22, sandbox.user, sandbox.private_key_pem,
                                          sandbox.host_key_fingerprint, 30)
        assert (await session.run("echo on-22", timeout=30, log=lambda line: None)).tail == ("on-22",)


async def test_through_sudo_scripts_uploads_and_timeouts_still_work(sandbox: SandboxHost) -> None:
    connector = SshConnector(use_sudo=True, honour_sandbox_root=True)
    try:
        session = await connect(connector, sandbox, sandbox.host_key_fingerprint)
        lines: list[str] = []
        await session.run('echo "root=$O4O_ROOT"', timeout=30, log=lines.append)
        assert lines == [f"root={sandbox.root}"]
        await session.upload("/srv/o4o/shop/shared/.env", b"A='b'\n", mode=0o600, owner="nobody")
        uploaded = sandbox.path("/srv/o4o/shop/shared/.env")
        assert uploaded.read_bytes() == b"A='b'\n"
        assert uploaded.stat().st_mode & 0o7777 == 0o600
        # The owner wrote it (the shim runs everything as root; tests/host/test_real_users.py has real users)
        assert any(call.args[:3] == ("-n", "runuser", "-u") for call in sandbox.commands("sudo"))
        assert [call.args[:3] for call in sandbox.commands("runuser")] == [("-u", "nobody", "--")]
        assert leftover_staging_files() == []
        lines.clear()
        with pytest.raises(TransientError, match="CommandTimedOut"):
            await session.run('sleep 600 &\necho "child $!"\nwait', timeout=2, log=lines.append)
        assert process_is_gone(int(lines[0].split()[1]))
        assert any(call.args[:1] == ("-n",) for call in sandbox.commands("sudo"))
    finally:
        await connector.close_all()


async def test_through_sudo_the_logins_proxy_settings_reach_the_script_and_nothing_else_does() -> None:
    """As on a server whose /etc/environment names a proxy: sudo resets the environment, the proxy survives."""
    login = {"https_proxy": "http://proxy.example:3128", "no_proxy": "localhost,127.0.0.1",
             "SOMETHING_ELSE": "dropped by sudo"}
    connector = SshConnector(use_sudo=True, honour_sandbox_root=True)
    with SandboxHost(login_environment=login) as sandbox:
        try:
            session = await connect(connector, sandbox, sandbox.host_key_fingerprint)
            lines: list[str] = []
            await session.run('echo "$https_proxy|$no_proxy|${HTTP_PROXY-unset}|${SOMETHING_ELSE-unset}"',
                              timeout=30, log=lines.append)
            assert lines == ["http://proxy.example:3128|localhost,127.0.0.1|unset|unset"]
        finally:
            await connector.close_all()


# ---- running --------------------------------------------------------------------------------


async def test_output_streams_while_the_command_runs(session: SshSession, sandbox: SandboxHost) -> None:
    gate = sandbox.root / "gate"
    os.mkfifo(gate)
    first_line_seen = asyncio.Event()
    lines: list[str] = []

    def sink(line: str) -> None:
        lines.append(line)
        if line == "first":
            first_line_seen.set()

    # The FIFO is open (read-write never blocks on Linux) before "first" is printed.
    script = 'exec 3<>"$O4O_ROOT/gate"\necho first\nread -r word <&3\necho "second $word"\n'
    running = asyncio.create_task(session.run(script, timeout=60, log=sink))
    await first_line_seen.wait()
    assert not running.done()
    assert lines == ["first"]
    descriptor = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)  # the script holds the FIFO open
    os.write(descriptor, b"released\n")
    os.close(descriptor)
    result = await running
    assert result.exit_status == 0
    assert lines == ["first", "second released"]


async def test_stdout_and_stderr_both_reach_the_log(session: SshSession) -> None:
    lines: list[str] = []
    await session.run("echo out\necho err >&2", timeout=30, log=lines.append)
    assert sorted(lines) == ["err", "out"]


async def test_sessions_have_a_home_of_their_own_so_the_machines_bashrc_never_runs(
        session: SshSession, sandbox: SandboxHost) -> None:
    lines: list[str] = []
    await session.run('echo "home=$HOME"', timeout=30, log=lines.append)
    assert lines == [f"home={sandbox.home}"]
    assert not (sandbox.home / ".bashrc").exists()


async def test_result_markers_come_back_in_the_command_result(session: SshSession) -> None:
    lines: list[str] = []
    script = "echo ::o4o::result commit=abc\necho working\necho ::o4o::result commit=def\necho ::o4o::result n=1"
    result = await session.run(script, timeout=30, log=lines.append)
    assert dict(result.results) == {"commit": "def", "n": "1"}
    assert "working" in lines


async def test_commands_in_the_script_cannot_read_the_rest_of_it(session: SshSession) -> None:
    lines: list[str] = []
    await session.run("cat\necho after-cat", timeout=30, log=lines.append)
    assert lines == ["after-cat"]


async def test_success_is_counted(session: SshSession) -> None:
    before = ssh_commands("success")
    result = await session.run("echo done", timeout=30, log=lambda line: None)
    assert result.exit_status == 0
    assert ssh_commands("success") == before + 1


async def test_non_zero_exit_is_transient_and_carries_the_last_lines(session: SshSession) -> None:
    before = ssh_commands("failure")
    script = "for i in $(seq 1 30); do echo line-$i; done\nexit 3\n"
    with pytest.raises(TransientError) as caught:
        await session.run(script, timeout=30, log=lambda line: None)
    assert caught.value.reason == "CommandFailed"
    assert "status 3" in caught.value.message
    assert "line-30" in caught.value.message
    assert "line-11" in caught.value.message
    assert "line-10\n" not in caught.value.message
    assert ssh_commands("failure") == before + 1


async def test_sysexits_status_is_permanent(session: SshSession) -> None:
    with pytest.raises(PermanentError) as caught:
        await session.run("echo bad input\nexit 65", timeout=30, log=lambda line: None)
    assert caught.value.reason == "CommandFailed"


async def test_marker_lines_name_the_reason(session: SshSession) -> None:
    with pytest.raises(PermanentError) as permanent:
        await session.run("echo '::o4o::permanent reason=RolledBack Release failed'\nexit 1",
                          timeout=30, log=lambda line: None)
    assert permanent.value.reason == "RolledBack"
    assert permanent.value.message.startswith("Release failed")
    with pytest.raises(TransientError) as transient:
        await session.run("echo '::o4o::transient reason=AcmeDnsNotResolving not yet'\nexit 65",
                          timeout=30, log=lambda line: None)
    assert transient.value.reason == "AcmeDnsNotResolving"


async def test_timeout_kills_the_remote_process_group(session: SshSession) -> None:
    before = ssh_commands("timeout")
    lines: list[str] = []
    script = 'sleep 600 &\necho "child $!"\necho "shell $$"\nwait\n'
    with pytest.raises(TransientError) as caught:
        await session.run(script, timeout=2, log=lines.append)
    assert caught.value.reason == "CommandTimedOut"
    pids = [int(line.split()[1]) for line in lines]
    assert len(pids) == 2
    assert all(process_is_gone(pid) for pid in pids)
    assert ssh_commands("timeout") == before + 1


async def test_cancelling_a_run_kills_the_remote_process_group(session: SshSession) -> None:
    child_started = asyncio.Event()
    lines: list[str] = []

    def sink(line: str) -> None:
        lines.append(line)
        child_started.set()

    running = asyncio.create_task(session.run('sleep 600 &\necho "child $!"\nwait', timeout=120, log=sink))
    await child_started.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert process_is_gone(int(lines[0].split()[1]))


async def test_dropped_connection_mid_command_is_transient(session: SshSession, sandbox: SandboxHost) -> None:
    started = asyncio.Event()
    running = asyncio.create_task(session.run(
        "echo started\nsleep 600", timeout=120, log=lambda line: started.set()))
    await started.wait()
    assert sandbox.kill_sessions() > 0
    assert sandbox.session_processes() == set()
    with pytest.raises(TransientError) as caught:
        await running
    assert caught.value.reason == "ConnectionLost"


async def test_env_values_stay_off_command_lines_and_out_of_the_log(
        session: SshSession, sandbox: SandboxHost) -> None:
    lines: list[str] = []
    script = 'ps -eo args > "$O4O_ROOT/ps.txt"\necho "token is $O4O_GIT_TOKEN"\n'
    await session.run(script, timeout=30, log=lines.append, env={"O4O_GIT_TOKEN": CANARY})
    assert CANARY not in (sandbox.root / "ps.txt").read_text()
    assert "bash -s" in (sandbox.root / "ps.txt").read_text()
    assert lines == ["token is [REDACTED]"]


async def test_public_env_is_exported_and_not_redacted_while_env_still_is(
        session: SshSession, sandbox: SandboxHost) -> None:
    lines: list[str] = []
    script = 'ps -eo args > "$O4O_ROOT/ps.txt"\necho "database $O4O_DB_NAME with $O4O_DB_PASSWORD"\n'
    await session.run(script, timeout=30, log=lines.append, env={"O4O_DB_PASSWORD": CANARY},
                      public_env={"O4O_DB_NAME": "o4o_shop"})
    assert "o4o_shop" not in (sandbox.root / "ps.txt").read_text()  # on stdin, like env
    assert lines == ["database o4o_shop with [REDACTED]"]


# ---- uploading -------------------------------------------------------------------------------


async def test_upload_sets_the_mode_under_the_root_prefix(session: SshSession, sandbox: SandboxHost) -> None:
    await session.upload("/srv/o4o/shop/shared/.env", b"SECRET='x'\n", mode=0o600)
    await session.upload("/etc/nginx/sites-available/shop.conf", b"server {}\n", mode=0o644)
    env_file = sandbox.path("/srv/o4o/shop/shared/.env")
    assert env_file.read_bytes() == b"SECRET='x'\n"
    assert env_file.stat().st_mode & 0o7777 == 0o600
    assert sandbox.path("/etc/nginx/sites-available/shop.conf").stat().st_mode & 0o7777 == 0o644
    assert sorted(p.name for p in env_file.parent.iterdir()) == [".env"]


async def test_upload_replaces_the_file_atomically(session: SshSession, sandbox: SandboxHost) -> None:
    await session.upload("/srv/o4o/shop/shared/ecosystem.config.js", b"old" * 1000, mode=0o644)
    target = sandbox.path("/srv/o4o/shop/shared/ecosystem.config.js")
    with target.open("rb") as reader_of_the_old_file:
        old_inode = os.fstat(reader_of_the_old_file.fileno()).st_ino
        await session.upload("/srv/o4o/shop/shared/ecosystem.config.js", b"new" * 1000, mode=0o644)
        assert reader_of_the_old_file.read() == b"old" * 1000
    assert target.read_bytes() == b"new" * 1000
    assert target.stat().st_ino != old_inode


async def test_upload_lets_the_owner_write_the_file(session: SshSession, sandbox: SandboxHost) -> None:
    """Root only starts ``runuser``; the shim runs it as root, so real ownership is in test_real_users.py."""
    await session.upload("/srv/o4o/shop/shared/.env", b"A='b'\n", mode=0o600, owner="nobody")
    env_file = sandbox.path("/srv/o4o/shop/shared/.env")
    assert env_file.read_bytes() == b"A='b'\n"
    assert env_file.stat().st_mode & 0o7777 == 0o600
    assert sorted(p.name for p in env_file.parent.iterdir()) == [".env"]
    (call,) = sandbox.commands("runuser")
    assert call.args[:5] == ("-u", "nobody", "--", "bash", "-c")
    assert str(env_file) in call.args
    assert sandbox.commands("chown") == []
    with pytest.raises(ValueError, match="user names"):
        await session.upload("/srv/o4o/shop/shared/.env", b"", mode=0o600, owner="root;id")


async def test_upload_refuses_relative_paths(session: SshSession) -> None:
    with pytest.raises(ValueError, match="logical absolute"):
        await session.upload("srv/o4o/x", b"", mode=0o644)


@pytest.mark.parametrize("use_sudo", [False, True], ids=["as-login-user", "through-sudo"])
async def test_the_shipped_connector_ignores_a_hosts_o4o_root(sandbox: SandboxHost, use_sudo: bool) -> None:
    """Issue 13.13: the sandbox root is a test hook. The connector the shipped operator makes (no
    ``honour_sandbox_root``) neither asks the host for it nor lets a host's environment pass it to scripts."""
    connector = SshConnector(use_sudo=use_sudo)
    try:
        session = await connect(connector, sandbox, sandbox.host_key_fingerprint)
        lines: list[str] = []
        await session.run('echo "root=${O4O_ROOT-unset}"', timeout=30, log=lines.append)
        assert (session.root, lines) == ("", ["root=unset"])
    finally:
        await connector.close_all()
