"""manifests/: the operator's two replicas, active/standby on a Lease (see README, "Two replicas and fencing")."""

from __future__ import annotations

from typing import Any

import pytest
from delivery_support import MANIFESTS, Render
from test_manifests import container, find

SYSTEM_NAMESPACE = "o4o-system"


@pytest.fixture(scope="module")
def default(render: Render) -> list[dict[str, Any]]:
    return render(MANIFESTS / "default")


def test_two_replicas_elect_a_leader(default: list[dict[str, Any]]) -> None:
    """Leader election on, the pod's name and namespace from the downward API, replicas spread over nodes, one
    kept through a drain, and the Lease's RBAC: its namespace only, nothing but get/create/update."""
    deployment = find(default, "Deployment", "o4o-operator")
    env = {item["name"]: item for item in container(deployment)["env"]}
    assert env["O4O_LEADER_ELECTION"]["value"] == "true"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    labels = deployment["spec"]["selector"]["matchLabels"]
    preferred = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"]
    assert [(term["podAffinityTerm"]["topologyKey"], term["podAffinityTerm"]["labelSelector"]["matchLabels"])
            for term in preferred] == [("kubernetes.io/hostname", labels)]
    budget = find(default, "PodDisruptionBudget", "o4o-operator")
    assert budget["spec"] == {"minAvailable": 1, "selector": {"matchLabels": labels}}
    role = find(default, "Role", "o4o-operator-leader-election")
    assert role["metadata"]["namespace"] == SYSTEM_NAMESPACE
    granted = {(verb, tuple(rule.get("resourceNames", ()))) for rule in role["rules"] for verb in rule["verbs"]
               if rule["apiGroups"] == ["coordination.k8s.io"] and rule["resources"] == ["leases"]}
    assert granted == {("create", ()), ("get", ("o4o-operator",)), ("update", ("o4o-operator",))}
    assert len(role["rules"]) == 2
    binding = find(default, "RoleBinding", "o4o-operator-leader-election")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": deployment["spec"]["template"]["spec"][
        "serviceAccountName"], "namespace": SYSTEM_NAMESPACE}]
