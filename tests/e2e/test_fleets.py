"""A DeploymentFleet of four sandbox members in two waves (a canary, then the rest at once).

A watch on the namespace's DeploymentInstances records every state the API held, in order, and the test
checks the rollout's rule on each: no member of wave 2 is pinned to the target before the canary serves
the target (``status.source.commit``), has observed its current generation and is Ready. Then a revision
whose build fails halts at the canary: the fleet is Stalled naming the member, its reason and the wave,
and no other member is pinned to it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from o4o_operator.testing.fixture_repo import commit_to_branch
from o4o_operator.testing.fleet_watch import MemberWatch
from o4o_operator.testing.world import LocalWorld

MEMBERS = ("shop-0", "shop-1", "shop-2", "shop-3")
CANARY = "shop-0"
def _fleet(world: LocalWorld, namespace: str, revision: str) -> dict[str, Any]:
    template = world.manifest("template", namespace, apps=())["spec"]
    del template["domain"]
    template["source"]["revision"] = revision
    return {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentFleet",
            "metadata": {"name": "shops", "namespace": namespace},
            "spec": {"template": template,
                     "members": [{"name": name, "domain": f"{name}.{template['dns']['zone']}"} for name in MEMBERS],
                     "strategy": {"waves": [{"name": "canary", "count": 1},
                                            {"name": "rest", "percentage": 100, "maxUnavailable": 3}]}}}


def _wait_fleet(world: LocalWorld, namespace: str, condition: str, timeout: int = 150) -> dict[str, Any]:
    result = world.control_plane.kubectl("wait", f"--for={condition}", "dfleet/shops", "-n", namespace,
                                         f"--timeout={timeout}s", check=False, timeout=timeout + 30)
    current = world.control_plane.kubectl("get", "dfleet", "shops", "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        log = "\n".join(line for line in (world.operator.output() if world.operator else "").splitlines()
                        if "Timer 'roll_fleet' succeeded" not in line)[-5000:]
        status = json.loads(current.stdout).get("status") if current.returncode == 0 else current.stderr
        members = {name: (m["spec"]["source"]["revision"][:8], m.get("status", {}).get("phase"),
                          [(c["type"], c["status"], c["reason"]) for c in m.get("status", {}).get("conditions", [])
                           if c["type"] in ("Ready", "Stalled")])
                   for name, m in _members(world, namespace).items()}
        raise AssertionError(f"{condition}: {result.stderr}\nfleet status: {json.dumps(status, indent=1)}\n"
                             f"members: {members}\noperator log:\n{log}")
    return json.loads(current.stdout)  # type: ignore[no-any-return]


def _members(world: LocalWorld, namespace: str) -> dict[str, dict[str, Any]]:
    listing = json.loads(world.control_plane.kubectl("get", "di", "-n", namespace, "-o", "json").stdout)
    return {item["metadata"]["name"]: item for item in listing["items"]}


@pytest.fixture
def watch(world: LocalWorld, namespace: str) -> Iterator[MemberWatch]:
    member_watch = MemberWatch(world.control_plane, namespace)
    yield member_watch
    member_watch.stop()


def _condition(fleet: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in fleet["status"]["conditions"] if c["type"] == type_)


def test_a_revision_rolls_wave_by_wave_and_a_broken_one_halts_at_the_canary(
        world: LocalWorld, namespace: str, watch: MemberWatch) -> None:
    started = time.monotonic()
    world.create_secrets(namespace)
    world.apply(_fleet(world, namespace, "main"))
    first = _wait_fleet(world, namespace, "condition=Ready")
    assert first["status"]["target"]["commit"] == world.commit
    assert watch.violations(world.commit, CANARY, MEMBERS[1:]) == []
    members = _members(world, namespace)
    assert sorted(members) == list(MEMBERS)
    assert all(m["metadata"]["ownerReferences"][0]["uid"] == first["metadata"]["uid"] for m in members.values())
    created_at = time.monotonic() - started

    good = commit_to_branch(world.repository, "fleet-good", {"apps/main-site/public/extra.txt": "v2\n"}, "v2")
    world.control_plane.kubectl("patch", "dfleet", "shops", "-n", namespace, "--type=merge",
                                "-p", json.dumps({"spec": {"template": {"source": {"revision": "fleet-good"}}}}))
    _wait_fleet(world, namespace, "jsonpath={.status.target.commit}=" + good)
    rolled = _wait_fleet(world, namespace, "condition=Ready")
    assert [w["updated"] for w in rolled["status"]["waves"]] == [1, 3]
    assert watch.pinned(good)[0] == CANARY and len(watch.pinned(good)) == 4  # the watch saw the rollout
    assert watch.violations(good, CANARY, MEMBERS[1:]) == []
    assert all(m["status"]["source"]["commit"] == good for m in _members(world, namespace).values())
    rolled_at = time.monotonic() - started

    broken = commit_to_branch(world.repository, "fleet-broken", {"apps/api-server/package.json": json.dumps(
        {"name": "@o4o/api-server", "version": "0.0.0", "scripts": {"build": "exit 1", "build:api": "exit 1"}})},
        "broken build")
    world.control_plane.kubectl("patch", "dfleet", "shops", "-n", namespace, "--type=merge",
                                "-p", json.dumps({"spec": {"template": {"source": {"revision": "fleet-broken"}}}}))
    halted = _wait_fleet(world, namespace, "condition=Stalled")
    stalled = _condition(halted, "Stalled")
    assert stalled["reason"] == "RolloutHalted"
    assert CANARY in stalled["message"] and "canary" in stalled["message"], stalled
    assert [(f["member"], f["wave"]) for f in halted["status"]["failures"]] == [(CANARY, "canary")]
    after = _members(world, namespace)
    assert after[CANARY]["spec"]["source"]["revision"] == broken
    assert all(after[name]["spec"]["source"]["revision"] == good for name in MEMBERS if name != CANARY)
    assert watch.pinned(broken) == [CANARY]
    print(f"fleet of {len(MEMBERS)}: created Ready in {created_at:.0f}s, rolled in {rolled_at - created_at:.0f}s, "
          f"halted in {time.monotonic() - started - rolled_at:.0f}s")
