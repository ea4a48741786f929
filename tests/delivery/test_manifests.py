"""manifests/: what `kubectl kustomize` renders, and what a real kube-apiserver accepts.

The static tests read the rendered objects (kubectl 1.34's built-in kustomize, the one users
have); the ``control_plane`` tests send them to the local kube-apiserver with
``--dry-run=server`` and strict field validation, so schema, admission and RBAC objects are
checked by the real thing. What no test here covers: pods actually running (there is no
kubelet), and the Prometheus Operator acting on the ServiceMonitor/PrometheusRule.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from delivery_support import HERE, MANIFESTS, REPO, Render

from o4o_dashboard import cli as dashboard_cli
from o4o_dashboard.cache import InstanceCache
from o4o_dashboard.metrics import DashboardMetrics
from o4o_dashboard.security import bind_refusal
from o4o_dashboard.web import create_app
from o4o_operator import cli as operator_cli
from o4o_operator.testing import ControlPlane

SYSTEM_NAMESPACE = "o4o-system"
CRD_NAME = "deploymentinstances.deploy.o4o.io"
TEST_CRDS = HERE / "crds"


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def port_number(container_spec: dict[str, Any], port: int | str) -> int:
    """Resolve a named container port, as kubelet and Services do."""
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container_spec.get("ports", []) if p.get("name") == port]
    assert named, f"container {container_spec['name']} has no port named {port}"
    return int(named[0])


def relative(target: Path, start: Path) -> str:
    """kustomize wants relative paths to other kustomizations (absolute ones are refused)."""
    return os.path.relpath(target, start)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.fixture(scope="module")
def default(render: Render) -> list[dict[str, Any]]:
    return render(MANIFESTS / "default")


# ---- layout ---------------------------------------------------------------------------------


def test_crd_directory_is_a_kustomization_of_exactly_the_crds() -> None:
    """manifests/crd includes ../../crds as a directory: kustomize refuses files outside its root."""
    kustomization = REPO / "crds" / "Kustomization"
    assert kustomization.is_file(), (
        "crds/Kustomization is missing: manifests/crd/kustomization.yaml includes ../../crds as a "
        "kustomize directory, since kustomize refuses to load single files from outside its root")
    listed = yaml.safe_load(kustomization.read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in (REPO / "crds").glob("*.yaml"))


def test_default_renders_every_part_into_o4o_system(default: list[dict[str, Any]]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in default}
    assert kinds == {
        ("Namespace", SYSTEM_NAMESPACE),
        ("CustomResourceDefinition", CRD_NAME),
        ("CustomResourceDefinition", "deploymentfleets.deploy.o4o.io"),
        ("ServiceAccount", "o4o-operator"),
        ("ServiceAccount", "o4o-dashboard"),
        ("ClusterRole", "o4o-operator"),
        ("ClusterRole", "o4o-operator-secret-reader"),
        ("ClusterRole", "o4o-dashboard-viewer"),
        ("ClusterRole", "deploymentinstance-editor-role"),
        ("ClusterRole", "deploymentinstance-viewer-role"),
        ("ClusterRoleBinding", "o4o-operator"),
        ("ClusterRoleBinding", "o4o-dashboard-viewer"),
        ("Role", "o4o-operator-leader-election"),
        ("RoleBinding", "o4o-operator-leader-election"),
        ("PodDisruptionBudget", "o4o-operator"),
        ("Deployment", "o4o-operator"),
        ("Deployment", "o4o-dashboard"),
        ("Service", "o4o-operator-metrics"),
        ("Service", "o4o-dashboard"),
    }
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    for obj in default:
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"].get("namespace") == SYSTEM_NAMESPACE, obj["metadata"]


def test_the_shipped_crd_is_the_one_in_crds(default: list[dict[str, Any]]) -> None:
    source = yaml.safe_load((REPO / "crds" / f"{CRD_NAME}.yaml").read_text())
    rendered = find(default, "CustomResourceDefinition", CRD_NAME)
    assert rendered["spec"] == source["spec"]


def test_default_leaves_prometheus_out_but_mentions_it() -> None:
    """kubebuilder's convention: monitoring.coreos.com objects need CRDs that may be missing."""
    text = (MANIFESTS / "default" / "kustomization.yaml").read_text()
    resources = yaml.safe_load(text)["resources"]
    assert "../prometheus" not in resources
    assert re.search(r"^\s*#\s*- \.\./prometheus\s*$", text, re.MULTILINE)


