"""manifests/argocd/fleet-health.lua, on the statuses the fleet's planner really writes.

Each case runs pipeline/fleet_rollout.plan on a small fleet and feeds the status it decides to the Lua
(tests/delivery/lua/harness.lua, as Argo CD runs it), so the script reads the fields the operator writes.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from test_argocd_health import FLEET_HEALTH, run_health

from o4o_operator.models_fleet import DeploymentFleetSpec, DeploymentFleetStatus, FleetTarget
from o4o_operator.pipeline.fleet_rollout import MemberState, plan, stalled

OLD, NEW = "a" * 40, "b" * 40
TARGET = FleetTarget(repository="https://example.com/o4o.git", revision="main", commit=NEW)
NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)


def _fleet(waves: list[dict[str, Any]], members: dict[str, MemberState], *, paused: bool = False,
           generation: int = 2) -> dict[str, Any]:
    spec = {"template": {}, "members": [{"name": n, "domain": f"{n}.example.com"} for n in ("m0", "m1")],
            "strategy": {"waves": waves}, "paused": paused}
    status = plan(DeploymentFleetSpec.model_validate(spec), 2, TARGET, members, DeploymentFleetStatus(), None, NOW)
    return {"metadata": {"name": "shops", "generation": generation}, "spec": spec,
            "status": status.status.to_body()}


def _member(name: str, *, on: str, ready: bool = True, stalled: bool = False) -> MemberState:
    return MemberState(name, pinned_revision=on, commit=on if ready else OLD, generation=2, observed_generation=2,
                       ready=ready, stalled=stalled, reason="RolledBack" if stalled else "Succeeded")


TWO = [{"name": "canary", "count": 1}, {"name": "rest", "percentage": 100}]
GATED = [{"name": "canary", "count": 1}, {"name": "rest", "percentage": 100, "maxUnavailable": 0}]
CASES = [
    ("complete", _fleet(TWO, {"m0": _member("m0", on=NEW), "m1": _member("m1", on=NEW)}), "Healthy",
     "All 2 members"),
    ("rolling the canary", _fleet(TWO, {"m0": _member("m0", on=OLD), "m1": _member("m1", on=OLD)}), "Progressing",
     "(wave canary)"),
    ("halted at the canary", _fleet(TWO, {"m0": _member("m0", on=NEW, ready=False, stalled=True),
                                          "m1": _member("m1", on=OLD)}), "Degraded", "m0 failed in wave canary"),
    ("paused", _fleet(TWO, {"m0": _member("m0", on=OLD), "m1": _member("m1", on=OLD)}, paused=True), "Suspended",
     "Paused at wave canary"),
    ("at the manual gate", _fleet(GATED, {"m0": _member("m0", on=NEW), "m1": _member("m1", on=OLD)}), "Suspended",
     "deploy.o4o.io/promote=rest"),
    ("status of an older generation", _fleet(TWO, {"m0": _member("m0", on=NEW), "m1": _member("m1", on=NEW)},
                                             generation=3), "Progressing", "observe generation 3"),
    ("no status yet", {"metadata": {"generation": 1}, "spec": {}}, "Progressing", "report status"),
    ("a bad spec", {"metadata": {"generation": 2}, "spec": {}, "status": stalled(
        DeploymentFleetStatus(), 2, "OverlappingSelectors", "spec.strategy.waves[1].selector: overlap", NOW
    ).to_body()}, "Degraded", "spec.strategy.waves[1].selector"),
]


@pytest.mark.parametrize(("obj", "health", "message"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_fleet_health(obj: dict[str, Any], health: str, message: str, tmp_path: Path) -> None:
    got_health, got_message = run_health(obj, tmp_path, FLEET_HEALTH)
    assert got_health == health, got_message
    assert message in got_message


def test_cases_cover_every_argo_status() -> None:
    assert {case[2] for case in CASES} == {"Healthy", "Progressing", "Degraded", "Suspended"}
