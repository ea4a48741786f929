"""The operator end to end: real apiserver, local Lightsail, real sshd sandboxes, real scripts.

Not here, because a table or another tier proves them already: which stages a spec change re-runs
(tests/pipeline/test_decisions.py, row by row; apps added and removed through the API in the real tier's
tests/real/test_o4o_contract.py) and that deletion leaves no cloud resource (R6 deletes during each stage,
R1 after twenty kills, and tests/e2e/test_inventory.py after a DNS move).
"""

from __future__ import annotations

import json
import time

from e2e_support import conditions, status_writes, wait_for

from o4o_operator.pipeline.stages import STAGES
from o4o_operator.rendering.host_context import instance_slug
from o4o_operator.testing.world import LocalWorld


def test_sample_reaches_ready_with_a_truthful_status(world: LocalWorld, namespace: str) -> None:
    world.create_secrets(namespace, env={"JWT_SECRET": "canary-jwt-5f1e"})
    writes_before = status_writes(world)
    applied = time.monotonic()
    world.apply(world.manifest("shop", namespace))
    obj = wait_for(world, namespace, "shop", "condition=Ready")
    print(f"apply to Ready: {time.monotonic() - applied:.1f}s")  # a figure for the record, never asserted
    status = obj["status"]
    assert [s["name"] for s in status["stages"]] == [s.name.value for s in STAGES]
    assert {s["state"] for s in status["stages"]} == {"Succeeded"}
    assert status["server"]["ipAddress"].startswith("127.77.")
    assert status["source"]["commit"] == world.commit
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["phase"] == "Ready" and status["stageProgress"] == f"{len(STAGES)}/{len(STAGES)}"
    assert status["logTail"]
    assert all(c["reason"] and c["observedGeneration"] == obj["metadata"]["generation"]
               for c in status["conditions"])
    assert conditions(obj)["Reconciling"]["status"] == "False"
    writes = status_writes(world) - writes_before
    print(f"status writes to Ready: {writes} ({writes / len(STAGES):.2f} per stage)")
    assert writes <= 2 * len(STAGES) + 2, writes
    text = json.dumps(obj) + world.control_plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    text += world.control_plane.kubectl("get", "cm", "shop-log", "-n", namespace, "-o", "json").stdout
    assert "canary-jwt-5f1e" not in text
    env_path = f"/srv/o4o/{instance_slug(namespace, 'shop')}/shared/.env"
    env_file = world.fleet.host_for(status["server"]["name"]).path(env_path)
    assert "canary-jwt-5f1e" in env_file.read_text()
    assert env_file.stat().st_mode & 0o777 == 0o600


def test_pause_stops_work_and_says_so(world: LocalWorld, namespace: str) -> None:
    world.create_secrets(namespace)
    world.apply(world.manifest("paused", namespace, paused=True))
    reconciling_reason = 'jsonpath={.status.conditions[?(@.type=="Reconciling")].reason}=Paused'
    obj = wait_for(world, namespace, "paused", reconciling_reason)
    assert conditions(obj)["Reconciling"]["status"] == "False"
    assert not [s for s in obj["status"].get("stages", []) if s["state"] != "Pending"]
    assert not world.lightsail.resources_for_uid(obj["metadata"]["uid"])
    world.control_plane.kubectl("patch", "di", "paused", "-n", namespace, "--type=merge",
                                "-p", '{"spec": {"paused": false}}')
    wait_for(world, namespace, "paused", "condition=Ready")


def test_killing_the_operator_during_provision_still_gives_one_server(world: LocalWorld, namespace: str) -> None:
    world.create_secrets(namespace)
    world.lightsail.state.pending_polls = 10_000  # the server stays pending until we let it run
    try:
        world.apply(world.manifest("crash", namespace))
        obj = wait_for(world, namespace, "crash", "jsonpath={.status.server.createPending}=true")
        assert world.operator is not None
        world.operator.restart()  # SIGKILL mid-provision, then start again
    finally:
        world.lightsail.state.pending_polls = 1
    obj = wait_for(world, namespace, "crash", "condition=Ready")
    servers = [s for s in world.lightsail.resources_for_uid(obj["metadata"]["uid"]) if s.startswith("Instance/")]
    assert len(servers) == 1, servers
    assert world.lightsail.request_log.count("CreateInstances") >= 1
