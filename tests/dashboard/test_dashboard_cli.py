"""Command-line flags: clear errors for bad ones, and the bind policy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from o4o_dashboard.cli import parse
from o4o_dashboard.security import bind_refusal, is_loopback, load_token

ANY = "0.0.0.0"  # noqa: S104 - the address whose binding the dashboard must refuse without a token


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "k", "namespace": "shop"}}],
        "clusters": [{"name": "k", "cluster": {"server": "http://127.0.0.1:1"}}],
    }))
    return path


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("a-long-enough-token-value\n")
    return path


def error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_defaults_watch_the_context_namespace_on_loopback(kubeconfig: Path) -> None:
    _, credentials, config = parse(["--kubeconfig", str(kubeconfig)])
    assert (config.namespace, config.host, config.port, config.token) == ("shop", "127.0.0.1", 8080, None)
    assert credentials.server == "http://127.0.0.1:1"


def test_all_namespaces_and_a_token_allow_any_host(kubeconfig: Path, token_file: Path) -> None:
    _, _, config = parse(["--kubeconfig", str(kubeconfig), "-A", "--host", ANY, "--port", "0",
                          "--token-file", str(token_file)])
    assert (config.namespace, config.host, config.port) == (None, ANY, 0)
    assert config.token == "a-long-enough-token-value"
    assert "a-long-enough" not in repr(config)


@pytest.mark.parametrize(("argv", "message"), [
    (["--namespace", "a", "--all-namespaces"], "not allowed with argument"),
    (["--namespace", "Bad_NS"], "is not a namespace name"),
    (["--port", "70000"], "is not between 0 and 65535"),
    (["--port", "http"], "is not a port number"),
    (["--host", ANY], "refusing to listen on 0.0.0.0 without a token"),
    (["--kubeconfig", "/nonexistent/kubeconfig"], "no such file"),
    (["--token-file", "/nonexistent/token"], "no such file"),
    (["--log-level", "loud"], "invalid choice"),
])
def test_bad_flags_exit_2_with_a_clear_message(argv: list[str], message: str, kubeconfig: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    if "--kubeconfig" not in argv:
        argv = [*argv, "--kubeconfig", str(kubeconfig)]
    assert message in error_of(argv, capsys)


def test_insecure_bind_is_explicit(kubeconfig: Path) -> None:
    _, _, config = parse(["--kubeconfig", str(kubeconfig), "--host", ANY, "--insecure-bind"])
    assert config.host == ANY and config.token is None


def test_short_tokens_are_refused_without_being_shown(kubeconfig: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "short").write_text("tiny-secret")
    err = error_of(["--kubeconfig", str(kubeconfig), "--token-file", str(tmp_path / "short")], capsys)
    assert "shorter than 16 characters" in err and "tiny-secret" not in err


def test_unusable_kubeconfig_is_a_flag_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config").write_text("{: nope")
    assert "is not valid YAML" in error_of(["--kubeconfig", str(tmp_path / "config")], capsys)


def test_token_may_come_from_the_environment(tmp_path: Path) -> None:
    token = load_token(None, {"O4O_DASHBOARD_TOKEN": " from-the-environment-123 "})
    assert token == "from-the-environment-123"
    assert load_token(None, {}) is None


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True),
                                                 ("localhost", True), (ANY, False), ("::", False),
                                                 ("10.1.2.3", False), ("dashboard.example.com", False)])
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert (bind_refusal(host, token_configured=False, insecure_bind=False) is None) is loopback


def test_python_dash_m_runs_the_same_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "o4o_dashboard", "--help"], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0
    assert "--all-namespaces" in result.stdout and "--insecure-bind" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "o4o_dashboard", "--port", "x"], capture_output=True,
                         text=True, check=False, timeout=60)
    assert bad.returncode == 2 and "is not a port number" in bad.stderr
