"""The drift check notices what was lost and the pipeline repairs it."""

from __future__ import annotations

import boto3
from e2e_support import conditions, wait_for

from o4o_operator.testing.sandbox_shim import HEALTHY_BODY
from o4o_operator.testing.world import LocalWorld


def test_a_failing_health_check_turns_ready_false_and_recovers(world: LocalWorld, namespace: str) -> None:
    world.start_operator(env={"O4O_DRIFT_INTERVAL_SECONDS": "2"})
    try:
        world.create_secrets(namespace)
        world.apply(world.manifest("drift", namespace))
        obj = wait_for(world, namespace, "drift", "condition=Ready")
        host = world.fleet.host_for(obj["status"]["server"]["name"])
        host.set_http_response(500, "down", url_contains="/api/health")
        broken = wait_for(world, namespace, "drift", "condition=Ready=false")
        assert conditions(broken)["Ready"]["status"] == "False"
        host.set_http_response(200, HEALTHY_BODY, url_contains="/api/health")
        healed = wait_for(world, namespace, "drift", "condition=Ready")
        assert healed["status"]["lastCheckTime"] >= obj["status"]["lastCheckTime"]
    finally:
        world.start_operator()


def test_a_vanished_server_is_provisioned_again(world: LocalWorld, namespace: str) -> None:
    world.start_operator(env={"O4O_DRIFT_INTERVAL_SECONDS": "2"})
    try:
        world.create_secrets(namespace)
        world.apply(world.manifest("vanish", namespace))
        obj = wait_for(world, namespace, "vanish", "condition=Ready")
        creates_before = world.lightsail.request_log.count("CreateInstances")
        lightsail = boto3.client("lightsail", region_name="us-east-1", endpoint_url=world.lightsail.endpoint_url,
                                 aws_access_key_id="local", aws_secret_access_key="local")
        lightsail.delete_instance(instanceName=obj["status"]["server"]["name"])  # as if by hand, in the console
        wait_for(world, namespace, "vanish", "condition=Ready=false")
        healed = wait_for(world, namespace, "vanish", "condition=Ready")
        servers = [r for r in world.lightsail.resources_for_uid(obj["metadata"]["uid"]) if r.startswith("Instance/")]
        assert len(servers) == 1
        assert world.lightsail.request_log.count("CreateInstances") == creates_before + 1
        assert healed["status"]["server"]["ipAddress"] == obj["status"]["server"]["ipAddress"]  # the static IP
    finally:
        world.start_operator()
