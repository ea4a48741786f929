"""manifests/flux/flux-kustomization.yaml's healthCheckExprs under Flux's own CEL evaluation.

``flux-cel`` (testing/fluxcel, built by testing/fluxcelbin.py at a pinned github.com/fluxcd/pkg/runtime) runs
the status reader that kustomize-controller builds from a Kustomization's ``spec.healthCheckExprs`` on each
object, and beside it kstatus alone (what Flux reads without them). The objects are every status the Argo CD
Lua tests use (test_argocd_health.py, test_argocd_fleet_health.py, each built with the operator's own models
and planner) and a few more below; on each, Flux must agree with what the Lua says of the same object:
Healthy is Current, Degraded is Failed, Progressing and Suspended are InProgress. The one exception is an
object with no ``status`` at all: no CEL expression can test for a missing top-level field, so Flux reads
Unknown (an evaluation error naming ``status``), which its wait treats as not done, like InProgress.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from delivery_support import MANIFESTS, REPO
from test_argocd_fleet_health import CASES as FLEET_CASES
from test_argocd_health import CASES as INSTANCE_CASES
from test_argocd_health import FLEET_HEALTH, HEALTH, READY, condition, instance, operators_own_instance, run_health

from o4o_operator.models import PAUSED_ANNOTATION, DeploymentInstanceStatus, Phase
from o4o_operator.pipeline.conditions import Verdict
from o4o_operator.testing import fluxcelbin

EXPRESSIONS = MANIFESTS / "flux" / "flux-kustomization.yaml"
API_VERSION = "deploy.o4o.io/v1alpha1"
FLUX_OF_ARGO = {"Healthy": "Current", "Progressing": "InProgress", "Suspended": "InProgress", "Degraded": "Failed"}
NO_STATUS_ERROR = "no such attribute(s): status."


def fleet(obj: dict[str, Any]) -> dict[str, Any]:
    """A fleet case of the Lua test as the API server serves it (Flux picks the expressions by kind)."""
    return {"apiVersion": API_VERSION, "kind": "DeploymentFleet", **obj}


def fleet_case(name: str) -> dict[str, Any]:
    return fleet(next(obj for case, obj, _, _ in FLEET_CASES if case == name))


def without_observed_generation(obj: dict[str, Any]) -> dict[str, Any]:
    status = {key: value for key, value in obj["status"].items() if key != "observedGeneration"}
    return {**obj, "status": status}


READY_NOW = DeploymentInstanceStatus(phase=Phase.READY, observed_generation=2, conditions=(READY,))
FLEET_COMPLETE = fleet_case("complete")
MORE_CASES: list[tuple[str, dict[str, Any]]] = [
    ("ready, but no observedGeneration", without_observed_generation(instance(READY_NOW))),
    ("fleet ready, but no observedGeneration", without_observed_generation(FLEET_COMPLETE)),
    ("paused before the operator wrote a status", instance(None, paused=True)),
    ("paused by annotation before any status",
     {**instance(None), "metadata": {"name": "shop", "generation": 2, "annotations": {PAUSED_ANNOTATION: "TRUE"}}}),
    ("annotation paused=false", {**instance(READY_NOW), "metadata": {
        "name": "shop", "generation": 2, "annotations": {PAUSED_ANNOTATION: "false"}}}),
    ("being deleted before any status",
     {**instance(None), "metadata": {"name": "shop", "generation": 2, "deletionTimestamp": "2025-01-02T00:00:00Z"}}),
    ("stalled with its conditions but no phase", instance(DeploymentInstanceStatus(
        observed_generation=2, conditions=(condition("Stalled", "True", "BundleNotFound", "bad bundle"),)))),
    ("paused, with a Ready status of its generation", instance(READY_NOW, paused=True)),
    ("phase Failed while Reconciling", instance(DeploymentInstanceStatus(phase=Phase.FAILED, observed_generation=2,
        conditions=(condition("Ready", "False", "Retrying"), condition("Reconciling", "True", "Retrying"))))),
    ("a status of only observedGeneration", {**instance(None), "status": {"observedGeneration": 2}}),
    ("fleet: a status of only observedGeneration", {**fleet_case("complete"), "status": {"observedGeneration": 2}}),
]

CORPUS: list[tuple[str, dict[str, Any], Path]] = [
    *((f"instance: {name}", obj, HEALTH) for name, obj, _, _ in INSTANCE_CASES),
    *((f"instance, operator's own {verdict.value}", operators_own_instance(verdict), HEALTH) for verdict in Verdict),
    *((f"fleet: {name}", fleet(obj), FLEET_HEALTH) for name, obj, _, _ in FLEET_CASES),
    *((name, obj, FLEET_HEALTH if obj["kind"] == "DeploymentFleet" else HEALTH) for name, obj in MORE_CASES),
]


def health_checks() -> list[dict[str, str]]:
    """The shipped ``spec.healthCheckExprs``, exactly as a user copies them."""
    kustomization = yaml.safe_load(EXPRESSIONS.read_text())
    checks: list[dict[str, str]] = kustomization["spec"]["healthCheckExprs"]
    return checks


@pytest.fixture(scope="module")
def flux_cel() -> Path:
    return fluxcelbin.ensure_flux_cel()


def evaluate(binary: Path, objects: list[dict[str, Any]],
             checks: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
    """Flux's verdict on each object: status, message, error, and kstatus's without the expressions."""
    request = {"healthChecks": health_checks() if checks is None else checks, "objects": objects}
    result = subprocess.run([str(binary)], input=json.dumps(request), capture_output=True, text=True,
                            check=False, timeout=30)
    assert result.returncode == 0, result.stderr
    verdicts: list[dict[str, str]] = json.loads(result.stdout)
    return verdicts


def disagreement(obj: dict[str, Any], lua_health: str, verdict: dict[str, str]) -> str | None:
    """Why Flux's verdict does not match the Lua's health of the same object (None: it does)."""
    wanted = FLUX_OF_ARGO[lua_health]
    if lua_health == "Progressing" and "status" not in obj and verdict["status"] == "Unknown":
        return None if NO_STATUS_ERROR in verdict["error"] else f"Unknown for another reason: {verdict['error']}"
    if verdict["status"] != wanted:
        return f"Flux says {verdict['status']} ({verdict['error'] or 'no error'}), Argo CD says {lua_health}"
    return None


@pytest.mark.parametrize(("obj", "script"), [case[1:] for case in CORPUS], ids=[case[0] for case in CORPUS])
def test_flux_agrees_with_the_argo_cd_health(obj: dict[str, Any], script: Path, flux_cel: Path,
                                             tmp_path: Path) -> None:
    lua_health, message = run_health(obj, tmp_path, script)
    (verdict,) = evaluate(flux_cel, [obj])
    assert disagreement(obj, lua_health, verdict) is None, f"{disagreement(obj, lua_health, verdict)}: {message}"


def test_the_corpus_reaches_every_outcome(flux_cel: Path) -> None:
    outcomes = {verdict["status"] for verdict in evaluate(flux_cel, [case[1] for case in CORPUS])}
    assert outcomes == {"Current", "InProgress", "Failed", "Unknown"}


@pytest.mark.parametrize("obj", [instance(None), fleet_case("no status yet")], ids=["instance", "fleet"])
def test_no_status_at_all_is_never_current(obj: dict[str, Any], flux_cel: Path) -> None:
    """The issue's measurement: kstatus alone calls an object without status Current; the expressions do not."""
    assert "status" not in obj
    (verdict,) = evaluate(flux_cel, [obj])
    assert verdict["kstatus"] == "Current"
    assert verdict["status"] == "Unknown", verdict
    assert NO_STATUS_ERROR in verdict["error"]


