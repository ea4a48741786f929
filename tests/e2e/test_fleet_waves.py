"""A DeploymentFleet of fifty sandbox members in three waves (a canary, nine, then forty), and bad input.

One fleet is made once for the module (its creation follows the waves too) and each test moves it to a new
revision. A watch on the namespace's DeploymentInstances records every state the API held, in order, and the
rollout's rules are checked on those recorded transitions: when a member of a wave is first pinned to the
target, every member of each earlier wave is updated (pinned, serving the target commit, its status about its
current generation, Ready); no more members of a wave roll at once than its ``maxUnavailable``. The same
recording shows the stale Ready that a status-only check (argo-cd #29410) would have taken for done.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import module_namespaces, module_prefix
from fleet_watch import (
    FLEET,
    MemberWatch,
    condition,
    members,
    order_violations,
    ready_only,
    updated_to,
    wait_fleet,
)

from o4o_operator.testing import ControlPlane
from o4o_operator.testing.fixture_repo import commit_to_branch
from o4o_operator.testing.world import LocalWorld

MEMBERS = tuple(f"m{index:02d}" for index in range(50))
CANARY = MEMBERS[0]
WAVES = (MEMBERS[:1], MEMBERS[1:10], MEMBERS[10:])
STRATEGY = [{"name": "canary", "count": 1},
            {"name": "early", "count": 9, "maxUnavailable": 9},
            {"name": "rest", "percentage": 100, "maxUnavailable": 40}]
GATED = [*STRATEGY[:2], {"name": "rest", "percentage": 100, "maxUnavailable": 0}]
ROLL_TIMEOUT = 300
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def world(control_plane: ControlPlane) -> Iterator[LocalWorld]:
    """As the e2e conftest's, with room for every member of the largest wave to run at once."""
    with LocalWorld(control_plane, namespaces=module_namespaces(__name__),
                    operator_env={"O4O_MAX_PIPELINES": "40", "O4O_MAX_SSH_SESSIONS": "80"}) as local_world:
        yield local_world


@dataclasses.dataclass(frozen=True)
class Fleet:
    namespace: str
    created: list[dict[str, str]]
    """The members' states recorded while the fleet made them."""


def _fleet(world: LocalWorld, namespace: str, revision: str) -> dict[str, Any]:
    template = world.manifest("template", namespace, apps=())["spec"]
    del template["domain"]
    template["source"]["revision"] = revision
    return {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentFleet",
            "metadata": {"name": FLEET, "namespace": namespace},
            "spec": {"template": template,
                     "members": [{"name": name, "domain": f"{name}.{template['dns']['zone']}"} for name in MEMBERS],
                     "strategy": {"waves": STRATEGY}}}


@pytest.fixture(scope="module")
def fleet(world: LocalWorld, control_plane: ControlPlane) -> Fleet:
    namespace = f"{module_prefix(__name__)}{os.getpid() % 10000}"
    control_plane.create_namespace(namespace)
    world.create_secrets(namespace)
    watch = MemberWatch(world.control_plane, namespace)
    started = time.monotonic()
    try:
        world.apply(_fleet(world, namespace, "main"))
        wait_fleet(world, namespace, "condition=Ready", timeout=ROLL_TIMEOUT)
    finally:
        watch.stop()
    TIMINGS["created"] = time.monotonic() - started
    return Fleet(namespace, watch.snapshot())


@pytest.fixture
def watch(world: LocalWorld, fleet: Fleet) -> Iterator[MemberWatch]:
    member_watch = MemberWatch(world.control_plane, fleet.namespace)
    yield member_watch
    member_watch.stop()


def _patch(world: LocalWorld, namespace: str, spec: dict[str, Any]) -> None:
    world.control_plane.kubectl("patch", "dfleet", FLEET, "-n", namespace, "--type=merge",
                                "-p", json.dumps({"spec": spec}))


def _revision(world: LocalWorld, branch: str, text: str) -> str:
    return commit_to_branch(world.repository, branch, {"apps/main-site/public/wave.txt": text}, text)


