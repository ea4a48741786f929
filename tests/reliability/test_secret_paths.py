"""Issue 13.6: a Secret reference can never make the operator request anything outside the DI's namespace.

Every request goes through the faulty-apiserver proxy (no faults), which records the raw paths clients send.
The hostile instance is stored the way an old object would be: under a CRD without the name patterns,
which is then put back; the operator must still refuse it (the models check) and never send a path that
leaves the namespace. The client itself is also tried with hostile names directly (its own check).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_support import WorldFactory, conditions, get_di, wait_di, wait_gone

from o4o_operator.errors import InvalidSpecError
from o4o_operator.kubeapi import Credentials, KubeApi
from o4o_operator.models import SECRET_KEY_PATTERN, SECRET_NAME_PATTERN
from o4o_operator.testing import ControlPlane
from o4o_operator.testing.faulty_apiserver import FaultyApiserver
from o4o_operator.testing.world import CRD

pytestmark = pytest.mark.slow

TRAVERSAL = "../../kube-system/secrets/o4o-canary"


def _outside(paths: list[tuple[str, str]], namespace: str) -> list[tuple[str, str]]:
    """Requests that name another namespace, or whose segments decode to a dot segment or hold a slash."""
    bad = []
    for method, path in paths:
        segments = [urllib.parse.unquote(segment) for segment in path.split("/")[1:]]
        named = [segments[i + 1] for i, segment in enumerate(segments[:-1]) if segment == "namespaces"]
        if any(other != namespace for other in named) or any(s in (".", "..") or "/" in s for s in segments):
            bad.append((method, path))
    return bad


def _wait_schema(plane: ControlPlane, namespace: str, *, accepts_traversal: bool) -> None:
    """Until the apiserver validates DIs with the CRD just applied (it rebuilds its handler asynchronously)."""
    probe = {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance",
             "metadata": {"name": "probe", "namespace": namespace},
             "spec": {"domain": "probe.example.com", "provider": {"existing": {"host": "198.51.100.1"}},
                      "ssh": {"privateKeySecretRef": {"name": TRAVERSAL}},
                      "source": {"repository": "https://example.com/r.git"}, "tls": {"email": "a@example.com"}}}
    deadline = time.monotonic() + 60
    while True:
        result = plane.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(probe), check=False)
        if (result.returncode == 0) is accepts_traversal:
            return
        assert time.monotonic() < deadline, result.stderr
        time.sleep(0.2)  # the apiserver swaps its CRD handler asynchronously; bounded by the deadline


@pytest.fixture
def crd_without_patterns(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[None]:
    """The CRD as it was before 13.6, for as long as the test stores its old object; then the real one."""
    text = CRD.read_text()
    old = text.replace(f", pattern: '{SECRET_NAME_PATTERN}'", "").replace(f", pattern: '{SECRET_KEY_PATTERN}'", "")
    assert old != text and SECRET_NAME_PATTERN not in old
    (tmp_path / "crd.yaml").write_text(old)
    try:
        control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(tmp_path / "crd.yaml"))
        _wait_schema(control_plane, namespace, accepts_traversal=True)
        yield
    finally:
        control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        _wait_schema(control_plane, namespace, accepts_traversal=False)


def test_a_stored_traversal_name_stalls_and_no_request_leaves_the_namespace(
        control_plane: ControlPlane, worlds: WorldFactory, namespace: str, crd_without_patterns: None) -> None:
    control_plane.kubectl("create", "secret", "generic", "o4o-canary", "-n", "kube-system",
                          "--from-literal=ssh-privatekey=canary", check=False)
    with FaultyApiserver(control_plane) as proxy:
        world = worlds(namespace, seed=1306, kubeconfig=proxy.write_kubeconfig(proxy.directory / "kubeconfig"))
        world.create_secrets(namespace)
        manifest = world.manifest("hostile", namespace, env=[{"name": "app-env"}, {"name": TRAVERSAL}])
        manifest["spec"]["ssh"]["privateKeySecretRef"] = {"name": TRAVERSAL, "key": "ssh-privatekey"}
        manifest["spec"]["provider"]["lightsail"]["credentialsSecretRef"] = {"name": TRAVERSAL}
        world.apply(manifest)
        wait_di(world, namespace, "hostile", "condition=Stalled", timeout=120)
        stalled = conditions(get_di(world, namespace, "hostile"))["Stalled"]
        control_plane.kubectl("delete", "di", "hostile", "-n", namespace, "--wait=false")
        wait_gone(world, namespace, "hostile", timeout=120)
        paths = list(proxy.stats.paths)
    secret_reads = [path for _, path in paths if "/secrets" in path]
    print(f"13.6: {len(paths)} requests through the proxy, {len(secret_reads)} Secret reads; "
          f"Stalled: {stalled['reason']}: {stalled['message'][:160]}")
    assert stalled["reason"] == "InvalidSpec"
    assert "SecretRef.name" in stalled["message"], stalled["message"]
    assert any(f"/namespaces/{namespace}/" in path for _, path in paths), "the operator never went through the proxy"
    assert _outside(paths, namespace) == []


@pytest.mark.parametrize("name", [TRAVERSAL, "..", "a%2F..%2F..%2Fkube-system%2Fsecrets%2Fo4o-canary",
                                  "%2E%2E", "o4o-canary?namespace=kube-system", "o4o-canary#x"])
async def test_the_client_keeps_every_secret_read_inside_the_namespace(
        control_plane: ControlPlane, namespace: str, name: str) -> None:
    control_plane.kubectl("create", "secret", "generic", "o4o-canary", "-n", "kube-system",
                          "--from-literal=k=canary", check=False)
    assert control_plane.pki is not None
    with FaultyApiserver(control_plane) as proxy:
        kube = KubeApi(Credentials(server=proxy.url, ca_path=str(proxy.ca_path),
                                   certificate_path=str(control_plane.pki.admin_cert),
                                   private_key_path=str(control_plane.pki.admin_key)), attempts=1)
        try:
            with pytest.raises(InvalidSpecError) as caught:
                await kube.read_secret(namespace, name, "spec.env[0]")
        finally:
            await kube.close()
        paths = list(proxy.stats.paths)
    assert caught.value.reason in ("InvalidSecretName", "SecretNotFound"), caught.value
    assert _outside(paths, namespace) == []
