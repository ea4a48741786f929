"""What the fleet e2e modules share beyond the recorded member watch (``o4o_operator.testing.fleet_watch``,
re-exported here): the fleet's name, its status and members, and waits on it with their evidence on failure.
"""

from __future__ import annotations

import json
from typing import Any

from o4o_operator.testing.fleet_watch import MemberWatch, order_violations, ready_only, updated_to
from o4o_operator.testing.world import LocalWorld

__all__ = ["FLEET", "MemberWatch", "condition", "fleet_status", "members", "order_violations", "ready_only",
           "updated_to", "wait_fleet"]

FLEET = "shops"


def fleet_status(world: LocalWorld, namespace: str) -> dict[str, Any]:
    current = world.control_plane.kubectl("get", "dfleet", FLEET, "-n", namespace, "-o", "json")
    return json.loads(current.stdout)  # type: ignore[no-any-return]


def members(world: LocalWorld, namespace: str) -> dict[str, dict[str, Any]]:
    listing = json.loads(world.control_plane.kubectl("get", "di", "-n", namespace, "-o", "json").stdout)
    return {item["metadata"]["name"]: item for item in listing["items"]}


def wait_fleet(world: LocalWorld, namespace: str, condition: str, timeout: int = 150) -> dict[str, Any]:
    """``kubectl wait`` on the fleet; on a timeout, the fleet's status, its members and the operator's log."""
    result = world.control_plane.kubectl("wait", f"--for={condition}", f"dfleet/{FLEET}", "-n", namespace,
                                         f"--timeout={timeout}s", check=False, timeout=timeout + 30)
    current = world.control_plane.kubectl("get", "dfleet", FLEET, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        log = "\n".join(line for line in (world.operator.output() if world.operator else "").splitlines()
                        if "Timer 'roll_fleet' succeeded" not in line)[-5000:]
        status = json.loads(current.stdout).get("status") if current.returncode == 0 else current.stderr
        seen = {name: (m["spec"]["source"]["revision"][:8], m.get("status", {}).get("phase"),
                       [(c["type"], c["status"], c["reason"]) for c in m.get("status", {}).get("conditions", [])
                        if c["type"] in ("Ready", "Stalled")])
                for name, m in members(world, namespace).items()}
        raise AssertionError(f"{condition}: {result.stderr}\nfleet status: {json.dumps(status, indent=1)}\n"
                             f"members: {seen}\noperator log:\n{log}")
    return json.loads(current.stdout)  # type: ignore[no-any-return]


def condition(fleet: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in fleet["status"]["conditions"] if c["type"] == type_)