def _max_rolling(states: list[dict[str, str]], target: str, wave: tuple[str, ...]) -> int:
    """The most members of ``wave`` pinned to ``target`` and not yet updated at once, in the recorded states."""
    latest: dict[str, dict[str, str]] = {}
    most = 0
    for state in states:
        latest[state["name"]] = state
        most = max(most, sum(1 for name in wave if name in latest and latest[name]["revision"] == target
                             and not updated_to(latest[name], target)))
    return most


def _first(states: list[dict[str, str]], done: Any, target: str, wave: tuple[str, ...]) -> int:
    """The index of the first recorded state after which every member of ``wave`` is pinned to ``target`` and
    ``done`` with it; -1 if never."""
    latest: dict[str, dict[str, str]] = {}
    for index, state in enumerate(states):
        latest[state["name"]] = state
        if all(name in latest and latest[name]["revision"] == target and done(latest[name], target)
               for name in wave):
            return index
    return -1


def test_creation_follows_the_waves(world: LocalWorld, fleet: Fleet) -> None:
    created = members(world, fleet.namespace)
    assert sorted(created) == list(MEMBERS)
    assert all(m["status"]["source"]["commit"] == world.commit for m in created.values())
    assert order_violations(fleet.created, world.commit, WAVES) == []
    # Each member appears first pinned to the target: the order is the order of creation.
    first_seen = list(dict.fromkeys(state["name"] for state in fleet.created))
    assert first_seen[0] == CANARY and set(first_seen[1:10]) == set(WAVES[1])
    print(f"50 members created and Ready in {TIMINGS['created']:.0f}s")


def test_a_good_revision_rolls_wave_by_wave_through_a_pause_and_the_manual_gate(
        world: LocalWorld, fleet: Fleet, watch: MemberWatch) -> None:
    """One rollout (fifty members roll once) shows the waves' order, a pause, a resume and the manual gate."""
    namespace = fleet.namespace
    before = {name: m["spec"]["source"]["revision"] for name, m in members(world, namespace).items()}
    good = _revision(world, "waves-good", "good\n")
    started = time.monotonic()
    _patch(world, namespace, {"paused": True, "template": {"source": {"revision": "waves-good"}},
                              "strategy": {"waves": GATED}})
    paused = wait_fleet(world, namespace, "jsonpath={.status.target.commit}=" + good)
    # The pass that resolved the target is the pass that would have pinned the canary: it pinned nothing.
    assert paused["status"]["observedGeneration"] == paused["metadata"]["generation"]
    assert condition(paused, "Ready")["reason"] == "Paused" and condition(paused, "Reconciling")["status"] == "False"
    assert watch.pinned(good) == []
    assert {name: m["spec"]["source"]["revision"] for name, m in members(world, namespace).items()} == before

    _patch(world, namespace, {"paused": False})
    gated = wait_fleet(world, namespace, 'jsonpath={.status.conditions[?(@.type=="Ready")].reason}'
                                         "=WaitingForPromotion", timeout=ROLL_TIMEOUT)
    assert [(w["name"], w["state"], w["updated"]) for w in gated["status"]["waves"]] == [
        ("canary", "Done", 1), ("early", "Done", 9), ("rest", "WaitingForPromotion", 0)]
    assert set(watch.pinned(good)) == set(WAVES[0] + WAVES[1])

    world.control_plane.kubectl("annotate", "dfleet", FLEET, "-n", namespace, "deploy.o4o.io/promote=rest")
    rolled = wait_fleet(world, namespace, "condition=Ready", timeout=ROLL_TIMEOUT)
    TIMINGS["rolled"] = time.monotonic() - started
    assert [(w["name"], w["updated"]) for w in rolled["status"]["waves"]] == [("canary", 1), ("early", 9),
                                                                             ("rest", 40)]
    assert all(m["status"]["source"]["commit"] == good for m in members(world, namespace).values())
    # The gate is for one start of the wave: the fleet took the annotation away when the wave started.
    assert "deploy.o4o.io/promote" not in (rolled["metadata"].get("annotations") or {})

    states = watch.snapshot()
    assert watch.pinned(good)[0] == CANARY and len(watch.pinned(good)) == len(MEMBERS)
    assert order_violations(states, good, WAVES) == []
    assert _max_rolling(states, good, WAVES[0]) == 1 and _max_rolling(states, good, WAVES[1]) <= 9
    assert _max_rolling(states, good, WAVES[2]) > 9  # the released gate rolls the whole wave at once

    # The stale Ready (argo-cd #29410): pinned to the target, the canary still showed the old commit's Ready,
    # about its previous generation. A status-only check would have called wave 1 done there and started
    # wave 2 at once; the fleet waited for the target commit, and wave 2 started only after that.
    stale_done = _first(states, ready_only, good, WAVES[0])
    updated_done = _first(states, updated_to, good, WAVES[0])
    wave_2_start = min(index for index, state in enumerate(states)
                       if state["name"] in WAVES[1] and state["revision"] == good)
    assert 0 <= stale_done < updated_done < wave_2_start, (stale_done, updated_done, wave_2_start)
    stale = states[stale_done]
    assert stale["name"] == CANARY and stale["commit"] != good and stale["observed"] != stale["generation"], stale
    assert states[updated_done]["name"] == CANARY and states[updated_done]["commit"] == good
    print(f"50 members paused, resumed, rolled wave by wave through the gate in {TIMINGS['rolled']:.0f}s")


