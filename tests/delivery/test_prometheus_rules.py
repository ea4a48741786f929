"""The alerts in manifests/prometheus/alerts.yaml, checked and unit-tested with promtool.

The PrometheusRule is the one source: its spec.groups are written to a plain rule file for
`promtool check rules` and `promtool test rules` (tests/delivery/promtool/<Alert>.yaml, one
file per alert, each with firing and quiet cases). Mutation tests break each expression in a
way that matters and require the unit tests to notice.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from delivery_support import HERE, MANIFESTS

from o4o_operator import metrics
from o4o_operator.models import Phase

UNIT_TESTS = HERE / "promtool"


def rule_groups() -> list[dict[str, Any]]:
    document = yaml.safe_load((MANIFESTS / "prometheus" / "alerts.yaml").read_text())
    assert document["kind"] == "PrometheusRule"
    return list(document["spec"]["groups"])


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in rule_groups() for rule in group["rules"] if "alert" in rule}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: `make debian-packages` installs Debian's prometheus package"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60)


def run_unit_tests(alert: str, groups: list[dict[str, Any]],
                   workdir: Path) -> subprocess.CompletedProcess[str]:
    """Write `groups` as rules.yaml next to a copy of the alert's unit tests; run promtool test rules."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    shutil.copy(UNIT_TESTS / f"{alert}.yaml", workdir / f"{alert}.yaml")
    return promtool("test", "rules", f"{alert}.yaml", cwd=workdir)


def with_rule(alert: str, change: dict[str, str]) -> list[dict[str, Any]]:
    groups = copy.deepcopy(rule_groups())
    for group in groups:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule.update(change)
    return groups


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}, sort_keys=False))
    result = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


@pytest.mark.parametrize("alert", sorted(alerts()))
def test_alert_unit_tests(alert: str, tmp_path: Path) -> None:
    result = run_unit_tests(alert, rule_groups(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_firing_and_quiet_cases() -> None:
    assert {path.stem for path in UNIT_TESTS.glob("*.yaml")} == set(alerts())
    for alert in alerts():
        document = yaml.safe_load((UNIT_TESTS / f"{alert}.yaml").read_text())
        checks = [check for test in document["tests"] for check in test["alert_rule_test"]]
        assert {check["alertname"] for check in checks} == {alert}
        assert any(check["exp_alerts"] for check in checks), f"{alert}: no firing case"
        assert any(not check["exp_alerts"] for check in checks), f"{alert}: no quiet case"


def test_alerts_follow_the_conventions() -> None:
    assert set(alerts()) == {"DeploymentInstanceFailed", "DeploymentInstanceStuck", "OperatorDown",
                             "HighReconcileErrorRate", "CertificateExpiringSoon", "BackupOverdue",
                             "DeploymentFleetRolloutHalted"}
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}, name
        assert rule.get("for"), f"{name}: a single bad scrape must not page"
    assert alerts()["OperatorDown"]["labels"]["severity"] == "critical"


def exported_series() -> set[str]:
    """Series names operator/o4o_operator/metrics.py exposes (counters gain _total, histograms three)."""
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    return {family.name + suffix for family in metrics.REGISTRY.collect() for suffix in suffixes[family.type]}


def test_alerts_use_only_metrics_the_operator_exports() -> None:
    known = exported_series() | {"up"}
    for name, rule in alerts().items():
        used = set(re.findall(r"\b(o4o_[a-z0-9_]+|up)\b", rule["expr"]))
        assert used, name
        assert used <= known, f"{name} uses {used - known}"
    phases = set(re.findall(r"[A-Z][a-z]+", alerts()["DeploymentInstanceStuck"]["expr"]))
    assert phases == {p.value for p in Phase} - {"Ready", "Failed"}, "every phase on the way, none other"


# (alert, field, text in the expression, replacement, what the unit tests must catch)
MUTATIONS = [
    ("DeploymentInstanceFailed", "expr", 'phase="Failed"', 'phase!="Failed"', "other phases count"),
    ("DeploymentInstanceStuck", "expr", "Pending|Provisioning|Installing|Building|Configuring|Deleting", ".+",
     "Ready and Failed count as stuck"),
    ("DeploymentInstanceStuck", "expr", "|Deleting", "", "a stuck finalizer is missed"),
    ("OperatorDown", "expr", "} == 1)", "})", "a target that is down counts as present"),
    ("HighReconcileErrorRate", "expr", "> 0.2", "> 0.05", "threshold too low"),
    ("HighReconcileErrorRate", "expr", '{outcome="failure"}', "", "every attempt counts as a failure"),
    ("HighReconcileErrorRate", "expr", "o4o_stage_duration_seconds_count[5m]", "o4o_reconcile_total[5m]",
     "waiting passes dilute the ratio"),
    ("CertificateExpiringSoon", "expr", "14 * 86400", "31 * 86400", "window too wide"),
    ("CertificateExpiringSoon", "expr", "(o4o_certificate_expiry_timestamp_seconds > 0)",
     "(o4o_certificate_expiry_timestamp_seconds)", "no certificate yet counts as expired"),
    ("BackupOverdue", "expr", "8 * 86400", "30 * 86400", "window too wide"),
    ("BackupOverdue", "expr", "(o4o_backup_last_success_timestamp_seconds > 0)",
     "(o4o_backup_last_success_timestamp_seconds)", "no backup yet counts as overdue"),
    ("DeploymentFleetRolloutHalted", "expr", "== 1", ">= 0", "a fleet that is not halted counts"),
    *((alert, "expr", "", "vector(1) > 2", "never fires") for alert in sorted(alerts())),
    *((alert, "for", "", "0s", "fires without waiting") for alert in sorted(alerts())),
]


@pytest.mark.parametrize(("alert", "field", "old", "new", "why"), MUTATIONS,
                         ids=[f"{m[0]}-{m[4].replace(' ', '-')}" for m in MUTATIONS])
def test_unit_tests_catch_a_broken_rule(alert: str, field: str, old: str, new: str, why: str,
                                        tmp_path: Path) -> None:
    original = str(alerts()[alert][field])
    if old:
        assert original.count(old) == 1, f"mutation for {alert} is stale: {old!r} not in {original!r}"
        mutated = original.replace(old, new)
    else:
        mutated = new
    groups = with_rule(alert, {field: mutated})
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    assert promtool("check", "rules", "rules.yaml", cwd=tmp_path).returncode == 0, "mutant must be valid"
    result = run_unit_tests(alert, groups, tmp_path)
    assert result.returncode != 0, f"{alert}: unit tests did not notice ({why}): {mutated}"
