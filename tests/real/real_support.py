"""What the real tier's modules share besides their fixtures: the namespace prefix the operator watches, the
skip without root or tools, a namespace of the module's, waiting for a condition with the evidence on failure,
and views of a status. (A module of its own name: ``conftest`` is a different module per directory, and which
one ``import conftest`` finds depends on what pytest collected first.)"""

from __future__ import annotations

import itertools
import json
import os
import re
from typing import Any

import pytest

from booted_tools import BOOT_TOOLS, skip_without_root_or
from o4o_operator.testing.real_world import RealWorld

PREFIX = "real-"
_numbers = itertools.count(1)
_TOOLS = {**BOOT_TOOLS, "curl": "curl", "git": "git"}


def skip_without_root_or_tools() -> None:
    skip_without_root_or(_TOOLS, "the real tier boots hosts: it needs root (network namespaces, systemd-nspawn)")


def module_prefix(request: pytest.FixtureRequest) -> str:
    base = re.sub(r"[^a-z0-9-]", "-", request.module.__name__.rsplit(".", 1)[-1].lower().removeprefix("test_"))
    return f"{PREFIX}{base[:30]}-{os.getpid() % 10000}-"


def make_namespace(world: RealWorld, request: pytest.FixtureRequest, env: dict[str, str]) -> str:
    """A namespace of the module's with the ``ssh-key`` Secret and the env Secret ``app-env`` holding ``env``."""
    name = f"{module_prefix(request)}{next(_numbers)}"
    world.control_plane.create_namespace(name)
    world.create_secrets(name, env=env)
    return name


def wait_for(world: RealWorld, namespace: str, name: str, condition: str, timeout: int = 1500) -> dict[str, Any]:
    """``kubectl wait`` for a condition or jsonpath (:meth:`LocalWorld.wait_for`), then the object."""
    return world.wait_for(name, namespace, condition, timeout)


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def print_stage_times(label: str, obj: dict[str, Any]) -> None:
    """Per stage, from status: how long its last run took (for the record; nothing asserts on time)."""
    from datetime import datetime
    lines = []
    for stage in obj.get("status", {}).get("stages", []):
        began, ended = stage.get("startedAt"), stage.get("finishedAt")
        if began and ended:
            seconds = (datetime.fromisoformat(ended.replace("Z", "+00:00"))
                       - datetime.fromisoformat(began.replace("Z", "+00:00"))).total_seconds()
            lines.append(f"{stage['name']} {seconds:.1f}s")
    print(f"\n{label}: " + ", ".join(lines))


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1)[-4000:]