def test_an_empty_status_is_in_progress(flux_cel: Path) -> None:
    """An empty status (kstatus: Current) has no observedGeneration yet: the has() guards make it InProgress."""
    objects = [{**instance(None), "status": {}}, {**fleet_case("no status yet"), "status": {}}]
    assert [(v["kstatus"], v["status"], v["error"]) for v in evaluate(flux_cel, objects)] == [
        ("Current", "InProgress", ""), ("Current", "InProgress", "")]


def test_a_stale_observed_generation_and_a_stall() -> None:
    """The named cases are in the corpus (each checked against the Lua above)."""
    names = {case[0] for case in CORPUS}
    assert {"instance: ready for an older generation", "fleet: status of an older generation",
            "instance: stalled", "fleet: halted at the canary", "instance: no status yet"} <= names


def test_the_expressions_cover_both_kinds_of_the_crds() -> None:
    crds = [yaml.safe_load(path.read_text()) for path in sorted((REPO / "crds").glob("*.yaml"))]
    served = {(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
              for crd in crds for version in crd["spec"]["versions"] if version.get("served")}
    assert {(check["apiVersion"], check["kind"]) for check in health_checks()} == served
    assert all(set(check) == {"apiVersion", "kind", "inProgress", "failed", "current"} for check in health_checks())


@pytest.mark.parametrize(("check", "refusal"), [
    ({"current": "status.(("}, "failed to parse the expression Current"),
    ({"current": "true", "inprogress": "true"}, 'unknown field "healthChecks[0].inprogress"'),
], ids=["CEL that does not parse", "a field name in the wrong case"])
def test_the_harness_refuses_what_flux_refuses(check: dict[str, str], refusal: str, flux_cel: Path) -> None:
    request = {"healthChecks": [{"apiVersion": API_VERSION, "kind": "DeploymentInstance", **check}], "objects": []}
    result = subprocess.run([str(flux_cel)], input=json.dumps(request), capture_output=True, text=True,
                            check=False, timeout=30)
    assert result.returncode == 2
    assert refusal in result.stderr


def test_the_build_is_pinned() -> None:
    """go.mod pins the runtime that fluxcelbin names, go.sum holds its hash, and the build resolves nothing."""
    source = fluxcelbin.SOURCE
    assert fluxcelbin.pinned_runtime_version((source / "go.mod").read_text()) == fluxcelbin.RUNTIME_VERSION
    go_sum = (source / "go.sum").read_text()
    assert f"{fluxcelbin.RUNTIME_MODULE} v{fluxcelbin.RUNTIME_VERSION} h1:" in go_sum
    assert "-mod=readonly" in fluxcelbin.BUILD_ENV["GOFLAGS"].split()
    assert fluxcelbin.BUILD_ENV["GOTOOLCHAIN"] == "local"
    assert "toolchain" not in (source / "go.mod").read_text()


def test_the_readmes_point_to_the_expressions() -> None:
    for readme in (REPO / "README.md", MANIFESTS / "README.md"):
        assert "flux/flux-kustomization.yaml" in readme.read_text(), readme
