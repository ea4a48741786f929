"""R1: the operator is SIGKILLed 20 times at random moments while 6 instances progress; nothing is lost or doubled.

Six instances give 60 (instance, stage) successes for 20 kills, about one kill per three stage successes:
the same kills as when twenty instances ran, each hitting fewer instances in flight, in a third of the time.
"""

from __future__ import annotations

import random
import time

import pytest
from reliability_support import StatusWatch, WorldFactory, apply_all, is_ready, list_di, wait_di, wait_gone

from o4o_operator.pipeline.stages import STAGE_COUNT

pytestmark = pytest.mark.slow

SEED = 1001
INSTANCES = 6
KILLS = 20


@pytest.mark.timeout(600)  # the kubectl waits below bound it; this only leaves room on a slow machine
def test_sigkill_at_random_moments_leaves_one_server_per_instance_and_nothing_after_deletion(
        worlds: WorldFactory, namespace: str) -> None:
    world = worlds(namespace, seed=SEED)
    assert world.operator is not None
    world.create_secrets(namespace)
    rng = random.Random(SEED)
    names = [f"crash-{number:02d}" for number in range(INSTANCES)]
    # The schedule: kill when this many (instance, stage) pairs have succeeded, spread over the whole run.
    kill_points = sorted(rng.sample(range(1, INSTANCES * STAGE_COUNT - 5), KILLS))
    kills = kills_mid_progress = 0
    progress_at_kills: list[int] = []
    with StatusWatch(world.control_plane, namespace) as watch:
        apply_all(world, [world.manifest(name, namespace) for name in names])
        for point in kill_points:
            reached = watch.wait(lambda seen, point=point: len(seen.succeeded) >= point
                                 or seen.all_ready(INSTANCES), timeout=240)
            assert reached, f"no progress towards {point} stages succeeded (saw {len(watch.succeeded)})"
            time.sleep(rng.uniform(0.0, 0.4))  # only picks the moment of the kill within this window
            kills_mid_progress += not watch.all_ready(INSTANCES)
            progress_at_kills.append(len(watch.succeeded))
            world.operator.kill()
            kills += 1
            world.operator.start()
    wait_di(world, namespace, "--all", "condition=Ready", timeout=300)

    instances = list_di(world, namespace)
    reruns = sum(stage["attempts"] - 1 for obj in instances for stage in obj["status"]["stages"])
    ready = [obj for obj in instances if is_ready(obj)]
    uids = {obj["metadata"]["name"]: obj["metadata"]["uid"] for obj in instances}
    servers = world.lightsail.servers()
    static_ips = world.lightsail.static_ips()
    per_uid = {name: world.lightsail.resources_for_uid(uid) for name, uid in uids.items()}
    print(f"R1: {INSTANCES} DIs, {kills} kills ({kills_mid_progress} before all were Ready, at "
          f"{progress_at_kills} of {INSTANCES * STAGE_COUNT} stages done), {reruns} stage re-runs, "
          f"{len(ready)}/{INSTANCES} Ready, {len(servers)} servers, {len(static_ips)} static IPs")
    assert kills == KILLS
    assert kills_mid_progress >= KILLS // 2, "the kills must hit instances in progress, not settled ones"
    assert len(ready) == INSTANCES
    for name, resources in per_uid.items():
        assert len([r for r in resources if r.startswith("Instance/")]) == 1, (name, resources)
        assert len([r for r in resources if r.startswith("StaticIp/")]) == 1, (name, resources)
    assert len(servers) == INSTANCES, [s.name for s in servers]
    assert len(static_ips) == INSTANCES, [s.name for s in static_ips]
    assert all(ip.attached_to for ip in static_ips), static_ips

    world.control_plane.kubectl("delete", "di", "--all", "-n", namespace, "--wait=false")
    wait_gone(world, namespace, timeout=240)
    leaks = {name: left for name, uid in uids.items() if (left := world.lightsail.resources_for_uid(uid))}
    entries = world.lightsail.domain_entries()
    print(f"R1: after deletion {len(leaks)} leaking DIs, {len(world.lightsail.servers())} servers, "
          f"{len(world.lightsail.static_ips())} static IPs, {len(entries)} DNS entries, "
          f"{len(list_di(world, namespace))} DIs left")
    assert leaks == {}
    assert world.lightsail.servers() == [] and world.lightsail.static_ips() == []
    assert entries == [], entries
    assert list_di(world, namespace) == []
