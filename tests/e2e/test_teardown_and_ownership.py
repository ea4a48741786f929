"""Issue 13.12 and 13.13 end to end: teardown survives namespace deletion; only what we own is touched."""

from __future__ import annotations

import json
from typing import Any

from e2e_support import wait_for

from o4o_operator.models import secret_finalizer
from o4o_operator.testing.world import LocalWorld

DELETION_TIMEOUT = 150


def _kubectl_json(world: LocalWorld, *args: str) -> dict[str, Any]:
    return json.loads(world.control_plane.kubectl(*args, "-o", "json").stdout)  # type: ignore[no-any-return]


def _wait_deleted(world: LocalWorld, namespace: str, what: str) -> None:
    result = world.control_plane.kubectl("wait", "--for=delete", what, "-n", namespace,
                                         f"--timeout={DELETION_TIMEOUT}s", check=False,
                                         timeout=DELETION_TIMEOUT + 30)
    if result.returncode != 0:
        left = world.control_plane.kubectl("get", what, "-n", namespace, "-o", "json", check=False).stdout
        operator_log = world.operator.output()[-6000:] if world.operator else ""
        raise AssertionError(f"{what} not deleted: {result.stderr}\n{left[-3000:]}\noperator log:\n{operator_log}")


def test_deleting_the_namespace_tears_down_the_cloud_resources_and_lets_the_secret_go(
        world: LocalWorld, namespace: str) -> None:
    world.create_secrets(namespace)
    world.control_plane.kubectl("create", "secret", "generic", "aws-credentials", "-n", namespace,
                                "--from-literal=aws_access_key_id=local", "--from-literal=aws_secret_access_key=local")
    manifest = world.manifest("nsgone", namespace)
    manifest["spec"]["provider"]["lightsail"]["credentialsSecretRef"] = {"name": "aws-credentials"}
    world.apply(manifest)
    obj = wait_for(world, namespace, "nsgone", "condition=Ready")
    uid = obj["metadata"]["uid"]
    held = _kubectl_json(world, "get", "secret", "aws-credentials", "-n", namespace)
    assert obj["status"]["heldSecrets"] == ["aws-credentials"]
    assert secret_finalizer(uid) in held["metadata"]["finalizers"]
    assert world.lightsail.resources_for_uid(uid)

    # What the namespace controller does, at once: the namespace turns Terminating, then its Secrets and
    # its DeploymentInstances are deleted (there is no controller-manager here, so the test does it).
    world.control_plane.kubectl("delete", "namespace", namespace, "--wait=false")
    assert _kubectl_json(world, "get", "namespace", namespace)["status"]["phase"] == "Terminating"
    world.control_plane.kubectl("delete", "secrets", "--all", "-n", namespace, "--wait=false")
    world.control_plane.kubectl("delete", "di", "--all", "-n", namespace, "--wait=false")

    _wait_deleted(world, namespace, "di/nsgone")
    _wait_deleted(world, namespace, "secret/aws-credentials")
    assert world.lightsail.resources_for_uid(uid) == []
    assert not [e for e in world.lightsail.domain_entries() if e.name == "nsgone.example.com"]
    assert world.control_plane.kubectl("get", "secrets", "-n", namespace, "-o", "name").stdout.strip() == ""


def test_dropping_the_credentials_reference_releases_the_secret(world: LocalWorld, namespace: str) -> None:
    world.create_secrets(namespace)
    world.control_plane.kubectl("create", "secret", "generic", "aws-credentials", "-n", namespace,
                                "--from-literal=aws_access_key_id=local", "--from-literal=aws_secret_access_key=local")
    manifest = world.manifest("unheld", namespace)
    manifest["spec"]["provider"]["lightsail"]["credentialsSecretRef"] = {"name": "aws-credentials"}
    world.apply(manifest)
    uid = wait_for(world, namespace, "unheld", "condition=Ready")["metadata"]["uid"]
    world.control_plane.kubectl("patch", "di", "unheld", "-n", namespace, "--type=json", "-p", json.dumps(
        [{"op": "remove", "path": "/spec/provider/lightsail/credentialsSecretRef"}]))
    wait_for(world, namespace, "unheld", "jsonpath={.status.observedGeneration}=2")  # the hold goes first
    secret = _kubectl_json(world, "get", "secret", "aws-credentials", "-n", namespace)
    assert secret_finalizer(uid) not in (secret["metadata"].get("finalizers") or [])
    assert not world.get("unheld", namespace)["status"].get("heldSecrets")
    world.control_plane.kubectl("delete", "di", "unheld", "-n", namespace, f"--timeout={DELETION_TIMEOUT}s",
                                timeout=DELETION_TIMEOUT + 30)


def test_a_foreign_log_configmap_is_never_overwritten_nor_deleted(world: LocalWorld, namespace: str) -> None:
    world.create_secrets(namespace)
    world.control_plane.kubectl("create", "configmap", "mine-log", "-n", namespace, "--from-literal=log=theirs")
    before = _kubectl_json(world, "get", "configmap", "mine-log", "-n", namespace)
    world.apply(world.manifest("mine", namespace))
    wait_for(world, namespace, "mine", "condition=Ready")
    events = _kubectl_json(world, "get", "events", "-n", namespace)["items"]
    assert [e["type"] for e in events if e["reason"] == "LogConfigMapNotOwned"] == ["Warning"]
    world.control_plane.kubectl("delete", "di", "mine", "-n", namespace, f"--timeout={DELETION_TIMEOUT}s",
                                timeout=DELETION_TIMEOUT + 30)
    after = _kubectl_json(world, "get", "configmap", "mine-log", "-n", namespace)
    assert after == before
