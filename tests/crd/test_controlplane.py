"""The local control plane itself: real binaries, RBAC, tokens, clean stop."""

from __future__ import annotations

import json
import os

from o4o_operator.testing import ControlPlane


def test_version_is_truthful(control_plane: ControlPlane) -> None:
    status, body = control_plane.get("/version")
    assert status == 200
    assert json.loads(body)["gitVersion"].startswith("v1.34.")


def test_rbac_is_enforced_for_service_account_tokens(control_plane: ControlPlane, namespace: str) -> None:
    token = control_plane.token_for("nobody", namespace)
    result = control_plane.kubectl("--token", token, "--user", "", "get", "pods", "-n", namespace, check=False)
    # the kubeconfig's client certificate must not win over the token: use a token-only kubeconfig
    config = control_plane.kubeconfig_for_token(token, control_plane.workdir / f"{namespace}.kubeconfig")
    denied = control_plane.kubectl("--kubeconfig", str(config), "get", "pods", "-n", namespace, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert result is not None


def test_stop_kills_processes_and_removes_the_workdir() -> None:
    plane = ControlPlane()
    plane.start()
    pid, workdir = plane.apiserver_pid(), plane.workdir
    plane.stop()
    assert not workdir.exists()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:  # a zombie would still answer; the process must be reaped
        raise AssertionError(f"kube-apiserver {pid} survived stop()")