def test_a_revision_that_breaks_the_api_halts_at_the_canary_and_touches_no_other_member(
        world: LocalWorld, fleet: Fleet, watch: MemberWatch) -> None:
    namespace = fleet.namespace
    broken = _revision(world, "waves-broken", "breaks the API\n")
    for host in list(world.fleet.hosts.values()):  # whichever member serves it: its API answers 502
        host.set_http_response(502, "bad gateway", url_contains="/api/health", live_release=broken)
    before = members(world, namespace)
    serving = before[CANARY]["status"]["source"]["commit"]
    started = time.monotonic()
    _patch(world, namespace, {"template": {"source": {"revision": "waves-broken"}}})
    halted = wait_fleet(world, namespace, "condition=Stalled", timeout=ROLL_TIMEOUT)
    TIMINGS["halted"] = time.monotonic() - started
    stalled = condition(halted, "Stalled")
    assert stalled["reason"] == "RolloutHalted"
    assert f"{CANARY} failed in wave canary: RolledBack" in stalled["message"], stalled
    assert [(f["member"], f["wave"], f["reason"]) for f in halted["status"]["failures"]] == [
        (CANARY, "canary", "RolledBack")]
    assert [w["state"] for w in halted["status"]["waves"]] == ["Halted", "Pending", "Pending"]
    after = members(world, namespace)
    canary = after[CANARY]
    assert canary["spec"]["source"]["revision"] == broken
    assert world.fleet.host_for(canary["status"]["server"]["name"]).shim_state()["live_release"] == serving
    for name in MEMBERS[1:]:
        assert after[name]["spec"] == before[name]["spec"], name
        assert after[name]["metadata"]["generation"] == before[name]["metadata"]["generation"], name
    assert watch.pinned(broken) == [CANARY]
    print(f"a broken API halted at the canary in {TIMINGS['halted']:.0f}s")


def test_a_member_named_like_an_unowned_instance_stalls_the_fleet_naming_the_field(
        world: LocalWorld, namespace: str) -> None:
    world.create_secrets(namespace)
    taken = world.manifest("taken", namespace, paused=True)  # someone else's, left alone by the operator too
    world.apply(taken)
    before = world.get("taken", namespace)
    fleet = _fleet(world, namespace, "main")
    fleet["spec"]["members"] = [{"name": "ours", "domain": "ours.example.com"},
                                {"name": "taken", "domain": "taken-by-fleet.example.com"}]
    world.apply(fleet)
    stalled = wait_fleet(world, namespace, "condition=Stalled")
    assert condition(stalled, "Stalled")["reason"] == "MemberNameTaken"
    assert condition(stalled, "Stalled")["message"].startswith("spec.members[1].name"), stalled
    after = world.get("taken", namespace)
    assert after["spec"] == before["spec"]
    assert "ownerReferences" not in after["metadata"] and "deploy.o4o.io/fleet" not in after["metadata"].get(
        "labels", {})
    assert sorted(members(world, namespace)) == ["taken"]  # nothing was made either
