"""The DeploymentFleet CRD and ``models_fleet`` refuse the same specs, each naming the same field.

As for the DeploymentInstance (test_crd_model_agreement.py): every field of the models is in the CRD (else
the apiserver prunes it), a full spec is valid to both, and each bad value of the table is refused by the
real apiserver (a server-side dry run) and by the models, both naming the field. ``spec.template`` is a
DeploymentInstance spec kept as the user wrote it (the DI's own schema checks it when a member is made);
only its ``domain`` is refused here, since each member has its own.
"""

from __future__ import annotations

import copy
import json
import ssl
import typing
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from o4o_operator.models_fleet import DeploymentFleetSpec, DeploymentFleetStatus, refusal_message
from o4o_operator.testing import ControlPlane

CRD = Path(__file__).resolve().parents[2] / "crds" / "deploymentfleets.deploy.o4o.io.yaml"
TEMPLATE = {"provider": {"lightsail": {"region": "ap-northeast-2"}},
            "ssh": {"privateKeySecretRef": {"name": "ssh", "key": "id"}},
            "tls": {"email": "ops@example.com"}, "source": {"revision": "main"}}
FULL = {
    "template": TEMPLATE,
    "members": [
        {"name": "shop-a", "domain": "a.example.com", "labels": {"tier": "canary", "example.com/region": "kr"},
         "overrides": {"apps": ["forum-core"], "bundleId": "medium_3_0", "env": [{"name": "a-env"}],
                       "apiPort": 3002}},
        {"name": "shop-b", "domain": "b.example.com", "labels": {"tier": "main"}},
    ],
    "strategy": {"waves": [
        {"name": "canary", "selector": {"matchLabels": {"tier": "canary"}}, "maxUnavailable": 1, "bakeSeconds": 60,
         "deadlineSeconds": 600},
        {"name": "half", "percentage": 50, "maxUnavailable": 0},
        {"name": "last", "count": 3},
    ]},
    "failureThreshold": 2, "paused": False,
}


