"""A SIGKILLed operator resumes a build and ends with one server; a server deleted by hand is set up again
from scratch; a delete leaves nothing behind.

The tests share one instance: the first makes it Ready through a restart, the second deletes its server in
the cloud and waits for it to serve again, the last deletes the instance.
"""

from __future__ import annotations

import socket
import time

import boto3
import pytest
from real_support import print_stage_times, wait_for

from o4o_operator.testing.dns_query import query
from o4o_operator.testing.real_world import RealWorld

pytestmark = [pytest.mark.real, pytest.mark.timeout(2400)]
NAME = "resume"
BUILD_STAGES = ("build-site", "build-api")


def _stage_running(world: RealWorld, namespace: str, timeout: float = 1200) -> str:
    """Wait until a build stage runs (watching status, as a user would with kubectl get -w)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stages = world.get(NAME, namespace).get("status", {}).get("stages", [])
        for stage in stages:
            if stage["name"] in BUILD_STAGES and stage.get("state") == "Running":
                return str(stage["name"])
        time.sleep(0.2)  # polling status: the build stage is short, a watch would not be quicker here
    raise AssertionError(f"no build stage ran within {timeout:.0f} s: {stages}")


def test_6_a_sigkilled_operator_resumes_during_a_build_and_ends_ready_with_one_server(
        real_world: RealWorld, real_namespace: str) -> None:
    started = time.monotonic()
    real_world.apply(real_world.manifest(NAME, real_namespace))
    stage = _stage_running(real_world, real_namespace)
    assert real_world.operator is not None
    real_world.operator.kill()
    print(f"\nSIGKILLed the operator during {stage}, {time.monotonic() - started:.1f} s after apply")
    real_world.start_operator()
    obj = wait_for(real_world, real_namespace, NAME, "condition=Ready")
    print(f"apply-to-Ready through a restart: {time.monotonic() - started:.1f} s")
    print_stage_times("stages", obj)
    uid = obj["metadata"]["uid"]
    instances = [r for r in real_world.lightsail.resources_for_uid(uid) if r.startswith("Instance/")]
    assert instances == [f"Instance/{obj['status']['server']['name']}"]
    assert real_world.lightsail.request_log.count("CreateInstances") == 1
    assert list(real_world.booted.hosts) == [obj["status"]["server"]["name"]]


def test_6b_a_server_deleted_by_hand_is_set_up_from_scratch_on_its_new_host_and_serves_again(
        real_world: RealWorld, real_namespace: str) -> None:
    """Issue 19: the static IP outlives the server; the new machine behind it starts blank. Ready must not
    come back until every host stage ran there again, and then the site answers over HTTPS."""
    obj = real_world.get(NAME, real_namespace)
    server, address = obj["status"]["server"]["name"], obj["status"]["server"]["ipAddress"]
    old_arn = next(i["id"] for i in obj["status"]["inventory"] if i["kind"] == "Server")
    before = {s["name"]: s["finishedAt"] for s in obj["status"]["stages"]}
    client = boto3.client("lightsail", region_name=obj["spec"]["provider"]["lightsail"]["region"],
                          endpoint_url=real_world.lightsail.endpoint_url, aws_access_key_id="local",
                          aws_secret_access_key="local")
    started = time.monotonic()
    client.delete_instance(instanceName=server)  # as if by hand, in the console
    wait_for(real_world, real_namespace, NAME, "condition=Ready=false", timeout=300)
    healed = wait_for(real_world, real_namespace, NAME, "condition=Ready")
    print(f"\nreplaced server set up from scratch and Ready in {time.monotonic() - started:.1f} s")
    print_stage_times("stages", healed)
    stages = {s["name"]: s for s in healed["status"]["stages"]}
    host_stages = ("runtime", "database", "source", "build-site", "build-api", "configure", "tls", "apps")
    assert all(stages[name]["finishedAt"] > before[name] for name in host_stages), stages
    new_arn = next(i["id"] for i in healed["status"]["inventory"] if i["kind"] == "Server")
    assert new_arn != old_arn and healed["status"]["server"]["ipAddress"] == address
    done = real_world.curl(obj["spec"]["domain"], address, "/")
    assert done.returncode == 0 and done.stdout.rpartition("\n")[2] == "200", done.stdout[-300:] + done.stderr


def test_7_delete_removes_the_host_the_dns_record_and_the_finalizer(real_world: RealWorld,
                                                                     real_namespace: str) -> None:
    obj = real_world.get(NAME, real_namespace)
    domain, server = obj["spec"]["domain"], obj["status"]["server"]["name"]
    dns = real_world.acme.dns
    before = query(dns.dns_host, dns.dns_port, domain, "A")
    assert before is not None and before.records == [("A", obj["status"]["server"]["ipAddress"])], before
    started = time.monotonic()
    real_world.control_plane.kubectl("delete", "di", NAME, "-n", real_namespace, "--timeout=600s", timeout=660)
    print(f"\ndelete took {time.monotonic() - started:.1f} s")
    gone = real_world.control_plane.kubectl("get", "di", NAME, "-n", real_namespace, check=False)
    assert "NotFound" in gone.stderr
    secret = real_world.control_plane.kubectl("get", "secret", f"{NAME}-database", "-n", real_namespace, check=False)
    assert "NotFound" in secret.stderr, "the operator-owned database Secret outlived a deletionPolicy: Delete"
    assert real_world.lightsail.resources_for_uid(obj["metadata"]["uid"]) == []
    assert [s.name for s in real_world.lightsail.servers()] == []
    assert all(e.name.rstrip(".") != domain for e in real_world.lightsail.domain_entries())
    answer = query(dns.dns_host, dns.dns_port, domain, "A")
    assert answer is not None and answer.records == [], answer
    deadline = time.monotonic() + 120
    while server in real_world.booted.hosts:
        assert time.monotonic() < deadline, f"host {server} still runs"
        time.sleep(0.2)
    with pytest.raises(OSError):
        socket.create_connection((obj["status"]["server"]["ipAddress"], 22), timeout=3).close()
