"""DeploymentInstance bodies in the states the dashboard must show, valid against the CRD.

Each state is a spec plus a status, so that apiserver tests can ``kubectl apply`` the
spec and ``kubectl patch --subresource=status`` the status, and unit tests can use the
merged body directly.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from o4o_operator.pipeline.stages import STAGES

XSS = "<img src=x onerror=window.__xss=1>"
CREATED = "2025-03-01T10:00:00Z"
STAGE_NAMES = [stage.name.value for stage in STAGES]


def spec(domain: str, *, description: str = "", paused: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "domain": domain,
        "description": description,
        "apps": ["forum-core"],
        "provider": {"lightsail": {
            "region": "ap-northeast-2", "bundleId": "small_3_0",
            "credentialsSecretRef": {"name": "aws-keys"}}},
        "ssh": {"user": "ubuntu", "privateKeySecretRef": {"name": "deploy-key", "key": "ssh-privatekey"}},
        "source": {"repository": "https://github.com/example/o4o-platform.git", "revision": "main",
                   "credentialsSecretRef": {"name": "git-token", "key": "token"}},
        "tls": {"email": "ops@example.com"},
        "dns": {"provider": "lightsail", "zone": ".".join(domain.split(".")[-2:])},
        "env": [{"name": "api-env"}],
    }
    if paused:
        body["paused"] = True
    return body


def _condition(kind: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2025-03-01T10:05:00Z", "observedGeneration": 1}


def _stages(succeeded: int, current: str | None = None, *, attempts: int = 1,
            message: str = "") -> list[dict[str, Any]]:
    stages = []
    for index, name in enumerate(STAGE_NAMES):
        entry: dict[str, Any] = {"name": name, "state": "Pending", "attempts": 0}
        if index < succeeded:
            entry.update(state="Succeeded", attempts=1, startedAt=f"2025-03-01T10:{index:02d}:00Z",
                         finishedAt=f"2025-03-01T10:{index:02d}:42Z")
        elif index == succeeded and current:
            entry.update(state=current, attempts=attempts, startedAt="2025-03-01T11:00:00Z", message=message)
            if current == "Failed":
                entry.update(finishedAt="2025-03-01T11:03:05Z", reason="RateLimited",
                             nextRetryAt="2025-03-01T12:00:00Z")
        stages.append(entry)
    return stages


def status_building(message: str = "Running pnpm build") -> dict[str, Any]:
    return {
        "phase": "Building", "observedGeneration": 1, "stageProgress": f"5/{len(STAGE_NAMES)}",
        "conditions": [_condition("Ready", "False", "Building", "build-site is running"),
                       _condition("Reconciling", "True", "StageRunning", "build-site"),
                       _condition("Stalled", "False", "Progressing")],
        "stages": _stages(5, "Running", message=message),
        "server": {"name": "o4o-building", "ipAddress": "203.0.113.20", "region": "ap-northeast-2"},
        "source": {"revision": "main", "commit": "0123456789abcdef0123456789abcdef01234567"},
        "logTail": ["$ git fetch origin main", "$ pnpm install --frozen-lockfile", "$ pnpm build"],
    }


def status_ready() -> dict[str, Any]:
    return {
        "phase": "Ready", "observedGeneration": 1, "stageProgress": f"{len(STAGE_NAMES)}/{len(STAGE_NAMES)}",
        "conditions": [_condition("Ready", "True", "AllStagesSucceeded", "Serving https://shop.example.com"),
                       _condition("Reconciling", "False", "Idle"), _condition("Stalled", "False", "Idle")],
        "stages": _stages(len(STAGE_NAMES)),
        "server": {"name": "o4o-ready", "ipAddress": "203.0.113.9", "region": "ap-northeast-2"},
        "certificate": {"issuer": "Let's Encrypt R11", "notAfter": "2025-06-01T00:00:00Z"},
        "installedApps": ["forum-core"],
        "logTail": ["Certificate obtained", "All stages succeeded"],
    }


def status_failed(message: str = "ACME server answered 429: too many certificates") -> dict[str, Any]:
    return {
        "phase": "Failed", "observedGeneration": 1, "stageProgress": f"8/{len(STAGE_NAMES)}",
        "conditions": [_condition("Ready", "False", "StageFailed", message),
                       _condition("Reconciling", "False", "Stalled"),
                       _condition("Stalled", "True", "RateLimited", message)],
        "stages": _stages(8, "Failed", attempts=5, message=message),
        "server": {"name": "o4o-failed", "ipAddress": "203.0.113.100"},
        "logTail": ["Requesting certificate", f"error: {message}"],
    }


def status_paused() -> dict[str, Any]:
    status = status_ready()
    status["conditions"] = [_condition("Ready", "True", "AllStagesSucceeded"),
                            _condition("Reconciling", "False", "Paused", "spec.paused is true"),
                            _condition("Stalled", "False", "Idle")]
    status["server"] = {"name": "o4o-paused", "ipAddress": "203.0.113.7"}
    return status


# name -> (spec, status or None); the set the list and browser tests use.
STATES: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "pending": (spec("new.example.com", description="Just created"), None),
    "building": (spec("build.example.com", description="Half way"), status_building()),
    "ready": (spec("shop.example.com", description="The shop"), status_ready()),
    "failed": (spec("broken.example.com", description="Rate limited"), status_failed()),
    "paused": (spec("quiet.example.com", description="On hold", paused=True), status_paused()),
}


def body(name: str, namespace: str, spec_body: dict[str, Any], status: dict[str, Any] | None = None,
         *, uid: str | None = None) -> dict[str, Any]:
    """A whole object as the API would return it (for unit tests)."""
    document: dict[str, Any] = {
        "apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance",
        "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{namespace}-{name}",
                     "generation": 1, "creationTimestamp": CREATED, "resourceVersion": "1",
                     "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                     "annotations": {"kopf.zalando.org/last-handled-configuration": json.dumps(spec_body)}},
        "spec": copy.deepcopy(spec_body),
    }
    if status is not None:
        document["status"] = copy.deepcopy(status)
    return document


def state_bodies(namespace: str = "shop") -> list[dict[str, Any]]:
    return [body(name, namespace, spec_body, status) for name, (spec_body, status) in STATES.items()]


def manifest(name: str, namespace: str, spec_body: dict[str, Any]) -> str:
    """JSON (valid YAML) for ``kubectl apply -f -``."""
    return json.dumps({"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance",
                       "metadata": {"name": name, "namespace": namespace}, "spec": spec_body})


def status_in_stage(phase: str, succeeded: int, *, ip: str = "", message: str = "") -> dict[str, Any]:
    """An instance part way through the pipeline: ``succeeded`` stages done, the next one running."""
    current = STAGE_NAMES[succeeded]
    status: dict[str, Any] = {
        "phase": phase, "observedGeneration": 1, "stageProgress": f"{succeeded}/{len(STAGE_NAMES)}",
        "conditions": [_condition("Ready", "False", "StageRunning", f"{current} is running"),
                       _condition("Reconciling", "True", "StageRunning", current),
                       _condition("Stalled", "False", "Progressing")],
        "stages": _stages(succeeded, "Running", message=message),
        "logTail": [f"Running {current}", message] if message else [f"Running {current}"],
    }
    if ip:
        status["server"] = {"name": "o4o-server", "ipAddress": ip}
    return status


# A realistic fleet for the README screenshot.
DEMO: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "shop-prod": (spec("shop.example.com", description="Production shop"), status_ready()),
    "shop-staging": (spec("staging.shop.example.com", description="Staging"),
                     status_in_stage("Building", 6, ip="203.0.113.21", message="pnpm --filter api build")),
    "forum": (spec("forum.example.org", description="Community forum"), status_ready()),
    "blog": (spec("blog.example.net", description="Blog"),
             status_in_stage("Configuring", 8, ip="203.0.113.40", message="Requesting certificate")),
    "docs": (spec("docs.example.com", description="Docs"), status_failed()),
    "crm": (spec("crm.example.com", description="CRM, on hold", paused=True), status_paused()),
    "api-eu": (spec("eu.api.example.com", description="EU region"),
               status_in_stage("Provisioning", 0, message="Waiting for the instance to run")),
    "landing": (spec("landing.example.com", description="Just created"), None),
}
