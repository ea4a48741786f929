"""The inventory against the real apiserver and the local cloud: what it lists, a DNS zone that moves, a
server stopped or replaced by hand (issue 19)."""

from __future__ import annotations

import json
from typing import Any

import boto3

from conftest import wait_for
from o4o_operator.testing.world import REGION, ZONE, LocalWorld


def kinds(obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted((i["kind"], i.get("type", ""), i["state"]) for i in obj["status"]["inventory"])


def entries(world: LocalWorld, name: str) -> list[tuple[str, str]]:
    return sorted((e.domain, e.type) for e in world.lightsail.domain_entries() if e.name == name)


def lightsail_client(world: LocalWorld) -> Any:
    return boto3.client("lightsail", region_name=REGION, endpoint_url=world.lightsail.endpoint_url,
                        aws_access_key_id="local", aws_secret_access_key="local")


def test_the_inventory_lists_what_was_made_and_a_moved_zone_leaves_no_record_behind(
        world: LocalWorld, namespace: str) -> None:
    world.create_secrets(namespace)
    domain = f"inv.{ZONE}"
    world.lightsail.add_domain(domain)  # a second zone that holds the name: its apex
    world.start_operator(env={"O4O_AMBIENT_GRANTS": f"*={ZONE},{domain}"})  # the operator's identity may use both
    try:
        _move_zone_then_delete(world, namespace, domain)
    finally:
        world.start_operator()


def _move_zone_then_delete(world: LocalWorld, namespace: str, domain: str) -> None:
    world.apply(world.manifest("inv", namespace))
    obj = wait_for(world, namespace, "inv", "condition=Ready")
    assert kinds(obj) == [("ConfigMap", "", "Present"), ("Database", "", "Present"), ("DatabaseRole", "", "Present"),
                          ("DnsRecord", "A", "Present"), ("DnsRecord", "TXT", "Present"),
                          ("KeyPair", "", "Present"), ("Secret", "", "Present"), ("Server", "", "Present"),
                          ("StaticIp", "", "Present")]
    server = next(i for i in obj["status"]["inventory"] if i["kind"] == "Server")
    arn = lightsail_client(world).get_instance(instanceName=server["name"])["instance"]["arn"]
    assert server["id"] == arn
    assert entries(world, domain) == [(ZONE, "A"), (ZONE, "TXT")]

    world.control_plane.kubectl("patch", "di", "inv", "-n", namespace, "--type=merge",
                                "-p", json.dumps({"spec": {"dns": {"provider": "lightsail", "zone": domain}}}))
    wait_for(world, namespace, "inv", f"jsonpath={{.status.observedGeneration}}={obj['metadata']['generation'] + 1}")
    moved = wait_for(world, namespace, "inv", "condition=Ready")
    assert entries(world, domain) == [(domain, "A"), (domain, "TXT")], "the old zone keeps nothing of ours"
    assert {i.get("zone") for i in moved["status"]["inventory"] if i["kind"] == "DnsRecord"} == {domain}

    world.control_plane.kubectl("delete", "di", "inv", "-n", namespace, "--timeout=120s")
    assert entries(world, domain) == []
    assert world.lightsail.resources_for_uid(obj["metadata"]["uid"]) == []


def test_a_stopped_server_is_started_and_a_replaced_one_is_set_up_from_scratch(
        world: LocalWorld, namespace: str) -> None:
    world.start_operator(env={"O4O_DRIFT_INTERVAL_SECONDS": "2"})
    try:
        world.create_secrets(namespace)
        world.apply(world.manifest("power", namespace))
        obj = wait_for(world, namespace, "power", "condition=Ready")
        name = obj["status"]["server"]["name"]
        client = lightsail_client(world)

        client.stop_instance(instanceName=name)  # as if by hand, in the console
        wait_for(world, namespace, "power", "condition=Ready=false")
        wait_for(world, namespace, "power", "condition=Ready")
        assert world.lightsail.request_log.count("StartInstance") == 1
        assert [s.state for s in world.lightsail.servers() if s.name == name] == ["running"]

        runtime_before = {s["name"]: s for s in obj["status"]["stages"]}["runtime"]["startedAt"]
        client.delete_instance(instanceName=name)
        wait_for(world, namespace, "power", "condition=Ready=false")
        healed = wait_for(world, namespace, "power", "condition=Ready")
        stages = {s["name"]: s for s in healed["status"]["stages"]}
        assert stages["runtime"]["startedAt"] > runtime_before, "a new machine is set up from scratch"
        assert all(stages[s]["startedAt"] > runtime_before for s in ("database", "source", "configure", "apps"))
        new_arn = client.get_instance(instanceName=name)["instance"]["arn"]
        assert next(i for i in healed["status"]["inventory"] if i["kind"] == "Server")["id"] == new_arn
        events = world.control_plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        reasons = {e["reason"] for e in json.loads(events)["items"]}
        assert {"ServerStarted", "ServerReplaced"} <= reasons
    finally:
        world.start_operator()