# ---- workloads ------------------------------------------------------------------------------


def assert_hardened(deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    spec = container(deployment)
    security = spec["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 65532
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    for bound in ("requests", "limits"):
        assert set(spec["resources"][bound]) == {"cpu", "memory"}, bound
    mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "/tmp must be a writable emptyDir"


def test_operator_deployment(default: list[dict[str, Any]]) -> None:
    deployment = find(default, "Deployment", "o4o-operator")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert_hardened(deployment)
    spec = container(deployment)
    options = operator_cli.build_parser().parse_args(spec["args"])  # the real CLI accepts them
    assert options.command == "run"
    assert options.all_namespaces
    liveness = urlsplit(options.liveness)
    probe = spec["livenessProbe"]["httpGet"]
    probed = (probe["path"], port_number(spec, probe["port"]))
    assert (liveness.path, liveness.port) == probed == ("/healthz", 8080)
    assert options.metrics_port == port_number(spec, "metrics") == 9090
    pod = deployment["spec"]["template"]["spec"]
    find(default, "ServiceAccount", pod["serviceAccountName"])


def test_dashboard_deployment(default: list[dict[str, Any]], tmp_path: Path) -> None:
    deployment = find(default, "Deployment", "o4o-dashboard")
    assert_hardened(deployment)
    spec = container(deployment)
    assert spec["command"] == ["o4o-dashboard"]
    args = list(spec["args"])
    token_file = Path(args[args.index("--token-file") + 1])
    # The real CLI checks the token file exists; hand it a stand-in for the mounted Secret.
    (tmp_path / "token").write_text("t" * 32)
    args[args.index("--token-file") + 1] = str(tmp_path / "token")
    options = dashboard_cli.build_parser().parse_args(args)
    assert options.all_namespaces
    assert bind_refusal(options.host, token_configured=True, insecure_bind=options.insecure_bind) is None
    assert options.host == "0.0.0.0"  # noqa: S104 - a pod listens on its own interfaces
    assert options.port == port_number(spec, "http") == 8000
    mounts = {m["mountPath"]: m for m in spec["volumeMounts"]}
    mount = mounts[str(token_file.parent)]
    assert mount["readOnly"] is True
    pod = deployment["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert [item["path"] for item in volume["secret"]["items"]] == [token_file.name]
    app = create_app(InstanceCache(), DashboardMetrics())
    routes = {route.resource.canonical for route in app.router.routes() if route.resource is not None}
    for probe in (spec["readinessProbe"], spec["livenessProbe"]):
        assert probe["httpGet"]["path"] in routes
        assert port_number(spec, probe["httpGet"]["port"]) == options.port
    find(default, "ServiceAccount", pod["serviceAccountName"])
    assert container(find(default, "Deployment", "o4o-operator"))["image"] == spec["image"], "one image"


@pytest.mark.parametrize(("service", "deployment", "port"), [
    ("o4o-operator-metrics", "o4o-operator", 9090),
    ("o4o-dashboard", "o4o-dashboard", 8000),
])
def test_services_reach_their_pods(default: list[dict[str, Any]], service: str, deployment: str,
                                   port: int) -> None:
    svc = find(default, "Service", service)
    workload = find(default, "Deployment", deployment)
    pod_labels = workload["spec"]["template"]["metadata"]["labels"]
    assert selects(svc["spec"]["selector"], pod_labels)
    (svc_port,) = svc["spec"]["ports"]
    assert svc_port["port"] == port_number(container(workload), svc_port["targetPort"]) == port
    others = [d for d in default if d["kind"] == "Deployment" and d is not workload]
    assert not any(selects(svc["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
                   for d in others)


def test_name_prefix_and_namespace_overlay_keeps_references(render: Render, tmp_path: Path) -> None:
    """The optional namePrefix (and another namespace) rewrite every reference along."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "namespace": "tools", "namePrefix": "x-", "resources": [relative(MANIFESTS / "default", tmp_path)]}))
    objects = render(tmp_path)
    accounts = {(o["metadata"]["namespace"], o["metadata"]["name"])
                for o in objects if o["kind"] == "ServiceAccount"}
    assert accounts == {("tools", "x-o4o-operator"), ("tools", "x-o4o-dashboard")}
    roles = {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"}
    for binding in (o for o in objects if o["kind"] == "ClusterRoleBinding"):
        assert binding["roleRef"]["name"] in roles
        for subject in binding["subjects"]:
            assert (subject["namespace"], subject["name"]) in accounts
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert ("tools", pod["serviceAccountName"]) in accounts
    assert find(objects, "CustomResourceDefinition", CRD_NAME)
    assert find(objects, "Namespace", "tools")


def test_readme_overlay_that_narrows_secret_access_works(render: Render, tmp_path: Path) -> None:
    """manifests/README.md's overlay removes exactly the secrets rule from the operator's ClusterRole."""
    readme = (MANIFESTS / "README.md").read_text()
    (block,) = re.findall(r"```yaml\n(# overlay/kustomization.yaml\n.*?)```", readme, re.DOTALL)
    overlay, binding = yaml.safe_load_all(block)
    overlay["resources"] = [relative(MANIFESTS / "default", tmp_path)]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    narrowed = cluster_roles(render(tmp_path))
    original = cluster_roles(render(MANIFESTS / "default"))
    kept = [rule for rule in original["o4o-operator"] if "secrets" not in rule["resources"]]
    assert narrowed["o4o-operator"] == kept
    assert binding["roleRef"]["name"] in narrowed
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "o4o-operator", "namespace": SYSTEM_NAMESPACE}]


# ---- RBAC, read as text and as objects ------------------------------------------------------


def test_every_operator_rule_says_who_needs_it() -> None:
    """Kopf's convention: each rule is commented `# framework:` or `# application:`."""
    text = (MANIFESTS / "rbac" / "operator_role.yaml").read_text()
    for document_text in text.split("\n---\n"):
        lines = document_text.splitlines()
        rule_starts = [i for i, line in enumerate(lines) if re.match(r"^  - apiGroups:", line)]
        assert len(rule_starts) == len(yaml.safe_load(document_text)["rules"])
        for start in rule_starts:
            comment = []
            for line in reversed(lines[:start]):
                if not line.strip().startswith("#"):
                    break
                comment.insert(0, line.strip())
            assert comment and re.match(r"^# (framework|application): \S", comment[0]), lines[start:start + 3]


def cluster_roles(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {o["metadata"]["name"]: o["rules"] for o in objects if o["kind"] == "ClusterRole"}


def test_roles_grant_no_wildcards_and_no_secret_enumeration(default: list[dict[str, Any]]) -> None:
    for name, rules in cluster_roles(default).items():
        for rule in rules:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (name, rule)
            if "secrets" in rule["resources"]:  # patch: only the operator's own teardown finalizer (issue 13.12)
                # create/delete: only its own <name>-database Secret (issue 12.3); never list, watch or update
                assert rule["verbs"] == ["get", "patch", "create", "delete"], (name, rule)
    for name in ("o4o-dashboard-viewer", "deploymentinstance-viewer-role"):
        for rule in cluster_roles(default)[name]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, (name, rule)


def test_user_roles_aggregate_into_the_builtin_roles(default: list[dict[str, Any]]) -> None:
    editor = find(default, "ClusterRole", "deploymentinstance-editor-role")["metadata"]["labels"]
    viewer = find(default, "ClusterRole", "deploymentinstance-viewer-role")["metadata"]["labels"]
    assert editor["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert viewer["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-edit" not in viewer


# ---- Prometheus -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_prometheus(render: Render, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """default plus prometheus, as an admin with the Prometheus Operator would enable it."""
    overlay = tmp_path_factory.mktemp("with-prometheus")
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [relative(MANIFESTS / part, overlay) for part in ("default", "prometheus")]}))
    return render(overlay)


def test_service_monitor_scrapes_the_metrics_service(with_prometheus: list[dict[str, Any]]) -> None:
    monitor = find(with_prometheus, "ServiceMonitor", "o4o-operator")
    assert monitor["metadata"]["namespace"] == SYSTEM_NAMESPACE
    services = [o for o in with_prometheus if o["kind"] == "Service"
                and selects(monitor["spec"]["selector"]["matchLabels"], o["metadata"]["labels"])]
    assert [s["metadata"]["name"] for s in services] == ["o4o-operator-metrics"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in services[0]["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True, "keeps o4o_certificate_expiry's own `namespace` label"


def test_operator_down_alert_matches_the_scrape_job(with_prometheus: list[dict[str, Any]]) -> None:
    """The job label is the Service name by default; OperatorDown must select it."""
    rule = find(with_prometheus, "PrometheusRule", "o4o-operator")
    (expr,) = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]
               if r.get("alert") == "OperatorDown"]
    match = re.search(r'up\{job=~"([^"]+)"\}', expr)
    assert match, expr
    assert re.fullmatch(match.group(1), "o4o-operator-metrics")  # PromQL regexes are anchored
    assert not re.fullmatch(match.group(1), "o4o-dashboard")


# ---- against the real kube-apiserver --------------------------------------------------------


def apply_system_namespace(control_plane: ControlPlane) -> None:
    """o4o-system for real, with its Pod Security labels (the dry run below checks against them)."""
    control_plane.kubectl("apply", "--server-side", "--field-manager=o4o-delivery-tests",
                          "-f", str(MANIFESTS / "operator" / "namespace.yaml"))


def test_default_passes_server_side_dry_run(control_plane: ControlPlane) -> None:
    apply_system_namespace(control_plane)
    result = control_plane.kubectl("apply", "-k", str(MANIFESTS / "default"), "--dry-run=server",
                                   "--validate=strict")
    applied = result.stdout.splitlines()
    assert len(applied) == 19, result.stdout
    assert all("(server dry run)" in line for line in applied)
    assert "PodSecurity" not in result.stderr, result.stderr


def test_pod_security_warns_about_a_weaker_deployment(control_plane: ControlPlane, render: Render) -> None:
    """So the check above can fail: the apiserver evaluates Deployment templates against `restricted`."""
    apply_system_namespace(control_plane)
    deployment = find(render(MANIFESTS / "default"), "Deployment", "o4o-operator")
    del deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]
    result = control_plane.kubectl("apply", "-f", "-", "--dry-run=server", input=yaml.safe_dump(deployment))
    assert 'would violate PodSecurity "restricted:latest"' in result.stderr
    assert "capabilities" in result.stderr


def test_prometheus_objects_pass_server_side_dry_run(control_plane: ControlPlane) -> None:
    """Against test stand-ins of the monitoring.coreos.com CRDs (tests/delivery/crds)."""
    apply_system_namespace(control_plane)
    control_plane.install_crds(sorted(TEST_CRDS.glob("*.yaml")))
    result = control_plane.kubectl("apply", "-k", str(MANIFESTS / "prometheus"), "--dry-run=server",
                                   "--validate=strict")
    assert sorted(line.split()[0] for line in result.stdout.splitlines()) == [
        "prometheusrule.monitoring.coreos.com/o4o-operator",
        "servicemonitor.monitoring.coreos.com/o4o-operator",
    ], result.stdout


def test_the_stand_in_crds_reject_a_misspelt_field(control_plane: ControlPlane) -> None:
    """So the dry run above can fail: strict validation refuses `honorlabels`."""
    control_plane.install_crds(sorted(TEST_CRDS.glob("*.yaml")))
    apply_system_namespace(control_plane)
    monitor = yaml.safe_load((MANIFESTS / "prometheus" / "monitor.yaml").read_text())
    monitor["spec"]["endpoints"][0]["honorlabels"] = monitor["spec"]["endpoints"][0].pop("honorLabels")
    result = control_plane.kubectl("apply", "-f", "-", "--dry-run=server", "--validate=strict",
                                   input=yaml.safe_dump(monitor), check=False)
    assert result.returncode != 0
    assert "honorlabels" in result.stderr, shlex.quote(result.stderr)
