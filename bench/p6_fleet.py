"""P6: a DeploymentFleet of N sandbox members rolled to a new revision in waves; wall time over the ideal.

Everything is real and local (kube-apiserver, the operator as a child process, LocalLightsail, one sshd per
server), with fixed latencies standing in for the remote world, as in P1: every LocalLightsail API call sleeps
``cloud_latency`` seconds and every shimmed command on a sandbox host ``command_latency`` seconds.

First one DeploymentInstance alone (no fleet) is made Ready and then moved to the new commit: the time from
its revision change to Ready on that commit (observed generation current) is one member's critical path,
T(1). Then the fleet's N members are made at once (one wave, not measured), the strategy becomes the
measured waves and the template's revision changes; the clock runs from that change until every member is
updated (pinned to the target, serving it, its status about its current generation, Ready). The ideal is
``waves x T(1) + the waves' bake times``; the ratio is wall / ideal (1.0: the waves cost nothing beyond
their members' own work and the bakes).

API writes per member come from kube-apiserver's own ``apiserver_request_total`` over the rollout, split into
the fleet controller's (its pins of members' ``spec.source.revision``, its own status) and the members' own
reconciles (their status and Kopf's progress annotations). Prints figures; asserts nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from bench.common import (
    WRITE_VERBS,
    InstanceWatcher,
    RequestKey,
    apiserver_requests,
    bench_world,
    request_delta,
    say,
    server_name,
    start_control_plane,
    system_busy_seconds,
    write_result,
)
from bench.p1_concurrency import create_all, stage_failures
from o4o_operator.testing.fixture_repo import commit_to_branch
from o4o_operator.testing.world import CRD, FLEET_CRD, LocalWorld

NAME = "p6-fleet"
NAMESPACE = "bench-p6"
FLEET = "bench"


@dataclasses.dataclass(frozen=True)
class Options:
    members: int = 200
    cloud_latency: float = 0.5
    command_latency: float = 1.0
    """Seconds every shimmed command takes before it acts (P1 uses 5 for a realistic deployment; 1 keeps
    making 200 members first within minutes here, and a roll's critical path is measured either way)."""
    canary_bake: int = 10
    second_bake: int = 10
    second_percentage: int = 10
    subnet: int = 96
    timeout: float = 3600.0


def waves(options: Options) -> list[dict[str, Any]]:
    """A canary, then ``second_percentage`` % of the members at once, then the rest at once."""
    return [{"name": "canary", "count": 1, "bakeSeconds": options.canary_bake},
            {"name": "second", "percentage": options.second_percentage, "maxUnavailable": options.members,
             "bakeSeconds": options.second_bake},
            {"name": "rest", "percentage": 100, "maxUnavailable": options.members}]


def updated(obj: Mapping[str, Any] | None, commit: str) -> bool:
    """The fleet's rule: pinned to the commit, serving it, status about the current generation, Ready."""
    if obj is None:
        return False
    status = obj.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return (((obj.get("spec") or {}).get("source") or {}).get("revision") == commit
            and (status.get("source") or {}).get("commit") == commit
            and status.get("observedGeneration") == (obj.get("metadata") or {}).get("generation") and ready)


def _wait_updated(watcher: InstanceWatcher, world: LocalWorld, names: list[str], commit: str,
                  timeout: float) -> float:
    """Block until every named instance is updated to ``commit``; the monotonic time it was seen so."""
    if not watcher.wait(lambda w: all(updated(w.last.get(name), commit) for name in names), timeout):
        behind = [name for name in names if not updated(watcher.last.get(name), commit)]
        log = world.operator.output()[-3000:] if world.operator else ""
        raise RuntimeError(f"{len(behind)} member(s) not updated to {commit[:8]} after {timeout:.0f}s "
                           f"(e.g. {behind[:5]})\noperator log:\n{log}")
    return time.monotonic()


def _patch(world: LocalWorld, kind: str, name: str, body: Mapping[str, Any]) -> None:
    world.control_plane.kubectl("patch", kind, name, "-n", NAMESPACE, "--type=merge", "-p", json.dumps(body))


def _fleet(world: LocalWorld, options: Options, names: list[str]) -> dict[str, Any]:
    template = world.manifest("template", NAMESPACE, apps=())["spec"]
    del template["domain"]
    return {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentFleet",
            "metadata": {"name": FLEET, "namespace": NAMESPACE},
            "spec": {"template": template,
                     "members": [{"name": name, "domain": f"{name}.{template['dns']['zone']}"} for name in names],
                     "strategy": {"waves": [{"name": "all", "percentage": 100, "maxUnavailable": options.members}]}}}


def _writes(delta: Mapping[RequestKey, float]) -> dict[str, float]:
    """Write requests by resource (``deploymentinstances/status`` etc.), the deploy.o4o.io group only."""
    totals: dict[str, float] = {}
    for key, count in delta.items():
        if key.verb in WRITE_VERBS and key.group == "deploy.o4o.io":
            name = key.resource + (f"/{key.subresource}" if key.subresource else "")
            totals[name] = totals.get(name, 0.0) + count
    return totals


def _single(world: LocalWorld, watcher: InstanceWatcher, commit: str, timeout: float) -> float:
    """T(1): one DeploymentInstance's move to ``commit``, from its revision change to updated."""
    solo = world.manifest("solo", NAMESPACE)
    solo["spec"]["source"]["revision"] = world.commit  # pinned to a commit, as a fleet pins its members
    create_all(world.control_plane, NAMESPACE, [solo])
    _wait_updated(watcher, world, ["solo"], world.commit, timeout)
    started = time.monotonic()
    _patch(world, "di", "solo", {"spec": {"source": {"revision": commit}}})
    return _wait_updated(watcher, world, ["solo"], commit, timeout) - started


def run(options: Options) -> dict[str, Any]:
    env = {"O4O_DRIFT_INTERVAL_SECONDS": "3600", "O4O_MAX_PIPELINES": str(options.members),
           "O4O_MAX_SSH_SESSIONS": str(2 * options.members)}
    plane = start_control_plane((CRD, FLEET_CRD))
    try:
        world = bench_world(plane, subnet=options.subnet, command_latency=options.command_latency,
                            operator_env=env)
        with world:
            world.lightsail.faults.latency_seconds = options.cloud_latency
            plane.create_namespace(NAMESPACE)
            world.create_secrets(NAMESPACE)
            names = [f"m{index:03d}" for index in range(options.members)]
            say(f"P6: booting {options.members + 1} sandbox hosts on 127.{options.subnet}.x.y ...")
            for name in ["solo", *names]:
                world.fleet.host_for(server_name(NAMESPACE, name))
            target = commit_to_branch(world.repository, "p6-next", {"apps/main-site/public/p6.txt": "next\n"},
                                      "P6: the next revision")
            with InstanceWatcher(plane, NAMESPACE) as watcher:
                say("P6: one member's critical path: one instance alone, moved to the new commit ...")
                single = _single(world, watcher, target, options.timeout)
                say(f"P6:   T(1) = {single:.1f}s; now {options.members} members at once (not measured) ...")
                made = time.monotonic()
                world.apply(_fleet(world, options, names))
                _wait_updated(watcher, world, names, world.commit, options.timeout)
                made = time.monotonic() - made
                say(f"P6:   {options.members} members Ready in {made:.0f}s; rolling {target[:8]} in 3 waves ...")
                requests_before = apiserver_requests(plane)
                busy_before = system_busy_seconds()
                started = time.monotonic()
                _patch(world, "dfleet", FLEET, {"spec": {"strategy": {"waves": waves(options)},
                                                         "template": {"source": {"revision": "p6-next"}}}})
                done = _wait_updated(watcher, world, names, target, options.timeout)
                wall = done - started
                busy = system_busy_seconds() - busy_before
                writes = _writes(request_delta(requests_before, apiserver_requests(plane)))
                failures = stage_failures(world.operator.metrics()) if world.operator else {}
    finally:
        plane.stop()
    bakes = options.canary_bake + options.second_bake
    ideal = 3 * single + bakes
    fleet_writes = writes.get("deploymentinstances", 0.0) + sum(
        count for name, count in writes.items() if name.startswith("deploymentfleets"))
    return {
        "benchmark": NAME, "members": options.members, "waves": [w["name"] for w in waves(options)],
        "single_seconds": round(single, 2), "bake_seconds": bakes, "ideal_seconds": round(ideal, 2),
        "wall_seconds": round(wall, 2), "ratio": round(wall / ideal, 3), "members_made_seconds": round(made, 1),
        "writes_during_rollout": {name: int(count) for name, count in sorted(writes.items())},
        "writes_per_member": round(sum(writes.values()) / options.members, 2),
        "member_status_writes_per_member": round(writes.get("deploymentinstances/status", 0.0) / options.members, 2),
        "spec_annotation_and_fleet_writes_per_member": round(fleet_writes / options.members, 2),
        "settings": {"cloud_latency_seconds": options.cloud_latency,
                     "command_latency_seconds": options.command_latency, "operator_env": env,
                     "waves": waves(options)},
        "machine_busy_percent_during_rollout": round(100 * busy / wall / (os.cpu_count() or 1), 1),
        "stage_failures": failures,
    }


def report(result: dict[str, Any]) -> None:
    say(f"P6  {result['members']} members in waves {result['waves']}: all updated {result['wall_seconds']}s after "
        f"the revision change; ideal 3 x T(1) {result['single_seconds']}s + bakes {result['bake_seconds']}s = "
        f"{result['ideal_seconds']}s -> ratio {result['ratio']}")
    say(f"    API writes per member during the rollout: {result['writes_per_member']} (members' own status "
        f"{result['member_status_writes_per_member']}; the fleet's pins, Kopf's annotations and the fleet's status "
        f"{result['spec_annotation_and_fleet_writes_per_member']}); by resource {result['writes_during_rollout']}")
    say(f"    machine busy {result['machine_busy_percent_during_rollout']}% of {os.cpu_count()} cores; "
        f"{result['members']} members were made in {result['members_made_seconds']}s beforehand")
    if result["stage_failures"]:
        say(f"    failed stage attempts (retried), whole run: {result['stage_failures']}")


def main(options: Options) -> dict[str, Any]:
    result = run(options)
    path = write_result(NAME, result)
    report(result)
    say(f"    wrote {path}")
    return result
