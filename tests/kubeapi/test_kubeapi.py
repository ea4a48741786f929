"""The operator's small Kubernetes client against the real apiserver."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from o4o_operator.errors import InvalidSpecError
from o4o_operator.kubeapi import Credentials, KubeApi, api_path
from o4o_operator.testing import ControlPlane

DI = {
    "apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance", "metadata": {"name": "api"},
    "spec": {"domain": "api.example.com", "provider": {"existing": {"host": "198.51.100.1"}},
             "ssh": {"privateKeySecretRef": {"name": "k"}}, "source": {"repository": "https://e.com/r.git"},
             "tls": {"email": "a@example.com"}},
}


@pytest.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[KubeApi]:
    assert control_plane.pki is not None
    api = KubeApi(Credentials(server=control_plane.server, ca_path=str(control_plane.pki.ca_cert),
                              certificate_path=str(control_plane.pki.admin_cert),
                              private_key_path=str(control_plane.pki.admin_key)))
    yield api
    await api.close()


def _create(plane: ControlPlane, namespace: str) -> dict[str, object]:
    plane.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(DI))
    return json.loads(plane.kubectl("get", "di", "api", "-n", namespace, "-o", "json").stdout)  # type: ignore[no-any-return]


async def test_status_patch_goes_to_the_subresource_and_counts_one_write(
        control_plane: ControlPlane, namespace: str, kube: KubeApi) -> None:
    _create(control_plane, namespace)
    await kube.patch_status(namespace, "api", {"phase": "Provisioning", "stageProgress": "0/9"})
    stored = await kube.get_instance(namespace, "api")
    assert stored is not None
    assert stored["status"]["phase"] == "Provisioning"
    assert stored["metadata"]["generation"] == 1
    assert kube.writes == 1


async def test_missing_secret_is_a_permanent_error_naming_the_field(
        control_plane: ControlPlane, namespace: str, kube: KubeApi) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        await kube.read_secret(namespace, "absent", "spec.ssh.privateKeySecretRef")
    assert caught.value.reason == "SecretNotFound"
    assert "spec.ssh.privateKeySecretRef" in caught.value.message


async def test_secret_data_is_decoded(control_plane: ControlPlane, namespace: str, kube: KubeApi) -> None:
    control_plane.kubectl("create", "secret", "generic", "s", "-n", namespace, "--from-literal=token=abc123")
    secret = await kube.read_secret(namespace, "s", "spec.env[0]")
    assert secret.data == {"token": "abc123"}
    assert "abc123" not in repr(secret)


async def test_log_configmap_is_created_then_updated_and_owned(
        control_plane: ControlPlane, namespace: str, kube: KubeApi) -> None:
    owner = _create(control_plane, namespace)
    for text in ("first\n", "first\nsecond\n"):
        assert await kube.apply_configmap(namespace, "api-log", {"log": text}, owner, {"a": "b"})
    stored = json.loads(control_plane.kubectl("get", "cm", "api-log", "-n", namespace, "-o", "json").stdout)
    assert stored["data"]["log"] == "first\nsecond\n"
    assert stored["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]  # type: ignore[index]
    assert stored["metadata"]["labels"] == {"a": "b", "app.kubernetes.io/managed-by": "o4o-operator"}
    uid = owner["metadata"]["uid"]  # type: ignore[index]
    assert await kube.read_owned_configmap(namespace, "api-log", uid) == {"log": "first\nsecond\n"}
    assert await kube.read_owned_configmap(namespace, "api-log", "0e5b0c1e-0000-4000-8000-000000000000") is None
    assert await kube.delete_configmap(namespace, "api-log", uid)
    assert control_plane.kubectl("get", "cm", "api-log", "-n", namespace, check=False).returncode != 0
    assert await kube.read_owned_configmap(namespace, "api-log", uid) is None


def _configmap(plane: ControlPlane, namespace: str, name: str, metadata: dict[str, object]) -> dict[str, object]:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace, **metadata},
            "data": {"log": "theirs"}}
    plane.kubectl("create", "-f", "-", input=json.dumps(body))
    return json.loads(plane.kubectl("get", "cm", name, "-n", namespace, "-o", "json").stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("metadata", [
    {},
    {"labels": {"app.kubernetes.io/managed-by": "o4o-operator"}},
    {"labels": {"app.kubernetes.io/managed-by": "o4o-operator"}, "ownerReferences": [{
        "apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance", "name": "api",
        "uid": "0e5b0c1e-0000-4000-8000-000000000000"}]},
], ids=["unlabelled", "labelled-without-owner", "labelled-for-another-instance"])
async def test_a_log_configmap_the_operator_did_not_make_is_never_overwritten_nor_deleted(
        control_plane: ControlPlane, namespace: str, kube: KubeApi, metadata: dict[str, object]) -> None:
    owner = _create(control_plane, namespace)
    before = _configmap(control_plane, namespace, "api-log", metadata)
    assert await kube.apply_configmap(namespace, "api-log", {"log": "ours"}, owner, {}) is False
    assert await kube.read_owned_configmap(namespace, "api-log", owner["metadata"]["uid"]) is None  # type: ignore[index]
    assert await kube.delete_configmap(namespace, "api-log", owner["metadata"]["uid"]) is False  # type: ignore[index]
    after = json.loads(control_plane.kubectl("get", "cm", "api-log", "-n", namespace, "-o", "json").stdout)
    assert after == before


async def test_events_are_posted_for_the_instance(control_plane: ControlPlane, namespace: str,
                                                  kube: KubeApi) -> None:
    owner = _create(control_plane, namespace)
    await kube.post_event(owner, "StageStarted", "Started provisioning")
    events = json.loads(control_plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    assert [(e["reason"], e["involvedObject"]["name"]) for e in events] == [("StageStarted", "api")]


@pytest.mark.parametrize("name", ["../../kube-system/secrets/x", "..", ".", "", "a/b"])
async def test_a_secret_name_that_is_no_single_path_segment_is_refused_before_any_request(
        control_plane: ControlPlane, namespace: str, kube: KubeApi, name: str) -> None:
    control_plane.kubectl("create", "secret", "generic", "x", "-n", "kube-system", "--from-literal=k=v",
                          check=False)
    with pytest.raises(InvalidSpecError) as caught:
        await kube.read_secret(namespace, name, "spec.env[0]")
    assert caught.value.reason == "InvalidSecretName"
    assert caught.value.message.startswith("spec.env[0]: ")


def test_path_segments_are_quoted() -> None:
    assert api_path("/api/v1", "namespaces", "ns", "secrets", "a%2F..?x#y") == \
        "/api/v1/namespaces/ns/secrets/a%252F..%3Fx%23y"
    with pytest.raises(ValueError, match="not a valid object name"):
        api_path("/api/v1", "namespaces", "..", "secrets")


async def test_a_secret_finalizer_is_added_once_kept_beside_others_and_removed(
        control_plane: ControlPlane, namespace: str, kube: KubeApi) -> None:
    control_plane.kubectl("create", "secret", "generic", "aws", "-n", namespace, "--from-literal=k=v")
    control_plane.kubectl("patch", "secret", "aws", "-n", namespace, "--type=merge",
                          "-p", '{"metadata": {"finalizers": ["example.com/theirs"]}}')
    mine = "deploy.o4o.io/teardown-u-1"
    for _ in range(2):
        assert await kube.set_secret_finalizer(namespace, "aws", mine, present=True)
    held = await kube.read_secret(namespace, "aws", "spec.provider.lightsail.credentialsSecretRef")
    assert held.finalizers == ("example.com/theirs", mine) and not held.deleting
    assert held.data == {"k": "v"}

    control_plane.kubectl("delete", "secret", "aws", "-n", namespace, "--wait=false")
    deleting = await kube.read_secret(namespace, "aws", "spec.provider.lightsail.credentialsSecretRef")
    assert deleting.deleting
    assert await kube.set_secret_finalizer(namespace, "aws", "deploy.o4o.io/teardown-u-2", present=True) is False
    assert await kube.set_secret_finalizer(namespace, "aws", mine, present=False)
    left = await kube.read_secret(namespace, "aws", "spec.provider.lightsail.credentialsSecretRef")
    assert left.finalizers == ("example.com/theirs",)
    control_plane.kubectl("patch", "secret", "aws", "-n", namespace, "--type=merge",
                          "-p", '{"metadata": {"finalizers": null}}')
    assert await kube.set_secret_finalizer(namespace, "aws", mine, present=False)  # gone: nothing to release
    assert await kube.set_secret_finalizer(namespace, "aws", mine, present=True) is False


async def test_a_client_key_given_as_data_leaves_no_file_behind(
        control_plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kopf's login hands over the client certificate and key as data (from a kubeconfig's *-data fields); the
    TLS context needs them as a file, which must be gone once loaded, not left in /tmp for the process's life."""
    assert control_plane.pki is not None
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    kube = KubeApi(Credentials(server=control_plane.server, ca_path=str(control_plane.pki.ca_cert),
                               certificate_data=control_plane.pki.admin_cert.read_bytes(),
                               private_key_data=control_plane.pki.admin_key.read_bytes()))
    try:
        assert await kube.get_instance("default", "absent") is None  # authenticated by that certificate
        assert os.listdir(tmp_path) == []
    finally:
        await kube.close()
    assert os.listdir(tmp_path) == []


async def test_a_kubeconfig_with_its_files_inlined_logs_in(
        control_plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Most kubeconfigs (kind, EKS, GKE, a copied admin.conf) inline the CA, certificate and key as base64 in
    ``*-data`` fields. Kopf's login keeps them as found; the operator's own client must decode them."""
    import kopf

    from o4o_operator import handlers

    monkeypatch.setenv("KUBECONFIG", str(control_plane.write_inlined_kubeconfig(tmp_path / "kubeconfig")))
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    assert info is not None and info.ca_path is None and info.ca_data is not None
    kube = KubeApi(handlers.credentials_from(info))
    try:
        assert await kube.get_instance("default", "absent") is None  # TLS verified, authenticated
    finally:
        await kube.close()
