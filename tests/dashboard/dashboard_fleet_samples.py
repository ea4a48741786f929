"""DeploymentFleets in the states the fleet page must show, with statuses written by the real planner.

Each scenario is a fleet (spec), the status the operator's own planner (pipeline/fleet_rollout.py) writes for
it, and its members' DeploymentInstances (spec plus status), all valid against the CRDs: unit tests use the
merged bodies; apiserver and browser tests ``kubectl apply`` the specs and patch the statuses.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

from dashboard_samples import CREATED, body, spec, status_failed, status_in_stage, status_ready

from o4o_operator.models_fleet import FLEET_LABEL, DeploymentFleetSpec, DeploymentFleetStatus, FleetTarget
from o4o_operator.pipeline.fleet_rollout import MemberState, plan

FLEET = "shops"
REPOSITORY = "https://github.com/example/o4o-platform.git"
OLD = "a1" * 20
NEW = "b2" * 20
NOW = datetime.datetime(2025, 3, 2, 10, 0, tzinfo=datetime.UTC)
MEMBERS = {"shop-kr": "kr.shop.example.com", "shop-jp": "jp.shop.example.com",
           "shop-us": "us.shop.example.com", "shop-de": "de.shop.example.com"}
CANARY = "shop-kr"
BUILD_FAILED = "Building @o4o/api-server at b2b2 failed; see the log"


def fleet_spec(*, gate: bool = False, paused: bool = False, description: str = "") -> dict[str, Any]:
    template = spec("unused.example.com", description=description)
    del template["domain"]
    template["source"] = {"repository": REPOSITORY, "revision": "release-2",
                          "credentialsSecretRef": {"name": "git-token", "key": "token"}}
    rest: dict[str, Any] = {"name": "rest", "percentage": 100}
    if gate:
        rest["maxUnavailable"] = 0
    body_: dict[str, Any] = {
        "template": template,
        "members": [{"name": name, "domain": domain, **({"labels": {"tier": "canary"}} if name == CANARY else {})}
                    for name, domain in MEMBERS.items()],
        "strategy": {"waves": [{"name": "canary", "selector": {"matchLabels": {"tier": "canary"}}}, rest]},
    }
    if paused:
        body_["paused"] = True
    return body_


@dataclasses.dataclass(frozen=True)
class Member:
    """One member DeploymentInstance: what it is pinned to, what it serves, and how it is."""

    pinned: str = OLD
    commit: str = OLD
    state: str = "ready"
    """ready, rolling or failed."""

    def as_state(self, name: str) -> MemberState:
        return MemberState(name, pinned_revision=self.pinned, commit=self.commit, generation=1, observed_generation=1,
                           ready=self.state == "ready", stalled=self.state == "failed",
                           reason={"failed": "BuildFailed", "rolling": "StageRunning"}.get(self.state, "Ready"),
                           message=BUILD_FAILED if self.state == "failed" else "")

    def status(self) -> dict[str, Any]:
        if self.state == "failed":
            status = status_failed(BUILD_FAILED)
            status["conditions"][-1]["reason"] = "BuildFailed"
        elif self.state == "rolling":
            status = status_in_stage("Building", 5, ip="203.0.113.30", message="pnpm build")
        else:
            status = status_ready()
        status["source"] = {"revision": self.commit, "commit": self.commit}
        return status


@dataclasses.dataclass(frozen=True)
class Scenario:
    spec: dict[str, Any]
    members: dict[str, Member]
    status: dict[str, Any]


def planned_status(spec_body: dict[str, Any], members: dict[str, Member], promoted: str | None = None,
                   old: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status the operator's planner writes for this fleet and these members (one pass, or more)."""
    target = FleetTarget(repository=REPOSITORY, revision="release-2", commit=NEW)
    states = {name: member.as_state(name) for name, member in members.items()}
    previous = DeploymentFleetStatus.model_validate(old or {})
    result = plan(DeploymentFleetSpec.model_validate(spec_body), 1, target, states, previous, promoted, NOW)
    return result.status.to_body()


def scenario(name: str) -> Scenario:
    """``progressing``, ``halted``, ``paused``, ``gate`` or ``done``."""
    spec_body = fleet_spec(gate=name == "gate", paused=name == "paused")
    members = {member: Member() for member in MEMBERS}
    if name == "progressing":
        members[CANARY] = Member(pinned=NEW, commit=OLD, state="rolling")
    elif name == "halted":
        members[CANARY] = Member(pinned=NEW, commit=NEW, state="failed")
    elif name == "gate":
        members[CANARY] = Member(pinned=NEW, commit=NEW)
    elif name == "done":
        members = {member: Member(pinned=NEW, commit=NEW) for member in MEMBERS}
    return Scenario(spec_body, members, planned_status(spec_body, members))


FLEET_UID = "uid-fleet-shops"


def fleet_body(namespace: str, spec_body: dict[str, Any], status: dict[str, Any] | None,
               name: str = FLEET) -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentFleet",
        "metadata": {"name": name, "namespace": namespace, "uid": FLEET_UID, "generation": 1,
                     "creationTimestamp": CREATED, "resourceVersion": "1"},
        "spec": spec_body,
    }
    if status is not None:
        document["status"] = status
    return document


def owner(fleet_uid: str, name: str = FLEET) -> dict[str, Any]:
    return {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentFleet", "name": name, "uid": fleet_uid,
            "controller": True, "blockOwnerDeletion": True}


def member_spec(name: str, member: Member) -> dict[str, Any]:
    member_body = spec(MEMBERS[name])
    member_body["source"] = {"repository": REPOSITORY, "revision": member.pinned}
    return member_body


def member_bodies(namespace: str, members: dict[str, Member], fleet_uid: str = FLEET_UID) -> dict[str, Any]:
    """The members' whole DeploymentInstances as the API would return them (for unit tests)."""
    found = {}
    for name, member in members.items():
        document = body(name, namespace, member_spec(name, member), member.status())
        document["metadata"]["labels"] = {FLEET_LABEL: FLEET}
        document["metadata"]["ownerReferences"] = [owner(fleet_uid)]
        found[name] = document
    return found


def fleet_manifest(namespace: str, spec_body: dict[str, Any], name: str = FLEET) -> str:
    return json.dumps({"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentFleet",
                       "metadata": {"name": name, "namespace": namespace}, "spec": spec_body})


def member_manifests(namespace: str, members: dict[str, Member], fleet_uid: str) -> str:
    """A List of the member DeploymentInstances, owned by the fleet, for ``kubectl apply -f -``."""
    items = [{"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance",
              "metadata": {"name": name, "namespace": namespace, "labels": {FLEET_LABEL: FLEET},
                           "ownerReferences": [owner(fleet_uid)]},
              "spec": member_spec(name, member)} for name, member in members.items()]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
