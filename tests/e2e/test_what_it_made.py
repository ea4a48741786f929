"""The inventory against the real apiserver and the local cloud: what it lists, a DNS zone that moves, a
server stopped or replaced by hand, and an existing host cleaned from the inventory alone once the spec no
longer parses (issue 19)."""

from __future__ import annotations

import json
from typing import Any

import boto3
from e2e_support import wait_for

from o4o_operator.models import DeploymentInstanceSpec
from o4o_operator.rendering import HostContext
from o4o_operator.rendering.env_values import database_identifier
from o4o_operator.testing.sandbox import SandboxHost
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


TOO_BIG = {"postInstall": [{"name": "too-big", "request": {"path": "/api/v1/x", "body": {"pad": "x" * 9000}}}]}
"""A request body over the models' 8192 bytes: the CRD keeps the body unknown, so it cannot refuse it."""


def test_an_existing_host_is_cleaned_from_the_inventory_when_the_spec_no_longer_parses(
        world: LocalWorld, namespace: str) -> None:
    world.create_secrets(namespace)
    host: SandboxHost = world.fleet.host_for(f"inventory-existing-{namespace}")
    world.apply(world.manifest("kept", namespace, provider={"existing": {"host": host.address}},
                               ssh={"user": world.fleet_user, "privateKeySecretRef": {"name": "ssh-key"},
                                    "hostKeyFingerprint": host.host_key_fingerprint}))
    obj = wait_for(world, namespace, "kept", "condition=Ready")
    ctx = HostContext.for_teardown(namespace, "kept", obj["spec"]["domain"])
    listed = {(i["kind"], i["name"]): i for i in obj["status"]["inventory"]}
    assert listed[("Host", host.address)]["ssh"]["privateKeySecret"] == "ssh-key"
    assert listed[("Host", host.address)]["ssh"]["hostKeyFingerprints"] == [host.host_key_fingerprint]
    assert {("HostUser", ctx.app_user), ("HostDirectory", ctx.base_dir), ("Certificate", ctx.domain),
            ("Database", database_identifier(ctx.app_user))} <= set(listed)
    assert host.path(ctx.base_dir).exists() and ctx.app_user in host.shim_state()["users"]

    try:
        DeploymentInstanceSpec.model_validate({**obj["spec"], **TOO_BIG})
        raise AssertionError("the models accept the spec")
    except ValueError:
        pass
    world.control_plane.kubectl("patch", "di", "kept", "-n", namespace, "--type=merge",
                                "-p", json.dumps({"spec": TOO_BIG}))
    wait_for(world, namespace, "kept", 'jsonpath={.status.conditions[?(@.type=="Stalled")].reason}=InvalidSpec')
    world.control_plane.kubectl("delete", "di", "kept", "-n", namespace, "--timeout=240s", timeout=270)

    state = host.shim_state()
    gone = [ctx.base_dir, ctx.state_dir, ctx.webroot, ctx.app_home, ctx.nginx_enabled_path,
            ctx.nginx_site_path(False), ctx.nginx_site_path(True), ctx.certificate_dir]
    assert [path for path in gone if host.path(path).exists() or host.path(path).is_symlink()] == []
    assert ctx.app_user not in state["users"]
    assert database_identifier(ctx.app_user) not in state["postgres"]["databases"]
    assert database_identifier(ctx.app_user) not in state["postgres"]["roles"]
    assert [c.args for c in host.commands("userdel")] == [(ctx.app_user,)]


def test_a_zone_outside_the_operators_grant_stalls_naming_the_field_and_nothing_is_made(
        world: LocalWorld, namespace: str) -> None:
    """The world's operator may use its own identity for the world's zone only (O4O_AMBIENT_GRANTS): another
    zone in the same account, asked for without credentials of the DI's own, is refused before any call."""
    world.create_secrets(namespace)
    zone = "tenant-a.test"
    world.lightsail.add_domain(zone)  # the account holds it: only the grant stands between the DI and the zone
    world.apply(world.manifest("ungranted", namespace, domain=f"shop.{zone}",
                               dns={"provider": "lightsail", "zone": zone}))
    obj = wait_for(world, namespace, "ungranted", "condition=Stalled")
    stalled = next(c for c in obj["status"]["conditions"] if c["type"] == "Stalled")
    assert "spec.dns.zone" in stalled["message"], stalled
    assert [e for e in world.lightsail.domain_entries() if e.domain == zone] == []
    assert world.lightsail.resources_for_uid(obj["metadata"]["uid"]) == [], "nothing made in the cloud either"
