"""The host fence against a real sshd: every script runs under the leader's epoch, and an older one is refused.

The fence (``templates/scripts/_fence.sh``) records the newest epoch in root's ``/var/lib/o4o/fence-epoch``
under a lock, refuses a script sent under an older epoch before any of it runs, records the refusal in
``/var/lib/o4o/fence-refused`` and says so with a marker the session turns into :class:`Deposed` (the
operator stops; no stage fails, no instance stalls).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from o4o_operator.errors import StageError
from o4o_operator.fencing import Deposed, Term
from o4o_operator.metrics import REGISTRY
from o4o_operator.pipeline.epoch import Epoch
from o4o_operator.providers.ssh import SshConnector, SshSession
from o4o_operator.providers.ssh_session import HostFence
from o4o_operator.rendering import render
from o4o_operator.testing import SandboxHost

OLDER, NEWER = Epoch(4100, 3), Epoch(4250, 4)
"""Two terms of one Lease: the revision of the write that won each, and its leaseTransitions."""


def fenced_connector(epoch: Epoch) -> tuple[SshConnector, Term]:
    term = Term(epoch, f"replica-{epoch}", 3600.0, renewed_at=time.monotonic())
    return SshConnector(max_sessions=4, honour_sandbox_root=True, fence=HostFence(term, render.render_fence())), term


async def open_session(connector: SshConnector, sandbox: SandboxHost) -> SshSession:
    return await connector.connect(sandbox.address, sandbox.port, sandbox.user, sandbox.private_key_pem,
                                   sandbox.host_key_fingerprint, 30)


@pytest.fixture
async def connectors() -> AsyncIterator[dict[Epoch, tuple[SshConnector, Term]]]:
    made = {epoch: fenced_connector(epoch) for epoch in (OLDER, NEWER)}
    yield made
    for connector, _term in made.values():
        await connector.close_all()


def fenced_commands() -> float:
    return REGISTRY.get_sample_value("o4o_ssh_commands_total", {"outcome": "fenced"}) or 0.0


async def test_a_newer_epoch_is_recorded_and_an_older_one_refused_before_its_script_runs(
        sandbox: SandboxHost, connectors: dict[Epoch, tuple[SshConnector, Term]]) -> None:
    newer, newer_term = connectors[NEWER]
    older, older_term = connectors[OLDER]
    lines: list[str] = []
    await (await open_session(older, sandbox)).run('touch "$O4O_ROOT/older-before"', timeout=30, log=lines.append)
    assert sandbox.path("/var/lib/o4o/fence-epoch").read_text() == "4100.3\n"
    await (await open_session(newer, sandbox)).run('touch "$O4O_ROOT/newer"', timeout=30, log=lines.append)
    assert sandbox.path("/var/lib/o4o/fence-epoch").read_text() == "4250.4\n"
    assert sandbox.path("/var/lib/o4o/fence-epoch").stat().st_mode & 0o077 == 0
    refused_before = fenced_commands()

    session = await open_session(older, sandbox)
    with pytest.raises(Deposed, match=r"the server refused epoch 4100\.3: it has seen epoch 4250\.4"):
        await session.run('touch "$O4O_ROOT/older-after"', timeout=30, log=lines.append)
    assert not sandbox.path("/older-after").exists()
    assert older_term.deposed == "the server refused epoch 4100.3: it has seen epoch 4250.4 (a newer leader)"
    assert newer_term.deposed is None
    assert fenced_commands() == refused_before + 1
    assert "Refused: this operator leads in epoch 4100.3, older than epoch 4250.4 recorded on this server" in lines
    refusals = sandbox.path("/var/lib/o4o/fence-refused").read_text().splitlines()
    assert len(refusals) == 1 and refusals[0].endswith("refused epoch 4100.3: epoch 4250.4 is recorded")
    assert sandbox.path("/var/lib/o4o/fence-epoch").read_text() == "4250.4\n"  # a refusal never lowers it

    # deposed: nothing more reaches the host, not even a script the fence would refuse
    with pytest.raises(Deposed, match="Refused to run a host script"):
        await session.run('touch "$O4O_ROOT/never"', timeout=30, log=lines.append)
    with pytest.raises(Deposed, match="Refused to write /srv/x on the host"):
        await session.upload("/srv/x", b"x", mode=0o644)
    assert len(sandbox.path("/var/lib/o4o/fence-refused").read_text().splitlines()) == 1
    assert not sandbox.path("/never").exists() and not sandbox.path("/srv/x").exists()


async def test_the_same_epoch_runs_side_by_side(sandbox: SandboxHost,
                                                connectors: dict[Epoch, tuple[SshConnector, Term]]) -> None:
    connector, term = connectors[NEWER]
    sessions = [await open_session(connector, sandbox) for _ in range(3)]
    await asyncio.gather(*(session.run(f'touch "$O4O_ROOT/ran-{index}"', timeout=30, log=lambda _line: None)
                           for index, session in enumerate(sessions)))
    assert all(sandbox.path(f"/ran-{index}").exists() for index in range(3))
    assert term.deposed is None


async def test_a_failing_script_under_the_current_epoch_is_an_ordinary_failure(
        sandbox: SandboxHost, connectors: dict[Epoch, tuple[SshConnector, Term]]) -> None:
    connector, term = connectors[NEWER]
    with pytest.raises(StageError) as caught:
        await (await open_session(connector, sandbox)).run("exit 75", timeout=30, log=lambda _line: None)
    assert caught.value.reason == "CommandFailed"  # exit 75 without the fence's marker is the script's own
    assert term.deposed is None


async def test_a_newer_epoch_stops_the_scripts_an_older_one_still_runs_there(
        sandbox: SandboxHost, connectors: dict[Epoch, tuple[SshConnector, Term]]) -> None:
    """A deposed leader's script started before the takeover (its leader frozen or killed) does not run on."""
    older, _older_term = connectors[OLDER]
    newer, _newer_term = connectors[NEWER]
    old_lines: list[str] = []
    long_running = asyncio.create_task((await open_session(older, sandbox)).run(
        'touch "$O4O_ROOT/old-started"; sleep 60; touch "$O4O_ROOT/old-finished"', timeout=120,
        log=old_lines.append))
    async with asyncio.timeout(30):
        while True:  # polling the host's file system for the script's first step
            if sandbox.path("/old-started").exists():
                break
            await asyncio.sleep(0.05)
    new_lines: list[str] = []
    await (await open_session(newer, sandbox)).run('touch "$O4O_ROOT/new-ran"', timeout=30, log=new_lines.append)
    with pytest.raises(StageError):
        async with asyncio.timeout(10):  # stopped by the fence, not by its own end a minute later
            await long_running
    assert sandbox.path("/new-ran").exists() and not sandbox.path("/old-finished").exists()
    assert any(line.startswith("Stopping process group ") and line.endswith("still running for epoch 4100.3")
               for line in new_lines), new_lines
    assert "of epoch 4100.3 for epoch 4250.4" in sandbox.path("/var/lib/o4o/fence-refused").read_text()
    assert not list(sandbox.path("/var/lib/o4o/fence-running").glob("*")) or all(
        entry.read_text().startswith("4250.4 ") for entry in sandbox.path("/var/lib/o4o/fence-running").iterdir())


