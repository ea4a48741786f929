"""manifests/argocd/health.lua under Debian's lua5.1, the Lua dialect Argo CD's gopher-lua speaks.

tests/delivery/lua/harness.lua runs the script the way Argo CD does: a global `obj`, only the
base/table/string/math libraries, and a returned {status, message}. The objects are built
with the operator's own status model (o4o_operator.models), so the script reads the field
names the operator really writes. The argocd-cm patch is checked against health.lua and
applied to a real ConfigMap.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from delivery_support import HERE, MANIFESTS, Render

from o4o_operator.models import (
    PAUSED_ANNOTATION,
    Condition,
    ConditionStatus,
    DeploymentInstanceStatus,
    DriftFinding,
    Phase,
)
from o4o_operator.pipeline.conditions import Summary, Verdict, build_conditions, derive_phase
from o4o_operator.testing import ControlPlane

HEALTH = MANIFESTS / "argocd" / "health.lua"
PATCH = MANIFESTS / "argocd" / "argocd-cm-patch.yaml"
HARNESS = HERE / "lua" / "harness.lua"
KEY = "resource.customizations.health.deploy.o4o.io_DeploymentInstance"
FLEET_KEY = "resource.customizations.health.deploy.o4o.io_DeploymentFleet"
FLEET_HEALTH = MANIFESTS / "argocd" / "fleet-health.lua"
T0 = "2025-01-01T00:00:00Z"


def lua_literal(value: Any) -> str:
    """A Lua table constructor for a JSON-like value (as Argo CD converts the live object)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # Lua 5.1 strings are bytes; \ddd (decimal) escapes anything that is not plain printable ASCII.
        return '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}"
                             for b in value.encode()) + '"'
    if isinstance(value, list | tuple):
        return "{" + ", ".join(lua_literal(item) for item in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_literal(str(k))}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Lua literal for {value!r}")


def run_health(obj: dict[str, Any], tmp_path: Path, script: Path = HEALTH) -> tuple[str, str]:
    lua = shutil.which("lua5.1")
    assert lua, "lua5.1 is missing: `make debian-packages` installs it"
    object_file = tmp_path / "object.lua"
    object_file.write_text("return " + lua_literal(obj) + "\n")
    result = subprocess.run([lua, str(HARNESS), str(script), str(object_file)],
                            capture_output=True, text=True, check=False, timeout=30)
    assert result.returncode == 0, result.stderr
    status, _, message = result.stdout.rstrip("\n").partition("\t")
    return status, message


def condition(type_: str, status: str, reason: str, message: str = "") -> Condition:
    return Condition(type=type_, status=ConditionStatus(status), reason=reason, message=message,
                     last_transition_time=T0, observed_generation=2)


def instance(status: DeploymentInstanceStatus | None, *, generation: int = 2,
             paused: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance",
        "metadata": {"name": "shop", "namespace": "tenant-a", "generation": generation, "uid": "u-1"},
        "spec": {"domain": "shop.example.com", "paused": paused,
                 "provider": {"lightsail": {"region": "ap-northeast-2"}}},
    }
    if status is not None:
        obj["status"] = status.to_body()
    return obj