def _with(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(FULL)
    *parents, leaf = path.split(".")
    node: Any = spec
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return spec


BAD = [
    ("member name with a capital", _with("members.0.name", "Shop-a"), "spec.members[0].name"),
    ("member name of 64 characters", _with("members.0.name", "a" * 64), "spec.members[0].name"),
    ("empty domain", _with("members.1.domain", ""), "spec.members[1].domain"),
    ("two members of one name", _with("members.1.name", "shop-a"), "spec.members[1]"),
    ("label value with a space", _with("members.0.labels", {"tier": "a b"}), "spec.members[0].labels"),
    ("label key with a space", _with("members.0.labels", {"a b": "x"}), "spec.members[0].labels"),
    ("bundle id of 65 characters", _with("members.0.overrides.bundleId", "b" * 65),
     "spec.members[0].overrides.bundleId"),
    ("API port below 1024", _with("members.0.overrides.apiPort", 80), "spec.members[0].overrides.apiPort"),
    ("env Secret name with a capital", _with("members.0.overrides.env", [{"name": "A"}]),
     "spec.members[0].overrides.env[0].name"),
    ("a wave with both selector and count", _with("strategy.waves.0.count", 1), "spec.strategy.waves[0]"),
    ("a wave choosing nothing", _with("strategy.waves.2", {"name": "last"}), "spec.strategy.waves[2]"),
    ("percentage over 100", _with("strategy.waves.1.percentage", 101), "spec.strategy.waves[1].percentage"),
    ("count of 0", _with("strategy.waves.2.count", 0), "spec.strategy.waves[2].count"),
    ("negative maxUnavailable", _with("strategy.waves.0.maxUnavailable", -1),
     "spec.strategy.waves[0].maxUnavailable"),
    ("negative bake", _with("strategy.waves.0.bakeSeconds", -1), "spec.strategy.waves[0].bakeSeconds"),
    ("deadline of 0", _with("strategy.waves.0.deadlineSeconds", 0), "spec.strategy.waves[0].deadlineSeconds"),
    ("two waves of one name", _with("strategy.waves.1.name", "canary"), "spec.strategy.waves[1]"),
    ("empty selector", _with("strategy.waves.0.selector", {"matchLabels": {}}),
     "spec.strategy.waves[0].selector.matchLabels"),
    ("failure threshold of 0", _with("failureThreshold", 0), "spec.failureThreshold"),
    ("a domain in the template", _with("template.domain", "x.example.com"), "spec.template.domain"),
]


BEYOND_THE_SCHEMA = {"two members of one domain": "a CEL rule comparing every pair of 500 members exceeds the "
                                                "apiserver's cost budget (2.7x); the operator stalls naming "
                                                "spec.members"}


def test_what_only_the_models_check_is_refused_by_them() -> None:
    assert (_model_refusal(_with("members.1.domain", "a.example.com")) or "").startswith("spec.members")
    assert len(BEYOND_THE_SCHEMA) == 1


class Apiserver:
    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self._url = f"{plane.server}/apis/deploy.o4o.io/v1alpha1/namespaces/{namespace}/deploymentfleets?dryRun=All"
        self._context: ssl.SSLContext = plane.ssl_context()

    def refused_fields(self, spec: dict[str, Any]) -> list[str] | None:
        body = {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentFleet",
                "metadata": {"name": "agreement"}, "spec": spec}
        request = urllib.request.Request(self._url, data=json.dumps(body).encode(), method="POST",  # noqa: S310
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self._context, timeout=30):  # noqa: S310
                return None
        except urllib.error.HTTPError as error:
            status = json.loads(error.read())
        assert status.get("reason") == "Invalid", status
        causes = status.get("details", {}).get("causes", [])
        return [cause.get("field", "") for cause in causes] + [status.get("message", "")]


@pytest.fixture
def apiserver(control_plane: ControlPlane, namespace: str) -> Apiserver:
    return Apiserver(control_plane, namespace)


def _model_refusal(spec: dict[str, Any]) -> str | None:
    try:
        DeploymentFleetSpec.model_validate(spec)
    except pydantic.ValidationError as error:
        return refusal_message(error)
    return None


def test_the_full_spec_is_valid_to_both(apiserver: Apiserver) -> None:
    assert _model_refusal(FULL) is None
    assert apiserver.refused_fields(FULL) is None


@pytest.mark.parametrize(("case", "spec", "field"), BAD, ids=[case for case, _, _ in BAD])
def test_the_crd_refuses_naming_the_field(apiserver: Apiserver, case: str, spec: dict[str, Any], field: str) -> None:
    refused = apiserver.refused_fields(spec)
    assert refused is not None, f"{case} was accepted"
    assert any(named.startswith(field) for named in refused), f"{case}: not named {field}: {refused}"


@pytest.mark.parametrize(("case", "spec", "field"), BAD, ids=[case for case, _, _ in BAD])
def test_the_models_refuse_naming_the_field(case: str, spec: dict[str, Any], field: str) -> None:
    refusal = _model_refusal(spec)
    assert refusal is not None, f"{case} was accepted by the models"
    named = field.replace("[", ".").replace("]", "")
    # the models name the list a duplicate is in (a map-list key), the apiserver the item
    assert refusal.startswith(named) or refusal.startswith(named.rsplit(".", 1)[0]), refusal


def _schema() -> dict[str, Any]:
    return yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def _schema_node(path: str) -> dict[str, Any] | None:
    node: dict[str, Any] = _schema()
    for part in path.split("."):
        while node.get("type") == "array":
            node = node["items"]
        properties = node.get("properties") or {}
        if part not in properties:
            return None
        node = properties[part]
    return node


def _models_in(annotation: Any) -> Iterator[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _models_in(argument)


def _model_fields(model: type[pydantic.BaseModel], prefix: str) -> Iterator[str]:
    for name, field in model.model_fields.items():
        path = f"{prefix}.{field.alias or name}"
        yield path
        for inner in _models_in(field.annotation):
            yield from _model_fields(inner, path)


@pytest.mark.parametrize(("model", "prefix"), [(DeploymentFleetSpec, "spec"), (DeploymentFleetStatus, "status")])
def test_every_model_field_is_in_the_crd(model: type[pydantic.BaseModel], prefix: str) -> None:
    missing = sorted(path for path in _model_fields(model, prefix) if _schema_node(path) is None)
    assert not missing, f"model fields the CRD does not have (it prunes them): {missing}"
