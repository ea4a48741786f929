"""Tenants in two namespaces never reach each other's servers, key pairs or DNS records (issue 13, items 8
and 9): real apiserver, local Lightsail, the operator as a process, the attack tried."""

from __future__ import annotations

import itertools
import os
from typing import Any

import asyncssh
import boto3
from e2e_support import conditions, module_prefix, wait_for

from o4o_operator.providers.ownership import key_pair_name, server_name
from o4o_operator.testing.world import REGION, ZONE, LocalWorld

PROVISIONED = 'jsonpath={.status.stages[?(@.name=="provision")].state}=Succeeded'
DNS_DONE = 'jsonpath={.status.stages[?(@.name=="dns")].state}=Succeeded'
_numbers = itertools.count(1)


def fresh_namespaces(world: LocalWorld, *suffixes: str) -> list[str]:
    """``e2e-tenancy--<pid>-<n>-<suffix>`` for each suffix, one ``n`` for all: the operator watches this
    module's namespaces, and namespaces never go away here."""
    number = next(_numbers)
    names = [f"{module_prefix(__name__)}{os.getpid() % 10000}-{number}-{suffix}" for suffix in suffixes]
    for name in names:
        world.control_plane.create_namespace(name)
        world.create_secrets(name)
    return names


def fresh_namespace(world: LocalWorld, suffix: str) -> str:
    return fresh_namespaces(world, suffix)[0]


def cloud(world: LocalWorld, region: str = REGION) -> Any:
    return boto3.client("lightsail", region_name=region, endpoint_url=world.lightsail.endpoint_url,
                        aws_access_key_id="local", aws_secret_access_key="local")


def stalled(world: LocalWorld, namespace: str, name: str) -> dict[str, Any]:
    return conditions(wait_for(world, namespace, name, "condition=Stalled"))["Stalled"]


def delete(world: LocalWorld, namespace: str, name: str) -> None:
    world.control_plane.kubectl("delete", "di", name, "-n", namespace, "--timeout=150s", timeout=180)


def servers_by_name(world: LocalWorld) -> dict[str, Any]:
    return {server.name: server for server in world.lightsail.servers()}


def firewall_calls(world: LocalWorld, server: str) -> int:
    return sum(1 for e in world.lightsail.exchanges
               if e.operation == "PutInstancePublicPorts" and e.request.get("instanceName") == server)


