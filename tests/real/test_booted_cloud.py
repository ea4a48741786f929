"""The local cloud hands out booted hosts: CreateInstances boots one, its host keys are real, delete removes it.

Through boto3 against the local Lightsail, as the operator calls it; no operator here.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from o4o_operator.testing.real_world import RealWorld

pytestmark = [pytest.mark.real, pytest.mark.timeout(900)]


def _lightsail(world: RealWorld) -> Any:
    return boto3.client("lightsail", region_name="us-east-1", endpoint_url=world.lightsail.endpoint_url,
                        aws_access_key_id="local", aws_secret_access_key="local",
                        config=Config(retries={"mode": "standard"}))


def _wait_running(client: Any, name: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        instance = client.get_instance(instanceName=name)["instance"]
        if instance["state"]["name"] == "running":
            return instance
        assert time.monotonic() < deadline, f"{name} still {instance['state']['name']}"
        time.sleep(0.5)  # polling the cloud, as the operator does


def test_create_boots_a_debian_host_that_the_key_pair_logs_into_and_delete_removes_it(
        real_world: RealWorld, tmp_path: Path) -> None:
    client = _lightsail(real_world)
    key = tmp_path / "id"
    key.write_text(real_world.ssh_private_key_pem)
    key.chmod(0o600)
    client.import_key_pair(keyPairName="cloud-test", publicKeyBase64=real_world.public_key_openssh)
    started = time.monotonic()
    client.create_instances(instanceNames=["cloud-test-1"], availabilityZone="us-east-1a",
                            blueprintId="debian_12", bundleId="small_3_0", keyPairName="cloud-test")
    instance = _wait_running(client, "cloud-test-1")
    print(f"\ncreate to running: {time.monotonic() - started:.1f} s")
    client.allocate_static_ip(staticIpName="cloud-test-1-ip")
    client.attach_static_ip(staticIpName="cloud-test-1-ip", instanceName="cloud-test-1")
    static_ip = client.get_static_ip(staticIpName="cloud-test-1-ip")["staticIp"]["ipAddress"]
    assert static_ip == instance["publicIpAddress"]
    details = client.get_instance_access_details(instanceName="cloud-test-1", protocol="ssh")["accessDetails"]
    assert details["username"] == "admin"
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(f"{static_ip} {k['algorithm']} {k['publicKey']}\n" for k in details["hostKeys"]))
    login = subprocess.run(
        ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={known_hosts}", f"admin@{static_ip}", "sudo -n cat /etc/os-release"],
        capture_output=True, text=True, timeout=120, check=False)
    assert login.returncode == 0, login.stderr
    assert 'VERSION_CODENAME=bookworm' in login.stdout
    host = real_world.host("cloud-test-1")

    client.delete_instance(instanceName="cloud-test-1")
    assert [s.name for s in real_world.lightsail.servers()] == []
    deadline = time.monotonic() + 120
    while host.running or "cloud-test-1" in real_world.booted.hosts:
        assert time.monotonic() < deadline, "the host was not powered off"
        time.sleep(0.2)
    assert not host.directory.exists()


def test_other_blueprints_are_refused_by_the_booted_fleet(real_world: RealWorld) -> None:
    client = _lightsail(real_world)
    with pytest.raises(client.exceptions.InvalidInputException, match="debian_12"):
        client.create_instances(instanceNames=["ubuntu-1"], availabilityZone="us-east-1a",
                                blueprintId="ubuntu_22_04", bundleId="small_3_0")
    assert real_world.lightsail.servers() == []
