"""Reading kubeconfig files and the in-cluster ServiceAccount, without the kubernetes client."""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from pathlib import Path
from typing import Any

import pytest

from o4o_dashboard.credentials import (
    TOKEN_REREAD_SECONDS,
    CredentialsError,
    TokenSource,
    from_kubeconfig,
    in_cluster,
    load_credentials,
)
from o4o_operator.testing.pki import PkiFiles, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return make_pki(tmp_path_factory.mktemp("pki"))


def write_kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any], namespace: str = "") -> Path:
    context: dict[str, Any] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
        "clusters": [{"name": "c", "cluster": cluster}], "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": context}, {"name": "other", "context": {"cluster": "c"}}],
    }))
    return path


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_token_user_with_inline_ca(tmp_path: Path, pki: PkiFiles) -> None:
    path = write_kubeconfig(tmp_path / "config", {"server": "https://127.0.0.1:6443/",
                                                  "certificate-authority-data": b64(pki.ca_cert)},
                            {"token": "abc.def"}, namespace="shop")
    credentials = from_kubeconfig(path)
    assert credentials.server == "https://127.0.0.1:6443"
    assert credentials.namespace == "shop"
    assert credentials.headers()["Authorization"] == "Bearer abc.def"
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    assert credentials.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert "abc.def" not in repr(credentials)


def test_client_certificate_data_is_loaded_and_not_left_on_disk(tmp_path: Path, pki: PkiFiles,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    path = write_kubeconfig(tmp_path / "config", {"server": "https://127.0.0.1:6443",
                                                  "certificate-authority": str(pki.ca_cert)},
                            {"client-certificate-data": b64(pki.admin_cert),
                             "client-key-data": b64(pki.admin_key)})
    credentials = from_kubeconfig(path, "other")
    assert credentials.tokens is None and credentials.namespace == "default"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_relative_files_are_relative_to_the_kubeconfig(tmp_path: Path, pki: PkiFiles) -> None:
    (tmp_path / "token").write_text("from-file\n")
    (tmp_path / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    path = write_kubeconfig(tmp_path / "config", {"server": "https://h:1", "certificate-authority": "ca.crt"},
                            {"tokenFile": "token"})
    assert from_kubeconfig(path).headers()["Authorization"] == "Bearer from-file"


@pytest.mark.parametrize(("cluster", "user", "message"), [
    ({"server": "https://h:1"}, {"exec": {"command": "aws"}}, "exec or auth-provider plugin"),
    ({"server": "ftp://h"}, {}, "has no https:// server"),
    ({"server": "https://h:1", "certificate-authority-data": "%%%"}, {}, "not valid base64"),
    ({"server": "https://h:1", "certificate-authority": "/nonexistent/ca.crt"}, {}, "cannot set up TLS"),
])
def test_unusable_kubeconfigs_say_why(tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any],
                                      message: str) -> None:
    with pytest.raises(CredentialsError, match=message):
        from_kubeconfig(write_kubeconfig(tmp_path / "config", cluster, user))


def test_unreadable_or_broken_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="cannot read kubeconfig"):
        from_kubeconfig(tmp_path / "missing")
    (tmp_path / "bad").write_text("{: nope")
    with pytest.raises(CredentialsError, match="not valid YAML"):
        from_kubeconfig(tmp_path / "bad")
    (tmp_path / "list").write_text("[]")
    with pytest.raises(CredentialsError, match="expected a mapping"):
        from_kubeconfig(tmp_path / "list")
    path = write_kubeconfig(tmp_path / "config", {"server": "https://h:1"}, {})
    with pytest.raises(CredentialsError, match="no context named 'nope'"):
        from_kubeconfig(path, "nope")


def test_in_cluster_service_account(tmp_path: Path, pki: PkiFiles) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("o4o-system")
    (tmp_path / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    credentials = in_cluster(environ, tmp_path)
    assert credentials.server == "https://10.0.0.1:443"
    assert credentials.namespace == "o4o-system"
    assert credentials.headers()["Authorization"] == "Bearer sa-token"
    ipv6 = in_cluster({"KUBERNETES_SERVICE_HOST": "fd00::1"}, tmp_path)
    assert ipv6.server == "https://[fd00::1]:443"
    with pytest.raises(CredentialsError, match="not running in a cluster"):
        in_cluster({}, tmp_path)


def test_load_order_prefers_the_flag_then_kubeconfig_env_then_in_cluster(tmp_path: Path) -> None:
    flagged = write_kubeconfig(tmp_path / "flag", {"server": "http://flag:1"}, {})
    env_file = write_kubeconfig(tmp_path / "env", {"server": "http://env:1"}, {})
    environ = {"KUBECONFIG": f"{tmp_path / 'missing'}:{env_file}", "HOME": str(tmp_path)}
    assert load_credentials(flagged, environ=environ).server == "http://flag:1"
    assert load_credentials(None, environ=environ).server == "http://env:1"
    with pytest.raises(CredentialsError, match="no kubeconfig found"):
        load_credentials(None, environ={"HOME": str(tmp_path)})


def test_token_files_are_read_again_after_a_minute(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first")
    now = [0.0]
    source = TokenSource(path=token_file, clock=lambda: now[0])
    token_file.write_text("second")
    assert source.token() == "first"
    now[0] = TOKEN_REREAD_SECONDS
    assert source.token() == "second"
    token_file.unlink()
    now[0] = 2 * TOKEN_REREAD_SECONDS
    assert source.token() == "second"  # keeps the last good one
    assert "second" not in repr(source)
