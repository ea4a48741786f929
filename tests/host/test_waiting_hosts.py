"""The waiting hosts (bench P1's stand-ins) against the operator's own SSH connector: one host runs a script
for real on a sandbox and records it, another replays it (its output, exit and duration plus the latency of
every shimmed command) without running anything; the instance API through their tunnels; uploads."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncssh
import pytest

from o4o_operator.errors import PermanentError, TransientError
from o4o_operator.providers.ssh import SshConnector, SshSession
from o4o_operator.rendering.env_values import database_identifier
from o4o_operator.rendering.host_context import instance_user
from o4o_operator.testing.replay import renamed
from o4o_operator.testing.waiting_hosts import WaitingFleet, WaitingHost, instance_renames

LATENCY = 0.4
SCRIPT = """#!/usr/bin/env bash
# Stage "probe": a test of alpha on its host
set -euo pipefail
systemctl is-active nginx >/dev/null || true
echo "alpha: $(cat "$O4O_ROOT/mark" 2>/dev/null || echo unmarked)"
printf '::o4o::result name=%s\\n' alpha
"""
FAILING = """#!/usr/bin/env bash
# Stage "failing": a test of alpha
printf '::o4o::permanent reason=%s %s\\n' SpecInvalid "alpha is wrong"
exit 1
"""


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[WaitingFleet]:
    fleet = WaitingFleet(tmp_path, subnet=79, command_latency_seconds=LATENCY, namespace="team", recorder="alpha")
    try:
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture
async def connector() -> AsyncIterator[SshConnector]:
    connector = SshConnector(max_sessions=4, honour_sandbox_root=True)
    yield connector
    await connector.close_all()


async def connect(connector: SshConnector, fleet: WaitingFleet, host: WaitingHost) -> SshSession:
    fingerprint = asyncssh.import_public_key(host.host_public_key_openssh).get_fingerprint("sha256")
    return await connector.connect(host.address, host.port, "root", fleet.private_key_pem, fingerprint, timeout=30)


async def run(session: SshSession, script: str) -> tuple[list[str], dict[str, str], float]:
    lines = Lines()
    started = time.monotonic()
    result = await session.run(script, timeout=60, log=lines, env={"O4O_TOKEN": "s3cret-value"})
    return lines.lines, dict(result.results), time.monotonic() - started


async def test_a_recorded_script_is_replayed_with_its_output_exit_and_waits_without_running(
        fleet: WaitingFleet, connector: SshConnector) -> None:
    recorder, replayer = fleet.host_for(fleet.name_instance("alpha")), fleet.host_for(fleet.name_instance("beta"))
    (recorder.root / "mark").write_text("marked")
    recorded_lines, recorded_results, _ = await run(await connect(connector, fleet, recorder), SCRIPT)
    assert recorded_results == {"name": "alpha"}
    assert "alpha: marked" in recorded_lines
    shimmed = len((recorder.root / ".shim-log").read_text().splitlines())
    assert shimmed >= 1  # systemctl is shimmed: it ran, without waiting, on the recording sandbox

    replay = await connect(connector, fleet, replayer)
    lines, results, seconds = await run(replay, SCRIPT.replace("alpha", "beta"))
    assert results == {"name": "beta"}
    assert "beta: marked" in lines  # what the recording printed, of its own instance; nothing read here
    assert seconds >= shimmed * LATENCY
    assert not (replayer.root / ".shim-log").exists()
    assert fleet.recorded() == {'script Stage "probe": a': 1}


async def test_a_replayed_failure_fails_the_same_way_and_an_unrecorded_script_says_so(
        fleet: WaitingFleet, connector: SshConnector) -> None:
    with pytest.raises(PermanentError) as recorded:
        await run(await connect(connector, fleet, fleet.host_for(fleet.name_instance("alpha"))), FAILING)
    replay = await connect(connector, fleet, fleet.host_for(fleet.name_instance("beta")))
    with pytest.raises(PermanentError) as replayed:
        await run(replay, FAILING.replace("alpha", "beta"))
    assert (replayed.value.reason, replayed.value.message.splitlines()[0]) == \
        (recorded.value.reason, "beta is wrong")
    with pytest.raises(TransientError, match="never recorded") as unrecorded:
        await run(replay, SCRIPT)
    assert unrecorded.value.reason == "NotRecorded"


async def test_the_api_answers_through_the_tunnel_as_recorded_and_uploads_land_in_the_hosts_root(
        fleet: WaitingFleet, connector: SshConnector) -> None:
    answers = []
    for server in (fleet.name_instance("alpha"), fleet.name_instance("beta")):
        session = await connect(connector, fleet, fleet.host_for(server))
        async with session.tunnel(3001) as base_url, aiohttp.ClientSession(trust_env=False) as http:
            for path in ("/api/v1/admin/apps/market", "/api/health"):
                async with http.get(base_url + path) as response:
                    answers.append((server, path, response.status, await response.text()))
        await session.upload("/srv/o4o/beta/.env", b"KEY=value\n", mode=0o600)
        assert (fleet.host_for(server).root / "srv/o4o/beta/.env").read_bytes() == b"KEY=value\n"
    recorded, replayed = answers[:2], answers[2:]
    assert [answer[1:] for answer in recorded] == [answer[1:] for answer in replayed]
    assert recorded[0][2] == 401 and recorded[1][2] == 200


def test_a_replay_names_its_own_instances_user_and_database_whose_names_carry_a_hash() -> None:
    def line(name: str) -> str:
        user = instance_user("team", name)
        return f"created role {database_identifier(user)} owned by {user} for {name}.example.com"

    assert renamed(line("alpha"), instance_renames("team", "alpha", "beta")) == line("beta")
    assert instance_renames("team", "alpha", "alpha") == ()
