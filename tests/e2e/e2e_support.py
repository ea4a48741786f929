"""What the e2e modules share besides their fixtures: the namespace prefix the operator watches, waiting for a
condition with the evidence on failure, the apiserver's count of status writes, and views of a status."""

from __future__ import annotations

import json
import re
from typing import Any

from o4o_operator.testing.world import LocalWorld

PREFIX = "e2e-"


def wait_for(world: LocalWorld, namespace: str, name: str, condition: str, timeout: int = 180) -> dict[str, Any]:
    """``kubectl wait`` for a condition or jsonpath (:meth:`LocalWorld.wait_for`), then the object."""
    return world.wait_for(name, namespace, condition, timeout)


def status_writes(world: LocalWorld) -> int:
    """PATCHes of deploymentinstances/status so far, from kube-apiserver's own metrics."""
    _, body = world.control_plane.get("/metrics")
    total = 0
    for line in body.splitlines():
        if line.startswith("apiserver_request_total{") and 'resource="deploymentinstances"' in line \
                and 'subresource="status"' in line and re.search(r'verb="(PATCH|PUT|APPLY)"', line):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def stages(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {stage["name"]: stage for stage in obj["status"]["stages"]}


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj["status"]["conditions"]}


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1)[-3000:]
