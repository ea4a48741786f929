"""A DeploymentFleet of four sandbox members in two waves (a canary, then the rest at once).

A watch on the namespace's DeploymentInstances (fleet_watch.py) records every state the API held, in order,
and the test checks the rollout's rule on each: no member of wave 2 is pinned to the target before the
canary serves the target (``status.source.commit``), has observed its current generation and is Ready. Then a revision
whose build fails halts at the canary: the fleet is Stalled naming the member, its reason and the wave,
and no other member is pinned to it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fleet_watch import FLEET, MemberWatch, condition, members, order_violations, wait_fleet

from o4o_operator.testing.fixture_repo import commit_to_branch
from o4o_operator.testing.world import LocalWorld

MEMBERS = ("shop-0", "shop-1", "shop-2", "shop-3")
CANARY = "shop-0"
WAVES = (MEMBERS[:1], MEMBERS[1:])


def _fleet(world: LocalWorld, namespace: str, revision: str) -> dict[str, Any]:
    template = world.manifest("template", namespace, apps=())["spec"]
    del template["domain"]
    template["source"]["revision"] = revision
    return {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentFleet",
            "metadata": {"name": FLEET, "namespace": namespace},
            "spec": {"template": template,
                     "members": [{"name": name, "domain": f"{name}.{template['dns']['zone']}"} for name in MEMBERS],
                     "strategy": {"waves": [{"name": "canary", "count": 1},
                                            {"name": "rest", "percentage": 100, "maxUnavailable": 3}]}}}


@pytest.fixture
def watch(world: LocalWorld, namespace: str) -> Iterator[MemberWatch]:
    member_watch = MemberWatch(world, namespace)
    yield member_watch
    member_watch.stop()


def test_a_revision_rolls_wave_by_wave_and_a_broken_one_halts_at_the_canary(
        world: LocalWorld, namespace: str, watch: MemberWatch) -> None:
    started = time.monotonic()
    world.create_secrets(namespace)
    world.apply(_fleet(world, namespace, "main"))
    first = wait_fleet(world, namespace, "condition=Ready")
    assert first["status"]["target"]["commit"] == world.commit
    assert order_violations(watch.snapshot(), world.commit, WAVES) == []
    made = members(world, namespace)
    assert sorted(made) == list(MEMBERS)
    assert all(m["metadata"]["ownerReferences"][0]["uid"] == first["metadata"]["uid"] for m in made.values())
    created_at = time.monotonic() - started

    good = commit_to_branch(world.repository, "fleet-good", {"apps/main-site/public/extra.txt": "v2\n"}, "v2")
    world.control_plane.kubectl("patch", "dfleet", "shops", "-n", namespace, "--type=merge",
                                "-p", json.dumps({"spec": {"template": {"source": {"revision": "fleet-good"}}}}))
    wait_fleet(world, namespace, "jsonpath={.status.target.commit}=" + good)
    rolled = wait_fleet(world, namespace, "condition=Ready")
    assert [w["updated"] for w in rolled["status"]["waves"]] == [1, 3]
    assert watch.pinned(good)[0] == CANARY and len(watch.pinned(good)) == 4  # the watch saw the rollout
    assert order_violations(watch.snapshot(), good, WAVES) == []
    assert all(m["status"]["source"]["commit"] == good for m in members(world, namespace).values())
    rolled_at = time.monotonic() - started

    broken = commit_to_branch(world.repository, "fleet-broken", {"apps/api-server/package.json": json.dumps(
        {"name": "@o4o/api-server", "version": "0.0.0", "scripts": {"build": "exit 1", "build:api": "exit 1"}})},
        "broken build")
    world.control_plane.kubectl("patch", "dfleet", "shops", "-n", namespace, "--type=merge",
                                "-p", json.dumps({"spec": {"template": {"source": {"revision": "fleet-broken"}}}}))
    halted = wait_fleet(world, namespace, "condition=Stalled")
    stalled = condition(halted, "Stalled")
    assert stalled["reason"] == "RolloutHalted"
    assert CANARY in stalled["message"] and "canary" in stalled["message"], stalled
    assert [(f["member"], f["wave"]) for f in halted["status"]["failures"]] == [(CANARY, "canary")]
    after = members(world, namespace)
    assert after[CANARY]["spec"]["source"]["revision"] == broken
    assert all(after[name]["spec"]["source"]["revision"] == good for name in MEMBERS if name != CANARY)
    assert watch.pinned(broken) == [CANARY]
    print(f"fleet of {len(MEMBERS)}: created Ready in {created_at:.0f}s, rolled in {rolled_at - created_at:.0f}s, "
          f"halted in {time.monotonic() - started - rolled_at:.0f}s")