def adopting(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["metadata"]["annotations"] = {"deploy.o4o.io/adopt": "true"}
    return manifest


def test_namespace_name_splits_that_read_alike_get_two_servers_and_adopt_cannot_cross(world: LocalWorld) -> None:
    """``team``/``prod-shop`` and ``team-prod``/``shop``: once the same server name, so B (annotated adopt)
    took over A's server, re-declared its firewall and deleted it on teardown."""
    first, second = fresh_namespaces(world, "team", "team-prod")
    assert f"{first}-prod-shop" == f"{second}-shop"  # what the old names were made of
    world.apply(world.manifest("prod-shop", first, provider={"lightsail": {
        "region": REGION, "bundleId": "small_3_0", "blueprintId": "ubuntu_22_04",
        "sshAllowedCidrs": ["127.0.0.0/8"]}}))
    a = wait_for(world, first, "prod-shop", PROVISIONED)
    a_server = a["status"]["server"]["name"]
    a_ports = servers_by_name(world)[a_server].ports
    firewall_before = firewall_calls(world, a_server)

    world.apply(adopting(world.manifest("shop", second)))
    b = wait_for(world, second, "shop", PROVISIONED)
    b_server = b["status"]["server"]["name"]

    servers = servers_by_name(world)
    assert a_server != b_server and {a_server, b_server} <= servers.keys()
    assert servers[a_server].tags["o4o.io/uid"] == a["metadata"]["uid"]
    assert servers[b_server].tags["o4o.io/uid"] == b["metadata"]["uid"]
    assert servers[a_server].ports == a_ports and firewall_calls(world, a_server) == firewall_before
    assert b["status"]["server"]["keyPairName"] == key_pair_name(second, "shop")
    assert f"KeyPair/{key_pair_name(second, 'shop')}" in world.lightsail.resources_for_uid(b["metadata"]["uid"])

    delete(world, second, "shop")

    assert world.lightsail.resources_for_uid(b["metadata"]["uid"]) == []  # its server, key pair and records
    servers = servers_by_name(world)
    assert a_server in servers and servers[a_server].static_ip_name == a["status"]["server"]["staticIpName"]
    assert f"KeyPair/{key_pair_name(first, 'prod-shop')}" in world.lightsail.resources_for_uid(a["metadata"]["uid"])
    delete(world, first, "prod-shop")
    assert world.lightsail.resources_for_uid(a["metadata"]["uid"]) == []


def test_a_server_tagged_with_another_instances_uid_is_never_adopted(world: LocalWorld) -> None:
    namespace = fresh_namespace(world, "intruder")
    target = server_name(namespace, "intruder")
    cloud(world).create_instances(instanceNames=[target], availabilityZone=f"{REGION}a", bundleId="nano_3_0",
                                  blueprintId="ubuntu_22_04", tags=[{"key": "o4o.io/uid", "value": "someone-else"}])

    world.apply(adopting(world.manifest("intruder", namespace)))
    condition = stalled(world, namespace, "intruder")
    delete(world, namespace, "intruder")

    assert condition["reason"] == "ServerOwnedElsewhere", condition
    assert firewall_calls(world, target) == 0
    assert not [e for e in world.lightsail.exchanges if e.operation == "AttachStaticIp"
                and e.request.get("instanceName") == target]
    assert servers_by_name(world)[target].tags == {"o4o.io/uid": "someone-else"}  # still there, untouched


def test_an_unclaimed_server_is_adopted_only_as_the_spec_describes_it(world: LocalWorld) -> None:
    namespace = fresh_namespace(world, "adopt")
    target = server_name(namespace, "adopt")
    cloud(world).create_instances(instanceNames=[target], availabilityZone=f"{REGION}a", bundleId="micro_3_0",
                                  blueprintId="ubuntu_22_04")

    world.apply(adopting(world.manifest("adopt", namespace)))
    condition = stalled(world, namespace, "adopt")
    delete(world, namespace, "adopt")

    assert condition["reason"] == "AdoptionMismatch" and "spec.provider.lightsail.bundleId" in condition["message"]
    assert firewall_calls(world, target) == 0 and servers_by_name(world)[target].tags == {}


def test_a_key_pair_of_our_name_holding_another_key_is_refused(world: LocalWorld) -> None:
    namespace = fresh_namespace(world, "keyed")
    name = key_pair_name(namespace, "keyed")
    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    cloud(world).import_key_pair(keyPairName=name, publicKeyBase64=other_key)

    world.apply(world.manifest("keyed", namespace))
    condition = stalled(world, namespace, "keyed")
    delete(world, namespace, "keyed")

    assert condition["reason"] == "KeyPairMismatch" and "spec.ssh.privateKeySecretRef" in condition["message"]
    assert server_name(namespace, "keyed") not in servers_by_name(world)
    assert cloud(world).get_key_pair(keyPairName=name)["keyPair"]["name"] == name  # not ours: left alone


def a_and_txt(world: LocalWorld, domain: str) -> list[tuple[str, str]]:
    return sorted((e.type, e.target) for e in world.lightsail.domain_entries() if e.name == domain)


def test_two_tenants_claiming_one_domain_the_second_stalls_and_the_first_keeps_it(world: LocalWorld) -> None:
    first, second = fresh_namespaces(world, "dns-a", "dns-b")
    domain = f"claimed-{first}.{ZONE}"
    world.apply(world.manifest("site", first, domain=domain))
    owner = wait_for(world, first, "site", DNS_DONE)
    records = a_and_txt(world, domain)

    world.apply(world.manifest("site", second, domain=domain))
    condition = stalled(world, second, "site")
    delete(world, second, "site")

    assert condition["reason"] == "DomainOwnedElsewhere" and "spec.domain" in condition["message"], condition
    assert ("A", owner["status"]["server"]["ipAddress"]) in records and len(records) == 2
    assert a_and_txt(world, domain) == records  # untouched, by the claim and by the teardown
    delete(world, first, "site")
    assert a_and_txt(world, domain) == []


def test_a_hand_made_a_record_is_never_overwritten_or_deleted(world: LocalWorld) -> None:
    namespace = fresh_namespace(world, "manual")
    domain = f"manual-{namespace}.{ZONE}"
    cloud(world, "us-east-1").create_domain_entry(domainName=ZONE, domainEntry={
        "name": domain, "type": "A", "target": "192.0.2.250"})

    world.apply(world.manifest("manual", namespace, domain=domain))
    condition = stalled(world, namespace, "manual")
    delete(world, namespace, "manual")

    assert condition["reason"] == "DomainOwnedElsewhere" and "spec.domain" in condition["message"], condition
    assert a_and_txt(world, domain) == [("A", "192.0.2.250")]
