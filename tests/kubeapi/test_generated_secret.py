"""The operator-owned Secret ``<name>-database`` against the real apiserver: made once with our label and
ownerReference, its values kept across passes, a missing key added beside them, a foreign Secret of that
name never touched, and teardown deleting it unless ``deletionPolicy: Retain``."""

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
from o4o_operator.redaction import Redactor
from o4o_operator.rendering.env_values import GENERATED_KEYS
from o4o_operator.runner.generated_secret import generated_values
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.log import InstanceLog
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.settings import OperatorSettings
from o4o_operator.runner.teardown import teardown
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


def _secret(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    got = plane.kubectl("get", "secret", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(got.stdout) if got.returncode == 0 else None


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
