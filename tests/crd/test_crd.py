"""The DeploymentInstance CRD on a real apiserver: accepted, documented and enforced."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from o4o_operator.models import DeploymentInstanceSpec
from o4o_operator.testing import ControlPlane
from o4o_operator.testing.pki import make_pki

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "manifests" / "samples").glob("*.yaml"))
SAMPLE_DIS = [p for p in SAMPLES if p.name != "kustomization.yaml"]


def _valid() -> dict[str, Any]:
    return {
        "apiVersion": "deploy.o4o.io/v1alpha1",
        "kind": "DeploymentInstance",
        "metadata": {"name": "valid"},
        "spec": {
            "domain": "shop.example.com",
            "apps": ["forum-core"],
            "provider": {"lightsail": {"region": "ap-northeast-2"}},
            "ssh": {"privateKeySecretRef": {"name": "shop-ssh"}},
            "source": {"repository": "https://example.com/o4o.git"},
            "tls": {"email": "ops@example.com"},
        },
    }


def _apply(plane: ControlPlane, namespace: str, body: dict[str, Any], *, dry_run: bool = False,
           verb: str = "create") -> tuple[int, str]:
    args = [verb, "-n", namespace, "-f", "-"]
    if dry_run:
        args.append("--dry-run=server")
    result = plane.kubectl(*args, input=json.dumps(body), check=False)
    return result.returncode, result.stderr + result.stdout


@pytest.mark.parametrize("sample", SAMPLE_DIS, ids=lambda p: p.stem)
def test_every_sample_is_accepted_by_dry_run_and_by_create(control_plane: ControlPlane, namespace: str,
                                                           sample: Path) -> None:
    body = yaml.safe_load(sample.read_text())
    code, output = _apply(control_plane, namespace, body, dry_run=True)
    assert code == 0, output
    code, output = _apply(control_plane, namespace, body)
    assert code == 0, output
    stored = json.loads(control_plane.kubectl("get", "di", body["metadata"]["name"], "-n", namespace,
                                              "-o", "json").stdout)
    assert stored["spec"]["deletionPolicy"] in ("Delete", "Retain")


def test_defaults_are_applied(control_plane: ControlPlane, namespace: str) -> None:
    code, output = _apply(control_plane, namespace, _valid())
    assert code == 0, output
    spec = json.loads(control_plane.kubectl("get", "di", "valid", "-n", namespace, "-o", "json").stdout)["spec"]
    assert spec["deletionPolicy"] == "Delete"
    assert spec["paused"] is False
    assert spec["provider"]["lightsail"]["bundleId"] == "small_3_0"  # 2 GB: O4O's build peaks at ~1.6 GB
    assert spec["source"]["revision"] == "main"
    assert spec["ssh"]["privateKeySecretRef"]["key"] == "ssh-privatekey"
    assert spec["dns"]["provider"] == "none"


def test_source_and_build_default_to_o4o_and_agree_with_the_models(control_plane: ControlPlane,
                                                                    namespace: str) -> None:
    body = _without("source")
    body["metadata"]["name"] = "o4o-defaults"
    code, output = _apply(control_plane, namespace, body)
    assert code == 0, output
    stored = json.loads(control_plane.kubectl("get", "di", "o4o-defaults", "-n", namespace, "-o", "json").stdout)
    spec = stored["spec"]
    assert spec["source"] == {"repository": "https://github.com/Renagang21/o4o-platform.git", "revision": "main"}
    assert spec["build"] == {
        "installFlags": ["--frozen-lockfile"],
        "site": {"package": "@o4o/main-site-nextgen", "buildScript": "build", "outputDir": "apps/main-site/dist",
                 "apiUrlVariable": "VITE_API_URL", "env": {}},
        "api": {"package": "@o4o/api-server", "directory": "apps/api-server", "buildScript": "build",
                "bundleScript": "build:api", "entryPoint": "dist/main.js",
                "migrateCommand": ["node", "dist/migrate.js"], "keepAcrossBundle": ["dist/database"],
                "uploadsDir": "public/uploads",
                "adminCommand": ["npx", "tsx", "src/scripts/create-admin-user.ts", "--email=${O4O_ADMIN_EMAIL}",
                                 "--password=${O4O_ADMIN_PASSWORD}"],
                "dataSource": {"module": "dist/o4o-bootstrap/connection.js", "export": "AppDataSource",
                               "buildCommand": ["../../node_modules/.bin/tsup", "src/database/connection.ts",
                                                "--out-dir", "dist/o4o-bootstrap"]},
                "seedCommand": []},
        "health": {"path": "/api/health", "bodyField": "database.status", "expect": "healthy"},
    }
    assert "postInstall" not in spec  # nothing by default: O4O removed its CMS scaffold API
    models = DeploymentInstanceSpec.model_validate({**_without("source")["spec"], "ssh": spec["ssh"]}).to_body()
    assert models["build"] == spec["build"]
    assert models["source"] == spec["source"]
    assert models["provider"]["lightsail"]["bundleId"] == spec["provider"]["lightsail"]["bundleId"]


def _without(path: str) -> dict[str, Any]:
    body = _valid()
    *parents, leaf = path.split(".")
    node = body["spec"]
    for key in parents:
        node = node[key]
    del node[leaf]
    return body


def _with(path: str, value: Any) -> dict[str, Any]:
    body = _valid()
    *parents, leaf = path.split(".")
    node = body["spec"]
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return body


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("missing domain", _without("domain"), "spec.domain"),
    ("uppercase domain", _with("domain", "Shop.Example.com"), "spec.domain"),
    ("domain without a dot", _with("domain", "localhost"), "spec.domain"),
    ("duplicate apps", _with("apps", ["forum-core", "forum-core"]), "spec.apps"),
    ("app name with a space", _with("apps", ["my app"]), "spec.apps"),
    ("both providers", _with("provider.existing", {"host": "198.51.100.1"}), "spec.provider"),
    ("no provider kind", _with("provider", {}), "spec.provider"),
    ("bad region", _with("provider.lightsail.region", "Mars"), "spec.provider.lightsail.region"),
    ("zone outside region", _with("provider.lightsail.availabilityZone", "eu-west-2a"),
     "spec.provider.lightsail.availabilityZone"),
    ("bad ssh cidr", _with("provider.lightsail.sshAllowedCidrs", ["10.0.0.0/99"]),
     "spec.provider.lightsail.sshAllowedCidrs[0]"),
    ("negative port", _with("provider", {"existing": {"host": "h.example.com", "port": -1}}),
     "spec.provider.existing.port"),
    ("bad deletionPolicy", _with("deletionPolicy", "Orphan"), "spec.deletionPolicy"),
    ("missing ssh key ref", _with("ssh", {"user": "ubuntu"}), "spec.ssh.privateKeySecretRef"),
    ("bad ssh user", _with("ssh.user", "Root User"), "spec.ssh.user"),
    ("bad host key fingerprint", _with("ssh.hostKeyFingerprint", "MD5:aa:bb"), "spec.ssh.hostKeyFingerprint"),
    ("repository with credentials", _with("source.repository", "https://user:tok@example.com/r.git"),
     "spec.source.repository"),
    ("repository over http", _with("source.repository", "http://example.com/r.git"),
     "spec.source.repository"),
    ("revision with spaces", _with("source.revision", "main; rm -rf /"), "spec.source.revision"),
    ("missing tls email", _with("tls", {}), "spec.tls.email"),
    ("bad tls email", _with("tls.email", "not-an-email"), "spec.tls.email"),
    ("tls email starting with a dash", _with("tls.email", "--server=x@evil.example"), "spec.tls.email"),
    ("trustOnFirstUse not a bool", _with("ssh.trustOnFirstUse", "yes"), "spec.ssh.trustOnFirstUse"),
    ("acme server over http", _with("tls.server", "http://acme.example.com/dir"), "spec.tls.server"),
    ("acme CA bundle without a certificate", _with("tls.acmeCABundle", "not pem"), "spec.tls.acmeCABundle"),
    ("certificate CA bundle with a private key",
     _with("tls.certificateCABundle", "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n"
           "-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n"), "spec.tls.certificateCABundle"),
    ("unknown dns provider", _with("dns", {"provider": "cloudflare"}), "spec.dns.provider"),
    ("route53 without hosted zone", _with("dns", {"provider": "route53", "zone": "example.com"}),
     "spec.dns.hostedZoneId"),
    ("lightsail dns without zone", _with("dns", {"provider": "lightsail"}), "spec.dns.zone"),
    ("zone not a parent of domain", _with("dns", {"provider": "lightsail", "zone": "example.org"}),
     "spec.dns.zone"),
    ("ttl too small", _with("dns", {"provider": "none", "ttl": 5}), "spec.dns.ttl"),
    ("api port privileged", _with("apiPort", 80), "spec.apiPort"),
    ("paused not a bool", _with("paused", "yes"), "spec.paused"),
    ("description too long", _with("description", "x" * 2000), "spec.description"),
    ("env secret without name", _with("env", [{}]), "spec.env[0].name"),
    ("unknown bootstrap mode", _with("database.bootstrap", {"mode": "schema-sync"}), "spec.database.bootstrap.mode"),
    ("data source export with a dot", _with("build.api.dataSource", {"export": "a.b"}),
     "spec.build.api.dataSource.export"),
    ("seed command word with a semicolon", _with("build.api.seedCommand", ["node", "a;b"]),
     "spec.build.api.seedCommand[1]"),
    ("bootstrap command without its words", _with("database.bootstrap", {"mode": "command"}),
     "spec.database.bootstrap.command"),
    ("bootstrap command word with a semicolon", _with("database.bootstrap", {"mode": "command", "command": ["a;b"]}),
     "spec.database.bootstrap.command[0]"),
]

TRAVERSAL = "../../kube-system/secrets/x"
SECRET_REFERENCES: list[tuple[str, dict[str, Any], str]] = [
    ("ssh key secret name with a path", _with("ssh.privateKeySecretRef", {"name": TRAVERSAL}),
     "spec.ssh.privateKeySecretRef.name"),
    ("ssh key secret name '..'", _with("ssh.privateKeySecretRef", {"name": ".."}),
     "spec.ssh.privateKeySecretRef.name"),
    ("ssh key secret key with a slash", _with("ssh.privateKeySecretRef", {"name": "k", "key": "../id"}),
     "spec.ssh.privateKeySecretRef.key"),
    ("ssh key secret key '..'", _with("ssh.privateKeySecretRef", {"name": "k", "key": ".."}),
     "spec.ssh.privateKeySecretRef.key"),
    ("aws secret name with a path", _with("provider.lightsail.credentialsSecretRef", {"name": TRAVERSAL}),
     "spec.provider.lightsail.credentialsSecretRef.name"),
    ("aws access key id key with a slash",
     _with("provider.lightsail.credentialsSecretRef", {"name": "aws", "accessKeyIdKey": "a/b"}),
     "spec.provider.lightsail.credentialsSecretRef.accessKeyIdKey"),
    ("aws secret access key key too long",
     _with("provider.lightsail.credentialsSecretRef", {"name": "aws", "secretAccessKeyKey": "k" * 254}),
     "spec.provider.lightsail.credentialsSecretRef.secretAccessKeyKey"),
    ("source secret name uppercase", _with("source.credentialsSecretRef", {"name": "Token"}),
     "spec.source.credentialsSecretRef.name"),
    ("source secret key with a space", _with("source.credentialsSecretRef", {"name": "git", "key": "a b"}),
     "spec.source.credentialsSecretRef.key"),
    ("env secret name with a path", _with("env", [{"name": TRAVERSAL}]), "spec.env[0].name"),
    ("env secret name too long", _with("env", [{"name": "a" * 254}]), "spec.env[0].name"),
]
INVALID += SECRET_REFERENCES

BUILD: list[tuple[str, dict[str, Any], str]] = [
    ("site package that is a filter", _with("build.site.package", "@o4o/main-site..."), "spec.build.site.package"),
    ("site package with a shell", _with("build.site.package", "x;reboot"), "spec.build.site.package"),
    ("site package uppercase", _with("build.site.package", "@O4O/Site"), "spec.build.site.package"),
    ("site script with a space", _with("build.site.buildScript", "build && reboot"), "spec.build.site.buildScript"),
    ("site output outside the repository", _with("build.site.outputDir", "../../etc"), "spec.build.site.outputDir"),
    ("site output absolute", _with("build.site.outputDir", "/etc"), "spec.build.site.outputDir"),
    ("site api url variable with a dash", _with("build.site.apiUrlVariable", "VITE-API"),
     "spec.build.site.apiUrlVariable"),
    ("site env name with a space", _with("build.site.env", {"A B": "x"}), "spec.build.site.env"),
    ("api package with a glob", _with("build.api.package", "@o4o/*"), "spec.build.api.package"),
    ("api directory with a dot segment", _with("build.api.directory", "apps/./api"), "spec.build.api.directory"),
    ("api build script with a quote", _with("build.api.buildScript", "build'"), "spec.build.api.buildScript"),
    ("api bundle script with a dollar", _with("build.api.bundleScript", "$(id)"), "spec.build.api.bundleScript"),
    ("api entry point outside", _with("build.api.entryPoint", "../main.js"), "spec.build.api.entryPoint"),
    ("empty migrate command", _with("build.api.migrateCommand", []), "spec.build.api.migrateCommand"),
    ("migrate word with a semicolon", _with("build.api.migrateCommand", ["node", "a;b"]),
     "spec.build.api.migrateCommand[1]"),
    ("install flag that is not a flag", _with("build.installFlags", ["; reboot"]), "spec.build.installFlags[0]"),
    ("kept path outside the package", _with("build.api.keepAcrossBundle", ["../dist"]),
     "spec.build.api.keepAcrossBundle[0]"),
    ("uploads dir absolute", _with("build.api.uploadsDir", "/var/www"), "spec.build.api.uploadsDir"),
    ("health path with a query", _with("build.health.path", "/api/health?x=1"), "spec.build.health.path"),
    ("health body field with a space", _with("build.health.bodyField", "database status"),
     "spec.build.health.bodyField"),
    ("health expectation with a quote", _with("build.health.expect", "ok'"), "spec.build.health.expect"),
    ("admin word with another variable", _with("build.api.adminCommand", ["npx", "--x=${O4O_GIT_TOKEN}"]),
     "spec.build.api.adminCommand[1]"),
    ("admin word with a command substitution", _with("build.api.adminCommand", ["$(id)"]),
     "spec.build.api.adminCommand[0]"),
]
INVALID += BUILD

POST_INSTALL: list[tuple[str, dict[str, Any], str]] = [
    ("post-install step with neither", _with("postInstall", [{"name": "a"}]), "spec.postInstall[0]"),
    ("post-install step with both", _with("postInstall", [{"name": "a", "command": ["x"],
                                                            "request": {"path": "/api/v1/x"}}]), "spec.postInstall[0]"),
    ("post-install steps sharing a name",
     _with("postInstall", [{"name": "a", "command": ["x"]}, {"name": "a", "command": ["y"]}]), "spec.postInstall[1]"),
    ("post-install word with a dollar", _with("postInstall", [{"name": "a", "command": ["echo", "$HOME"]}]),
     "spec.postInstall[0].command[1]"),
    ("post-install request path relative", _with("postInstall", [{"name": "a", "request": {"path": "api/v1"}}]),
     "spec.postInstall[0].request.path"),
    ("post-install request method", _with("postInstall", [{"name": "a", "request": {"path": "/a",
                                                                                     "method": "TRACE"}}]),
     "spec.postInstall[0].request.method"),
]
INVALID += POST_INSTALL


def test_post_install_steps_are_accepted_and_agree_with_the_models(control_plane: ControlPlane,
                                                                   namespace: str) -> None:
    steps = [{"name": "seed", "command": ["pnpm", "run", "seed", "--admin=${O4O_ADMIN_EMAIL}"]},
             {"name": "settings", "request": {"method": "PUT", "path": "/api/v1/admin/settings",
                                              "body": {"siteName": "Shop", "nested": {"n": 1}}}},
             {"name": "ping", "request": {"path": "/api/v1/ping?x=1"}}]
    body = _with("postInstall", steps)
    body["metadata"]["name"] = "post-install"
    code, output = _apply(control_plane, namespace, body)
    assert code == 0, output
    spec = json.loads(control_plane.kubectl("get", "di", "post-install", "-n", namespace, "-o", "json").stdout)["spec"]
    assert spec["postInstall"][2]["request"]["method"] == "POST"
    models = DeploymentInstanceSpec.model_validate(spec).to_body()
    assert models["postInstall"] == spec["postInstall"]


@pytest.mark.parametrize(("case", "body", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_manifest_is_rejected_naming_the_field(control_plane: ControlPlane, namespace: str,
                                                        case: str, body: dict[str, Any], field: str) -> None:
    code, output = _apply(control_plane, namespace, body, dry_run=True)
    assert code != 0, f"{case} was accepted"
    assert field in output, f"{case}: message does not name {field}: {output}"


def test_at_least_thirty_invalid_cases() -> None:
    assert len(INVALID) >= 30


def test_dotted_secret_names_and_keys_are_accepted(control_plane: ControlPlane, namespace: str) -> None:
    """The patterns refuse paths, not ordinary Kubernetes names: DNS-1123 subdomains and dotted keys pass."""
    body = _with("ssh.privateKeySecretRef", {"name": "shop.ssh-key", "key": ".ssh_private-key.pem"})
    body["spec"]["env"] = [{"name": "app.env"}]
    body["spec"]["provider"]["lightsail"]["credentialsSecretRef"] = {
        "name": "aws-1", "accessKeyIdKey": "AWS_ACCESS_KEY_ID", "secretAccessKeyKey": "key..2"}
    code, output = _apply(control_plane, namespace, body, dry_run=True)
    assert code == 0, output


def test_pem_ca_bundles_are_accepted(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> None:
    roots = make_pki(tmp_path).ca_cert.read_text()
    body = _with("tls.acmeCABundle", roots)
    body["spec"]["tls"]["certificateCABundle"] = f"# two roots\n{roots}{roots}"
    code, output = _apply(control_plane, namespace, body, dry_run=True)
    assert code == 0, output


IMMUTABLE_CHANGES = [
    ("domain", lambda s: s.update(domain="other.example.com"), "spec.domain"),
    ("provider kind", lambda s: s.update(provider={"existing": {"host": "198.51.100.1"}}), "spec.provider"),
    ("region", lambda s: s["provider"]["lightsail"].update(region="eu-west-2"),
     "spec.provider.lightsail.region"),
]


@pytest.mark.parametrize(("what", "change", "field"), IMMUTABLE_CHANGES, ids=[c[0] for c in IMMUTABLE_CHANGES])
def test_immutable_fields_cannot_change(control_plane: ControlPlane, namespace: str, what: str,
                                        change: Any, field: str) -> None:
    code, output = _apply(control_plane, namespace, _valid())
    assert code == 0, output
    stored = json.loads(control_plane.kubectl("get", "di", "valid", "-n", namespace, "-o", "json").stdout)
    changed = copy.deepcopy(stored)
    change(changed["spec"])
    code, output = _apply(control_plane, namespace, changed, verb="replace")
    assert code != 0, f"changing {what} was accepted"
    assert (field in output and "immutable" in output) or "cannot change" in output, output


def test_printer_columns(control_plane: ControlPlane, namespace: str) -> None:
    _apply(control_plane, namespace, _valid())
    control_plane.kubectl("patch", "di", "valid", "-n", namespace, "--subresource=status", "--type=merge",
                          "-p", json.dumps({"status": {
                              "phase": "Building", "stageProgress": "5/9", "server": {"ipAddress": "198.51.100.7"},
                              "conditions": [{"type": "Ready", "status": "False", "reason": "Building",
                                              "message": "Building the API server",
                                              "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}))
    table = control_plane.kubectl("get", "di", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "DOMAIN", "PHASE", "READY", "STAGE", "IP", "AGE"]
    assert table[1].split()[:6] == ["valid", "shop.example.com", "Building", "False", "5/9", "198.51.100.7"]
    wide = control_plane.kubectl("get", "di", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert {"REASON", "REGION", "COMMIT", "MESSAGE"} <= set(wide[0].split())
    assert "Building the API server" in wide[1]


@pytest.mark.parametrize("bootstrap", [{"mode": "command", "command": ["node", "dist/bootstrap.js"]},
                                       {"mode": "restore", "restore": {"instance": {"name": "shop"}}}, {}],
                         ids=["command", "restore", "default"])
def test_database_bootstrap_is_accepted_and_agrees_with_the_models(control_plane: ControlPlane, namespace: str,
                                                                   bootstrap: dict[str, Any]) -> None:
    body = _with("database", {"bootstrap": bootstrap})
    body["metadata"]["name"] = "boot-" + (bootstrap.get("mode") or "default")
    code, output = _apply(control_plane, namespace, body)
    assert code == 0, output
    spec = json.loads(control_plane.kubectl("get", "di", body["metadata"]["name"], "-n", namespace,
                                            "-o", "json").stdout)["spec"]
    assert spec["database"]["bootstrap"]["mode"] == bootstrap.get("mode", "migrate")  # migrate by default
    models = DeploymentInstanceSpec.model_validate(spec).to_body()
    assert models["database"]["bootstrap"] == spec["database"]["bootstrap"]


def test_explain_documents_the_database_bootstrap(control_plane: ControlPlane) -> None:
    deadline = time.monotonic() + 30
    while True:  # OpenAPI is published asynchronously after the CRD is established
        result = control_plane.kubectl("explain", "di.spec.database.bootstrap", check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "EMPTY database" in text and "pg_catalog" in text and "never bootstrapped" in text
    for field in ("mode", "command", "restore"):
        assert f" {field} " in f" {text} "


def test_explain_documents_the_domain(control_plane: ControlPlane) -> None:
    deadline = time.monotonic() + 30
    while True:  # OpenAPI is published asynchronously after the CRD is established
        result = control_plane.kubectl("explain", "di.spec.domain", check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "lowercase DNS subdomain" in text
    assert "Immutable once set" in text


def test_explain_documents_the_private_acme_ca_bundles(control_plane: ControlPlane) -> None:
    deadline = time.monotonic() + 30
    while True:  # OpenAPI is published asynchronously after the CRD is established
        result = control_plane.kubectl("explain", "di.spec.tls", check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "acmeCABundle" in text and "certificateCABundle" in text
    assert "the ACME server's own HTTPS endpoint" in text
    assert "the roots the instance's issued certificate chains to" in text


def test_explain_documents_trust_on_first_use(control_plane: ControlPlane) -> None:
    deadline = time.monotonic() + 30
    while True:  # OpenAPI is published asynchronously after the CRD is established
        result = control_plane.kubectl("explain", "di.spec.ssh.trustOnFirstUse", check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "trust the first host key seen" in text
    assert "TrustedOnFirstUse" in text


def test_the_models_refuse_what_the_crd_refuses_for_the_tls_email() -> None:
    import pydantic

    from o4o_operator.models import DeploymentInstanceSpec

    body = _valid()["spec"]
    body["ssh"]["privateKeySecretRef"]["key"] = "ssh-privatekey"  # the CRD's default
    DeploymentInstanceSpec.model_validate(body)
    body["tls"]["email"] = "-oops@example.com"
    with pytest.raises(pydantic.ValidationError, match=r"tls\.email"):
        DeploymentInstanceSpec.model_validate(body)


def test_spec_change_bumps_generation_and_status_change_does_not(control_plane: ControlPlane,
                                                                 namespace: str) -> None:
    _apply(control_plane, namespace, _valid())

    def generation() -> int:
        return int(control_plane.kubectl("get", "di", "valid", "-n", namespace,
                                         "-o", "jsonpath={.metadata.generation}").stdout)

    assert generation() == 1
    control_plane.kubectl("patch", "di", "valid", "-n", namespace, "--subresource=status", "--type=merge",
                          "-p", '{"status": {"phase": "Provisioning"}}')
    assert generation() == 1
    control_plane.kubectl("patch", "di", "valid", "-n", namespace, "--type=merge",
                          "-p", '{"spec": {"apps": ["commerce", "forum"]}}')
    assert generation() == 2


def test_status_accepts_everything_the_operator_writes(control_plane: ControlPlane, namespace: str) -> None:
    """A full status round-trips unchanged: nothing the operator writes is pruned."""
    from o4o_operator.models import (
        CertificateStatus,
        Condition,
        ConditionStatus,
        DatabaseStatus,
        DeploymentInstanceStatus,
        DriftFinding,
        HostKeySource,
        Phase,
        ServerStatus,
        SourceStatus,
        StageState,
        StageStatus,
    )
    from o4o_operator.models_database import BackupRecord, UploadsArchiveRecord

    _apply(control_plane, namespace, _valid())
    status = DeploymentInstanceStatus(
        phase=Phase.BUILDING, observed_generation=1, stage_progress="4/9",
        conditions=(Condition(type="Ready", status=ConditionStatus.FALSE, reason="Building",
                              message="Building the main site", last_transition_time="2026-01-01T00:00:00Z",
                              observed_generation=1),),
        stages=(StageStatus(name="provision", state=StageState.SUCCEEDED, attempts=1,
                            started_at="2026-01-01T00:00:00Z", finished_at="2026-01-01T00:01:00Z",
                            message="Created server", inputs_hash="abc", observed_generation=1),),
        server=ServerStatus(name="o4o-x-valid", ip_address="198.51.100.7",
                            ip_addresses=("198.51.100.7", "198.51.100.8"), static_ip_name="o4o-x-valid-ip",
                            region="ap-northeast-2", host_key_fingerprint="SHA256:" + "A" * 43,
                            host_key_fingerprints=("SHA256:" + "A" * 43, "SHA256:" + "B" * 43),
                            host_key_source=HostKeySource.PROVIDER, create_pending=False, created=True),
        source=SourceStatus(repository="https://github.com/o4o/platform.git", revision="main", commit="0" * 40),
        certificate=CertificateStatus(not_after="2026-03-01T00:00:00Z", issuer="C = US, O = Let's Encrypt, CN = E6",
                                      server="https://acme-v02.api.letsencrypt.org/directory"),
        database=DatabaseStatus(bootstrapped_at="2026-01-01T00:01:30Z", bootstrap="command", bootstrap_commit="0" * 40,
                                backups=(BackupRecord(
                                    id="20260101T000100Z-000000000000", time="2026-01-01T00:01:00Z", size=2048,
                                    sha256="a" * 64, postgres_version="140013", commit="0" * 40,
                                    migration_head="1700000000000-Init", key="o4o/ns/valid/uid/x.dump",
                                    uploads=UploadsArchiveRecord(key="o4o/ns/valid/uid/x.uploads.tar.gz", size=512,
                                                                 sha256="b" * 64)),)),
        installed_apps=("commerce",),
        log_tail=("Created server",),
        last_check_time="2026-01-01T00:02:00Z",
        drift_findings=(DriftFinding(stage="provision", reason="ServerNotRunning", message="server x is stopped"),),
    )
    written = status.to_body()
    control_plane.kubectl("patch", "di", "valid", "-n", namespace, "--subresource=status", "--type=merge",
                          "-p", json.dumps({"status": written}))
    stored = json.loads(control_plane.kubectl("get", "di", "valid", "-n", namespace, "-o", "json").stdout)
    assert stored["status"] == written
