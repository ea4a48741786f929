"""R3: bad input. The schema rejects what it can, naming the field; what it cannot catch stalls, naming
the cause and the field, without a retry storm and without holding up other instances."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import asyncssh
import pytest
from reliability_support import (
    WorldFactory,
    apply_all,
    conditions,
    crd_test_module,
    get_di,
    metric_samples,
    secret_manifest,
    stages,
    wait_di,
)

from o4o_operator.testing import ControlPlane
from o4o_operator.testing.world import LocalWorld

pytestmark = pytest.mark.slow

_crd = crd_test_module()
EXTRA_INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("domain too long", _crd._with("domain", "a" * 250 + ".example.com"), "spec.domain"),
    ("host key fingerprint too short", _crd._with("ssh.hostKeyFingerprint", "SHA256:abc"),
     "spec.ssh.hostKeyFingerprint"),
    ("too many apps", _crd._with("apps", [f"app{i}" for i in range(40)]), "spec.apps"),
    ("revision starting with a dash", _crd._with("source.revision", "-c core.sshCommand=x"),
     "spec.source.revision"),
    ("repository over ftp", _crd._with("source.repository", "ftp://example.com/r.git"), "spec.source.repository"),
]
INVALID: list[tuple[str, dict[str, Any], str]] = [*_crd.INVALID, *EXTRA_INVALID]


def test_invalid_manifests_are_refused_by_the_apiserver_naming_the_field(
        control_plane: ControlPlane, namespace: str) -> None:
    items = []
    for number, (_, body, _) in enumerate(INVALID):
        item = copy.deepcopy(body)
        item["metadata"] = {"name": f"invalid-{number:02d}", "namespace": namespace}
        items.append(item)
    # --validate=false: kubectl must not refuse them itself; the apiserver is what is under test.
    result = control_plane.kubectl("create", "--validate=false", "--dry-run=server", "-n", namespace, "-f", "-",
                                   check=False, input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                  "items": items}))
    refusals = {match.group(1): match.group(0)
                for match in re.finditer(r'"(invalid-\d\d)" is invalid: .*', result.stderr)}
    named = [case for number, (case, _, field) in enumerate(INVALID)
             if field in refusals.get(f"invalid-{number:02d}", "")]
    print(f"R3a: {len(INVALID)} invalid manifests, {len(refusals)} refused by the apiserver, "
          f"{len(named)} naming the field")
    assert "created" not in result.stdout, result.stdout
    assert len(INVALID) >= 30
    assert len(refusals) == len(INVALID), (result.stderr[-3000:], result.stdout[-2000:])
    assert len(named) == len(INVALID), [(case, refusals.get(f"invalid-{n:02d}"))
                                        for n, (case, _, _) in enumerate(INVALID) if case not in named]


def _wrong_fingerprint() -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(b"not this host").digest()).decode().rstrip("=")


Change = Callable[[dict[str, Any]], None]
WRONG: list[tuple[str, Change, str, str, str]] = [
    # name, what is wrong, the stage that stalls, the reason, the field the message must name
    ("bad-bundle", lambda s: s["provider"]["lightsail"].update(bundleId="mega_9_9"),
     "provision", "UnknownBundle", "spec.provider.lightsail.bundleId"),
    ("bad-app", lambda s: s.update(apps=["blog"]), "apps", "UnknownApp", "spec.apps[0]"),
    ("no-secret", lambda s: s["ssh"].update(privateKeySecretRef={"name": "absent-ssh-key"}),
     "provision", "SecretNotFound", "spec.ssh.privateKeySecretRef"),
    ("no-key", lambda s: s["ssh"].update(privateKeySecretRef={"name": "ssh-key", "key": "absent-key"}),
     "provision", "SecretKeyMissing", "spec.ssh.privateKeySecretRef"),
    ("bad-host-key", lambda s: s["ssh"].update(hostKeyFingerprint=_wrong_fingerprint()),
     "runtime", "HostKeyMismatch", "spec.ssh.hostKeyFingerprint"),
    ("unreadable-key", lambda s: s["ssh"].update(privateKeySecretRef={"name": "garbage-ssh-key"}),
     "provision", "InvalidSshKey", "spec.ssh.privateKeySecretRef"),
    ("refused-key", lambda s: s["ssh"].update(privateKeySecretRef={"name": "stranger-ssh-key"}),
     "runtime", "SshAuthenticationFailed", "spec.ssh.privateKeySecretRef"),
    ("unquotable-env", lambda s: s.update(env=[{"name": "app-env"}, {"name": "unquotable-env"}]),
     "configure", "EnvValueUnquotable", "spec.env[1]"),
    ("unpinned-existing",
     lambda s: s.update(provider={"existing": {"host": "127.0.0.1"}}, dns={"provider": "none"}),
     "provision", "HostKeyNotPinned", "spec.ssh.hostKeyFingerprint"),
]
UNQUOTABLE = "canary-'\"`\\-value"
"""All three quote characters and a backslash: no .env quoting holds it."""


def _wrong_secrets(namespace: str) -> list[dict[str, Any]]:
    stranger = asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()
    garbage = {"ssh-privatekey": "-----BEGIN OPENSSH PRIVATE KEY-----"}
    return [secret_manifest(namespace, "garbage-ssh-key", garbage),
            secret_manifest(namespace, "stranger-ssh-key", {"ssh-privatekey": stranger}),
            secret_manifest(namespace, "unquotable-env", {"API_TOKEN": UNQUOTABLE})]


def _manifest(world: LocalWorld, name: str, namespace: str, change: Change | None = None) -> dict[str, Any]:
    manifest = world.manifest(name, namespace)
    if change is not None:
        change(manifest["spec"])
    return manifest


def _failures(world: LocalWorld) -> dict[str, float]:
    """``o4o_stage_failures_total`` samples for the reasons the wrong instances stall with."""
    assert world.operator is not None
    reasons = {f'reason="{reason}"' for *_, reason, _ in WRONG}
    return {labels: value for labels, value in metric_samples(world.operator.metrics(), "o4o_stage_failures_total")
            .items() if any(reason in labels for reason in reasons)}


def test_admitted_but_wrong_instances_stall_naming_the_cause_while_others_progress(
        worlds: WorldFactory, namespace: str) -> None:
    world = worlds(namespace, seed=3003, operator_env={"O4O_STALL_RECHECK_SECONDS": "1"})
    assert world.operator is not None
    world.create_secrets(namespace)
    apply_all(world, _wrong_secrets(namespace))
    for name, change, *_ in WRONG:
        world.apply(_manifest(world, name, namespace, change))
    world.apply(_manifest(world, "good-1", namespace))

    for name, *_ in WRONG:
        wait_di(world, namespace, name, "condition=Stalled", timeout=180)
    wait_di(world, namespace, "good-1", "condition=Ready", timeout=180)
    stalled = {name: get_di(world, namespace, name) for name, *_ in WRONG}
    failures_before = _failures(world)
    rechecks_before = metric_samples(world.operator.metrics(), "o4o_reconcile_total").get('{result="stalled"}', 0)

    # The observation window: a whole lifecycle of another instance, while the stalled ones are re-checked
    # every second (O4O_STALL_RECHECK_SECONDS=1) and must not retry their stage.
    world.apply(_manifest(world, "good-2", namespace))
    wait_di(world, namespace, "good-2", "condition=Ready", timeout=180)
    failures_after = _failures(world)
    rechecks = metric_samples(world.operator.metrics(), "o4o_reconcile_total").get('{result="stalled"}', 0) \
        - rechecks_before

    results = []
    for name, _, stage, _, field in WRONG:
        before, after = stalled[name], get_di(world, namespace, name)
        condition = conditions(after)["Stalled"]
        record = stages(after)[stage]
        results.append((name, condition["status"], condition["reason"], field in condition["message"],
                        stages(before)[stage]["attempts"], record["attempts"], record["state"]))
    print(f"R3b: {len(WRONG)} wrong DIs stalled: "
          + "; ".join(f"{n} {r} (field named: {f}, attempts {a}->{b})" for n, _, r, f, a, b, _ in results))
    print(f"R3b: 2/2 good DIs Ready alongside; {rechecks:.0f} stalled re-checks in the window; "
          f"o4o_stage_failures_total for those reasons {sum(failures_before.values()):.0f} -> "
          f"{sum(failures_after.values()):.0f}")
    for (name, _, _, reason, field), (_, status, seen_reason, field_named, attempts_before, attempts_after,
                                          state) in zip(WRONG, results, strict=True):
        assert status == "True" and seen_reason == reason, (name, seen_reason, conditions(stalled[name]))
        assert field_named, (name, field, conditions(stalled[name])["Stalled"]["message"])
        assert state == "Failed", (name, state)
        assert attempts_before <= 2 and attempts_after == attempts_before, (name, attempts_before, attempts_after)
    assert "canary" not in json.dumps(get_di(world, namespace, "unquotable-env")), "an env value reached status"
    assert rechecks >= len(WRONG), "the window saw no re-check of the stalled instances"
    assert failures_after == failures_before, (failures_before, failures_after)
    assert sum(failures_after.values()) <= 2 * len(WRONG), failures_after


def test_an_unreachable_repository_stalls_naming_the_field(worlds: WorldFactory, namespace: str) -> None:
    world = worlds(namespace, seed=3004)
    world.create_secrets(namespace)
    world.apply(_manifest(world, "bad-repo", namespace,
                          lambda s: s["source"].update(repository="file:///nonexistent/o4o-platform.git")))
    wait_di(world, namespace, "bad-repo", 'jsonpath={.status.stages[?(@.name=="source")].state}=Failed')
    obj = get_di(world, namespace, "bad-repo")  # the failed stage and its verdict are written together
    stalled, source = conditions(obj)["Stalled"], stages(obj)["source"]
    print(f"R3b: bad-repo: source failed with {source['reason']} (attempt {source['attempts']}); "
          f"Stalled={stalled['status']}/{stalled['reason']}")
    assert stalled["status"] == "True" and stalled["reason"] == source["reason"] == "SourceAccessDenied", stalled
    assert "source.repository" in stalled["message"], stalled
