"""The shipped ClusterRole is enough: a DI reaches Ready and deletes cleanly under the operator's own token."""

from __future__ import annotations

from pathlib import Path

from e2e_support import wait_for

from o4o_operator.testing.world import LocalWorld

REPO = Path(__file__).resolve().parents[2]


def test_instance_reaches_ready_and_deletes_under_the_shipped_role(world: LocalWorld, namespace: str,
                                                                   tmp_path: Path) -> None:
    plane = world.control_plane
    if plane.kubectl("get", "namespace", "o4o-system", check=False).returncode != 0:
        plane.create_namespace("o4o-system")
    plane.kubectl("apply", "-k", str(REPO / "manifests" / "rbac"), "-n", "o4o-system")
    token = plane.token_for("o4o-operator", "o4o-system")
    kubeconfig = plane.kubeconfig_for_token(token, tmp_path / "operator.kubeconfig")
    who = plane.kubectl("--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert who.stdout == "system:serviceaccount:o4o-system:o4o-operator"
    world.start_operator(kubeconfig)
    try:
        world.create_secrets(namespace)
        world.apply(world.manifest("rbac", namespace))
        obj = wait_for(world, namespace, "rbac", "condition=Ready")
        assert world.operator is not None
        assert "Forbidden" not in world.operator.output() and "403" not in world.operator.output()
        plane.kubectl("delete", "di", "rbac", "-n", namespace, "--timeout=120s", timeout=150)
        assert world.lightsail.resources_for_uid(obj["metadata"]["uid"]) == []
    finally:
        world.start_operator()  # back to admin for the rest of the module
