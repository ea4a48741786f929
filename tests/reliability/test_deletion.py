"""R6: an instance deleted during each of the stages leaves no cloud resource and no finalizer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from reliability_support import (
    LightsailHold,
    ShimGate,
    WorldFactory,
    get_di,
    host_of,
    list_di,
    stages,
    wait_di,
    wait_gone,
)

from o4o_operator.pipeline.stages import STAGES
from o4o_operator.providers.ownership import server_name
from o4o_operator.testing.world import ZONE, LocalWorld

pytestmark = pytest.mark.slow

Hold = Callable[[LocalWorld, str, str], Callable[[], None]]


def _shim(command: str, args_contain: str = "") -> Hold:
    def hold(world: LocalWorld, namespace: str, name: str) -> Callable[[], None]:
        return ShimGate(host_of(world, namespace, name), command, args_contain).release
    return hold


def _cloud(operation: str, needle: Callable[[str, str], str]) -> Hold:
    def hold(world: LocalWorld, namespace: str, name: str) -> Callable[[], None]:
        return LightsailHold(world.lightsail, operation, needle(namespace, name)).release
    return hold


HOLDS: dict[str, Hold] = {
    # The server is created, but the answer to CreateInstances is slow: provision stays Running.
    "provision": _cloud("CreateInstances", server_name),
    "dns": _cloud("CreateDomainEntry", lambda namespace, name: f"{name}.{ZONE}"),
    "runtime": _shim("dpkg-query"),
    "database": _shim("pg_lsclusters"),
    "source": _shim("git", "clone"),
    "build-site": _shim("pnpm", "@o4o/main-site-nextgen... --fail-if-no-match run build"),
    "build-api": _shim("pnpm", "@o4o/api-server... --fail-if-no-match run build"),
    "configure": _shim("pm2", "startOrReload"),
    "tls": _shim("certbot", "certonly"),
    "apps": _shim("npx", "create-admin-user.ts"),
}


def test_deleting_during_each_stage_removes_every_cloud_resource_and_the_finalizer(
        worlds: WorldFactory, namespace: str) -> None:
    assert list(HOLDS) == [stage.name.value for stage in STAGES]
    world = worlds(namespace, seed=6006)
    world.create_secrets(namespace)
    names = {stage: f"del-{stage}" for stage in HOLDS}
    releases = {stage: hold(world, namespace, names[stage]) for stage, hold in HOLDS.items()}
    for stage in HOLDS:
        world.apply(world.manifest(names[stage], namespace))

    uids: dict[str, str] = {}
    deleted_while_running: list[str] = []
    try:
        for stage, name in names.items():  # pipeline order: the cloud holds are reached first
            wait_di(world, namespace, name, f'jsonpath={{.status.stages[?(@.name=="{stage}")].state}}=Running')
            uids[stage] = get_di(world, namespace, name)["metadata"]["uid"]
            world.control_plane.kubectl("delete", "di", name, "-n", namespace, "--wait=false")
            obj = get_di(world, namespace, name)
            if obj["metadata"].get("deletionTimestamp") and stages(obj)[stage]["state"] == "Running":
                deleted_while_running.append(stage)
            releases[stage]()  # the stage goes on while the deletion proceeds, racing the teardown
    finally:
        for release in releases.values():
            release()

    wait_gone(world, namespace, timeout=180)
    clean = [stage for stage, uid in uids.items() if not world.lightsail.resources_for_uid(uid)]
    entries = world.lightsail.domain_entries()
    print(f"R6: deleted during {len(deleted_while_running)}/{len(HOLDS)} stages while Running "
          f"({', '.join(deleted_while_running)}); {len(clean)}/{len(HOLDS)} left no cloud resource; "
          f"{len(HOLDS) - len(list_di(world, namespace))}/{len(HOLDS)} gone (finalizer removed); "
          f"{len(world.lightsail.servers())} servers, {len(world.lightsail.static_ips())} static IPs, "
          f"{len(entries)} DNS entries left")
    assert deleted_while_running == list(HOLDS)
    assert clean == list(HOLDS), {stage: world.lightsail.resources_for_uid(uid) for stage, uid in uids.items()}
    assert list_di(world, namespace) == []
    assert world.lightsail.servers() == [] and world.lightsail.static_ips() == [] and entries == []