READY = condition("Ready", "True", "Succeeded", "Serving https://shop.example.com")
RECONCILING_OFF = condition("Reconciling", "False", "Succeeded")
STALLED_OFF = condition("Stalled", "False", "Succeeded")

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("no status yet", instance(None), "Progressing", "Waiting for the operator to report status"),
    ("empty status", {**instance(None), "status": {}}, "Progressing", "observe generation 2"),
    ("ready and current",
     instance(DeploymentInstanceStatus(phase=Phase.READY, observed_generation=2, stage_progress="10/10",
                                       conditions=(READY, RECONCILING_OFF, STALLED_OFF))),
     "Healthy", "Serving https://shop.example.com"),
    ("ready for an older generation",
     instance(DeploymentInstanceStatus(phase=Phase.READY, observed_generation=1,
                                       conditions=(READY, RECONCILING_OFF, STALLED_OFF)), generation=2),
     "Progressing", "observe generation 2"),
    ("reconciling",
     instance(DeploymentInstanceStatus(
         phase=Phase.BUILDING, observed_generation=2, stage_progress="5/10",
         conditions=(condition("Ready", "False", "Reconciling", "Building the site"),
                     condition("Reconciling", "True", "BuildSite", "Building the site"), STALLED_OFF))),
     "Progressing", "Building the site (5/10)"),
    ("stalled",
     instance(DeploymentInstanceStatus(
         phase=Phase.FAILED, observed_generation=2, stage_progress="2/10",
         conditions=(condition("Ready", "False", "Stalled", "Provision failed"),
                     condition("Reconciling", "False", "Stalled"),
                     condition("Stalled", "True", "BundleNotFound", "bundle huge_9_0 does not exist")))),
     "Degraded", "bundle huge_9_0 does not exist"),
    ("stalled, and the drift check found the server stopped",
     instance(DeploymentInstanceStatus(
         phase=Phase.FAILED, observed_generation=2, stage_progress="8/10",
         conditions=(condition("Ready", "False", "AppRefused", "Install the apps: no manifest"),
                     condition("Reconciling", "False", "Idle"),
                     condition("Stalled", "True", "AppRefused", "Install the apps: no manifest")),
         drift_findings=(DriftFinding(stage="provision", reason="ServerNotRunning", message="server x is stopped"),
                         DriftFinding(stage="tls", reason="CertificateExpiring", message="expires in 3 days")))),
     "Degraded", "Install the apps: no manifest. The drift check also found: server x is stopped; expires in 3 days"),
    ("phase Failed without a Stalled condition",
     instance(DeploymentInstanceStatus(
         phase=Phase.FAILED, observed_generation=2,
         conditions=(condition("Ready", "False", "TlsFailed", "ACME said 429"),))),
     "Degraded", "ACME said 429"),
    ("stalled, but the spec changed since",
     instance(DeploymentInstanceStatus(
         phase=Phase.FAILED, observed_generation=1,
         conditions=(condition("Stalled", "True", "BundleNotFound", "bad bundle"),)), generation=2),
     "Progressing", "observe generation 2"),
    ("not ready, not reconciling, not stalled (drift check failed)",
     instance(DeploymentInstanceStatus(
         phase=Phase.READY, observed_generation=2,
         conditions=(condition("Ready", "False", "DriftCheckFailed", "nginx is not running"),
                     RECONCILING_OFF, STALLED_OFF))),
     "Degraded", "nginx is not running"),
    ("ready unknown and nothing else",
     instance(DeploymentInstanceStatus(phase=Phase.PENDING, observed_generation=2,
                                       conditions=(condition("Ready", "Unknown", "Pending"),))),
     "Progressing", "Pending"),
    ("current status without conditions",
     instance(DeploymentInstanceStatus(phase=Phase.PENDING, observed_generation=2)),
     "Progressing", "Waiting for the Ready condition"),
    ("being deleted",
     {**instance(DeploymentInstanceStatus(phase=Phase.READY, observed_generation=2, conditions=(READY,))),
      "metadata": {"name": "shop", "namespace": "tenant-a", "generation": 2,
                   "deletionTimestamp": "2025-01-02T00:00:00Z"}},
     "Progressing", "Deleting"),
    ("spec.paused wins over everything",
     instance(DeploymentInstanceStatus(
         phase=Phase.FAILED, observed_generation=1,
         conditions=(condition("Stalled", "True", "BundleNotFound", "bad bundle"),)), paused=True),
     "Suspended", "Paused"),
    ("paused by annotation, before the operator noticed",
     {**instance(DeploymentInstanceStatus(phase=Phase.READY, observed_generation=2, conditions=(READY,))),
      "metadata": {"name": "shop", "namespace": "tenant-a", "generation": 2,
                   "annotations": {PAUSED_ANNOTATION: "True"}}},
     "Suspended", "annotation deploy.o4o.io/paused"),
    ("Reconciling False with reason Paused (paused by annotation)",
     instance(DeploymentInstanceStatus(
         phase=Phase.PROVISIONING, observed_generation=2,
         conditions=(condition("Ready", "False", "Paused"),
                     condition("Reconciling", "False", "Paused", "Paused by deploy.o4o.io/paused")))),
     "Suspended", "Paused by deploy.o4o.io/paused"),
]


def operators_own_instance(verdict: Verdict) -> dict[str, Any]:
    """An instance whose status o4o_operator.pipeline.conditions itself built for ``verdict``."""
    reason = "Paused" if verdict is Verdict.PAUSED else "Because"  # decisions.py's reason for a pause
    summary = Summary(verdict, reason, f"The operator says {verdict.value}")
    return instance(DeploymentInstanceStatus(
        phase=derive_phase(summary, (), frozenset()), observed_generation=2, stage_progress="0/10",
        conditions=build_conditions((), (), frozenset(), summary, generation=2, now=T0)))


