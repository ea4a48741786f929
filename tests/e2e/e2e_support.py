"""What the e2e modules share besides their fixtures: the namespace prefixes their operators watch, waiting for a
condition with the evidence on failure, the apiserver's count of status writes, and views of a status."""

from __future__ import annotations

import json
import re
from typing import Any

from o4o_operator.testing.world import LocalWorld

PREFIX = "e2e-"


def module_prefix(module_name: str) -> str:
    """The prefix of one module's namespaces, ``e2e-<module>--``, which its world's operator alone watches.

    Modules on one worker share its control plane, and nothing there deletes what a module left (no garbage
    collection, namespaces never go away): an operator watching every ``e2e-*`` namespace took over the DIs of
    the modules before it, whose servers were in a cloud that is gone, and set them up again (the fifty fleet
    members included). The double hyphen ends the module's part, so ``e2e-fleet--*`` never matches
    ``e2e-fleet-waves--...``.
    """
    module = module_name.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    return f"{PREFIX}{module}--"


def module_namespaces(module_name: str) -> tuple[str, ...]:
    """The namespace globs the module's operator watches (``LocalWorld(namespaces=...)``)."""
    return (f"{module_prefix(module_name)}*",)


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