async def test_after_the_lease_is_made_again_the_new_term_runs_and_the_old_one_is_refused(
        sandbox: SandboxHost) -> None:
    """The Lease deleted and made again: leaseTransitions starts at 0 there, the epoch's revision does not.

    The server first holds what an operator before this one recorded (a plain leaseTransitions, 7): any epoch of
    ours is newer. Then a term of the old Lease (its ninth) runs; the Lease is deleted and made again, and its
    first term (leaseTransitions 0, a later revision) runs there; the old Lease's term is refused from then on.
    """
    sandbox.path("/var/lib/o4o").mkdir(parents=True, exist_ok=True)
    sandbox.path("/var/lib/o4o/fence-epoch").write_text("7\n")
    old_lease = Epoch(5120, 9)
    made_again = Epoch(5342, 0)
    (old_connector, old_term), (new_connector, new_term) = fenced_connector(old_lease), fenced_connector(made_again)
    lines: list[str] = []
    try:
        await (await open_session(old_connector, sandbox)).run('touch "$O4O_ROOT/old-lease"', timeout=30,
                                                               log=lines.append)
        assert sandbox.path("/old-lease").exists()
        assert sandbox.path("/var/lib/o4o/fence-epoch").read_text() == "5120.9\n"

        await (await open_session(new_connector, sandbox)).run('touch "$O4O_ROOT/made-again"', timeout=30,
                                                               log=lines.append)
        assert sandbox.path("/made-again").exists() and new_term.deposed is None
        assert sandbox.path("/var/lib/o4o/fence-epoch").read_text() == "5342.0\n"

        with pytest.raises(Deposed, match=r"the server refused epoch 5120\.9: it has seen epoch 5342\.0"):
            await (await open_session(old_connector, sandbox)).run('touch "$O4O_ROOT/old-again"', timeout=30,
                                                                   log=lines.append)
        assert not sandbox.path("/old-again").exists() and old_term.deposed is not None
        assert sandbox.path("/var/lib/o4o/fence-refused").read_text().rstrip("\n").endswith(
            "refused epoch 5120.9: epoch 5342.0 is recorded")
    finally:
        await old_connector.close_all()
        await new_connector.close_all()