@pytest.mark.parametrize(("verdict", "health"), [
    (Verdict.SETTLED, "Healthy"), (Verdict.WORKING, "Progressing"), (Verdict.STALLED, "Degraded"),
    (Verdict.PAUSED, "Suspended"), (Verdict.DELETING, "Progressing"),
])
def test_health_of_the_operators_own_conditions(verdict: Verdict, health: str, tmp_path: Path) -> None:
    """Status built by o4o_operator.pipeline.conditions itself, for each verdict it can reach."""
    assert run_health(operators_own_instance(verdict), tmp_path)[0] == health


@pytest.mark.parametrize(("obj", "status", "message"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_health(obj: dict[str, Any], status: str, message: str, tmp_path: Path) -> None:
    got_status, got_message = run_health(obj, tmp_path)
    assert got_status == status, got_message
    assert message in got_message


def test_messages_pass_through_byte_for_byte(tmp_path: Path) -> None:
    """The Lua literal writer keeps quotes, backslashes, newlines and UTF-8 intact."""
    awkward = 'Serving "shop" at C:\\sites\nwith ünïcode ✓'
    ready = condition("Ready", "True", "Succeeded", awkward)
    obj = instance(DeploymentInstanceStatus(phase=Phase.READY, observed_generation=2, conditions=(ready,)))
    assert run_health(obj, tmp_path) == ("Healthy", awkward)


def test_cases_cover_every_argo_status() -> None:
    assert {case[2] for case in CASES} == {"Healthy", "Progressing", "Degraded", "Suspended"}


def test_the_harness_enforces_the_sandbox(tmp_path: Path) -> None:
    """A script reaching for `os` or `io` (absent in Argo CD) fails here as it would there."""
    script = tmp_path / "bad.lua"
    script.write_text('return {status = "Healthy", message = os.date()}\n')
    lua = shutil.which("lua5.1")
    assert lua
    object_file = tmp_path / "object.lua"
    object_file.write_text("return " + lua_literal(instance(None)) + "\n")
    result = subprocess.run([lua, str(HARNESS), str(script), str(object_file)],
                            capture_output=True, text=True, check=False, timeout=30)
    assert result.returncode != 0
    assert "os" in result.stderr


def test_the_patch_carries_health_lua_verbatim(render: Render) -> None:
    patch = yaml.safe_load(PATCH.read_text())
    assert (patch["kind"], patch["metadata"]["name"], patch["metadata"]["namespace"]) == (
        "ConfigMap", "argocd-cm", "argocd")
    assert sorted(patch["data"]) == [FLEET_KEY, KEY]
    assert patch["data"][KEY] == HEALTH.read_text(), "regenerate: kubectl kustomize manifests/argocd"
    assert patch["data"][FLEET_KEY] == FLEET_HEALTH.read_text(), "regenerate: kubectl kustomize manifests/argocd"
    (generated,) = render(MANIFESTS / "argocd")
    assert generated == patch


def test_the_patch_merges_into_an_existing_argocd_cm(control_plane: ControlPlane) -> None:
    """The README's `kubectl patch --type merge --patch-file` keeps argocd-cm's other settings."""
    if control_plane.kubectl("get", "namespace", "argocd", check=False).returncode != 0:
        control_plane.create_namespace("argocd")
    existing = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "argocd-cm", "namespace": "argocd",
                             "labels": {"app.kubernetes.io/part-of": "argocd"}},
                "data": {"url": "https://argocd.example.com", "timeout.reconciliation": "180s"}}
    control_plane.kubectl("delete", "configmap", "argocd-cm", "-n", "argocd", "--ignore-not-found")
    control_plane.kubectl("create", "-f", "-", input=json.dumps(existing))
    control_plane.kubectl("-n", "argocd", "patch", "configmap", "argocd-cm", "--type", "merge",
                          "--patch-file", str(PATCH))
    data = json.loads(control_plane.kubectl("get", "configmap", "argocd-cm", "-n", "argocd",
                                            "-o", "json").stdout)["data"]
    assert data == {**existing["data"], KEY: HEALTH.read_text(), FLEET_KEY: FLEET_HEALTH.read_text()}
