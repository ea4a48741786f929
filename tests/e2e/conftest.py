"""End-to-end fixtures: one local world (local cloud, sandbox hosts, operator) per module."""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from o4o_operator.testing import ControlPlane
from o4o_operator.testing.world import LocalWorld

PREFIX = "e2e-"
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def world(control_plane: ControlPlane) -> Iterator[LocalWorld]:
    """The operator watches only e2e namespaces: other modules leave DIs behind (no garbage collection)."""
    with LocalWorld(control_plane, namespaces=(f"{PREFIX}*",)) as local_world:
        yield local_world


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"{PREFIX}{next(_numbers)}-{os.getpid() % 10000}-{name}"[:63].strip("-")
    control_plane.create_namespace(name)
    return name


def wait_for(world: LocalWorld, namespace: str, name: str, condition: str, timeout: int = 180) -> dict[str, Any]:
    """``kubectl wait`` for a condition or jsonpath, then return the object."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = max(1, int(deadline - time.monotonic()))
        result = world.control_plane.kubectl("wait", f"--for={condition}", f"di/{name}", "-n", namespace,
                                             f"--timeout={remaining}s", check=False, timeout=remaining + 30)
        # kubectl wait's first lookup is served from the watch cache and may miss a just-created object
        if result.returncode == 0 or "NotFound" not in result.stderr or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if result.returncode != 0:
        operator_log = world.operator.output()[-6000:] if world.operator else ""
        current = world.control_plane.kubectl("get", "di", name, "-n", namespace, "-o", "json", check=False).stdout
        raise AssertionError(f"{condition} not reached: {result.stderr}\nstatus: {current[-4000:]}\n"
                             f"operator log:\n{operator_log}")
    return world.get(name, namespace)


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
