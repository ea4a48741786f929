"""The operator-owned Secret ``<name>-database`` against the real apiserver: made once with our label and
ownerReference, its values kept across passes, a missing key added beside them, a foreign Secret of that
name never touched, and teardown deleting it unless ``deletionPolicy: Retain``, which releases it and the log
ConfigMap (no ownerReference, so no garbage collector takes them) for an instance of that name to adopt."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from o4o_operator.errors import InvalidSpecError
from o4o_operator.kubeapi import Credentials, KubeApi
from o4o_operator.models import DeploymentInstanceSpec, DeploymentInstanceStatus
from o4o_operator.models_database import INSTANCE_LABEL
from o4o_operator.redaction import Redactor
from o4o_operator.rendering.env_values import GENERATED_KEYS
from o4o_operator.runner.generated_secret import generated_values
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.log import InstanceLog
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.settings import OperatorSettings
from o4o_operator.runner.teardown import teardown
from o4o_operator.runner.worker import InstanceWorker
from o4o_operator.testing import ControlPlane

SPEC = {"domain": "shop.example.com", "provider": {"existing": {"host": "198.51.100.1"}},
        "ssh": {"privateKeySecretRef": {"name": "k", "key": "k"}}, "tls": {"email": "a@example.com"}}


@pytest.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[KubeApi]:
    assert control_plane.pki is not None
    api = KubeApi(Credentials(server=control_plane.server, ca_path=str(control_plane.pki.ca_cert),
                              certificate_path=str(control_plane.pki.admin_cert),
                              private_key_path=str(control_plane.pki.admin_key)))
    yield api
    await api.close()


def _instance(plane: ControlPlane, namespace: str, name: str = "shop", **spec: Any) -> dict[str, Any]:
    body = {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance",
            "metadata": {"name": name, "namespace": namespace}, "spec": {**SPEC, **spec}}
    plane.kubectl("create", "-f", "-", input=json.dumps(body))
    return json.loads(plane.kubectl("get", "di", name, "-n", namespace, "-o", "json").stdout)  # type: ignore[no-any-return]


def _context(kube: KubeApi, body: dict[str, Any]) -> InstanceContext:
    runtime = Runtime(settings=OperatorSettings(), kube=kube, connector=None,  # type: ignore[arg-type]
                      pipelines=asyncio.Semaphore(1))
    spec = DeploymentInstanceSpec.model_validate(body["spec"])
    return InstanceContext(runtime, body, spec, DeploymentInstanceStatus(), InstanceLog(Redactor()))


def _secret(plane: ControlPlane, namespace: str, name: str, kind: str = "secret") -> dict[str, Any] | None:
    got = plane.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(got.stdout) if got.returncode == 0 else None


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


async def test_the_secret_is_made_once_with_our_label_and_owner_and_keeps_its_values(
        control_plane: ControlPlane, namespace: str, kube: KubeApi) -> None:
    body = _instance(control_plane, namespace)

    first = await generated_values(_context(kube, body))

    secret = _secret(control_plane, namespace, "shop-database")
    assert secret is not None and set(secret["data"]) == set(GENERATED_KEYS)
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == first
    meta = secret["metadata"]
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "o4o-operator", "deploy.o4o.io/instance": "shop"}
    assert [(o["kind"], o["name"], o["uid"], o["controller"]) for o in meta["ownerReferences"]] == \
        [("DeploymentInstance", "shop", body["metadata"]["uid"], True)]
    version = meta["resourceVersion"]

    assert await generated_values(_context(kube, body)) == first  # a later pass: the same values, no write
    assert _secret(control_plane, namespace, "shop-database")["metadata"]["resourceVersion"] == version  # type: ignore[index]

    control_plane.kubectl("patch", "secret", "shop-database", "-n", namespace, "--type=json",
                          "-p", '[{"op": "remove", "path": "/data/SESSION_SECRET"}]')
    completed = await generated_values(_context(kube, body))
    assert {k: v for k, v in completed.items() if k != "SESSION_SECRET"} == \
        {k: v for k, v in first.items() if k != "SESSION_SECRET"}
    assert completed["SESSION_SECRET"] and completed["SESSION_SECRET"] != first["SESSION_SECRET"]


async def test_a_foreign_secret_of_that_name_stalls_and_survives_teardown(
        control_plane: ControlPlane, namespace: str, kube: KubeApi) -> None:
    body = _instance(control_plane, namespace)
    control_plane.kubectl("create", "secret", "generic", "shop-database", "-n", namespace,
                          "--from-literal=DB_PASSWORD=theirs-0123456789")

    with pytest.raises(InvalidSpecError) as caught:
        await generated_values(_context(kube, body))

    assert caught.value.reason == "SecretNameTaken" and "shop-database" in caught.value.message
    await teardown(_context(kube, body).runtime, body)
    secret = _secret(control_plane, namespace, "shop-database")
    assert secret is not None and set(secret["data"]) == {"DB_PASSWORD"}


@pytest.mark.parametrize(("policy", "kept"), [("Delete", False), ("Retain", True)])
async def test_teardown_deletes_the_secret_unless_retained(
        control_plane: ControlPlane, namespace: str, kube: KubeApi, policy: str, kept: bool) -> None:
    body = _instance(control_plane, namespace, deletionPolicy=policy)
    await generated_values(_context(kube, body))

    await teardown(_context(kube, body).runtime, body)

    assert (_secret(control_plane, namespace, "shop-database") is not None) is kept


async def test_retain_releases_the_secret_and_log_and_an_instance_of_that_name_adopts_them(
        control_plane: ControlPlane, namespace: str, kube: KubeApi) -> None:
    old = _instance(control_plane, namespace, deletionPolicy="Retain")
    values = await generated_values(_context(kube, old))
    assert await kube.apply_configmap(namespace, "shop-log", {"log": "10:00:00 Created server\n"}, old,
                                      {INSTANCE_LABEL: "shop"})

    await teardown(_context(kube, old).runtime, old)

    # No ownerReference is left, so a garbage collector (there is none here) would take neither.
    for kind, name in (("secret", "shop-database"), ("configmap", "shop-log")):
        kept = _secret(control_plane, namespace, name, kind)
        assert kept is not None and "ownerReferences" not in kept["metadata"], kind
        assert kept["metadata"]["annotations"]["deploy.o4o.io/retained-from"] == old["metadata"]["uid"]
    control_plane.kubectl("delete", "di", "shop", "-n", namespace)
    new = _instance(control_plane, namespace, deletionPolicy="Retain")
    assert new["metadata"]["uid"] != old["metadata"]["uid"]

    assert await generated_values(_context(kube, new)) == values  # the same DB and admin passwords: login works
    worker = InstanceWorker(_context(kube, new).runtime, lambda: new, new.get("status"))
    worker.log("Adopted server")
    await worker.save_log()

    for kind, name in (("secret", "shop-database"), ("configmap", "shop-log")):
        adopted = _secret(control_plane, namespace, name, kind)
        assert adopted is not None
        assert [(o["uid"], o["controller"]) for o in adopted["metadata"]["ownerReferences"]] == \
            [(new["metadata"]["uid"], True)], kind
        assert "deploy.o4o.io/retained-from" not in (adopted["metadata"].get("annotations") or {})
    assert _decoded(_secret(control_plane, namespace, "shop-database")) == values  # type: ignore[arg-type]
    log = _secret(control_plane, namespace, "shop-log", "configmap")["data"]["log"]  # type: ignore[index]
    assert log.startswith("10:00:00 Created server\n") and log.rstrip().endswith("Adopted server")


@pytest.mark.parametrize("metadata", [
    {"labels": {"app.kubernetes.io/managed-by": "o4o-operator"}},
    {"labels": {"app.kubernetes.io/managed-by": "o4o-operator", INSTANCE_LABEL: "other"}},
    {"labels": {"app.kubernetes.io/managed-by": "o4o-operator", INSTANCE_LABEL: "shop"},
     "ownerReferences": [{"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance", "name": "shop",
                          "uid": "0e5b0c1e-0000-4000-8000-000000000000", "controller": True}]},
], ids=["no-instance-label", "another-instance", "controlled-by-another-uid"])
async def test_a_secret_not_released_for_this_instance_is_not_adopted(
        control_plane: ControlPlane, namespace: str, kube: KubeApi, metadata: dict[str, Any]) -> None:
    body = _instance(control_plane, namespace)
    theirs = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shop-database", **metadata},
              "stringData": {"DB_PASSWORD": "theirs-0123456789"}}
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(theirs))
    before = _secret(control_plane, namespace, "shop-database")

    with pytest.raises(InvalidSpecError) as caught:
        await generated_values(_context(kube, body))

    assert caught.value.reason == "SecretNameTaken"
    assert _secret(control_plane, namespace, "shop-database") == before
