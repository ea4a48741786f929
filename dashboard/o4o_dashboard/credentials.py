"""Where the Kubernetes API server is and how to authenticate to it.

Owns: reading one kubeconfig file (its current or a named context) or the
in-cluster ServiceAccount into :class:`ApiCredentials`: the server URL, a TLS
context (CA, optional client certificate) and a bearer-token source that
re-reads token files as they rotate.

Must not: import the ``kubernetes`` client (it alone would dominate memory),
run exec or auth-provider plugins, show a token or key in a repr, log or
error message, or leave key material on disk (inline client keys go through a
private temporary directory that is removed at once).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0


class CredentialsError(Exception):
    """The kubeconfig or in-cluster environment cannot be used (the message says why)."""


class TokenSource:
    """A bearer token, fixed or read from a file (and read again every minute, for rotation)."""

    def __init__(self, *, token: str | None = None, path: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if (token is None) == (path is None):
            raise ValueError("give exactly one of token or path")
        self._token = token or ""
        self._path = path
        self._clock = clock
        self._read_at: float | None = None
        if path is not None:
            self._read()

    def __repr__(self) -> str:
        return f"TokenSource(path={self._path!s})" if self._path else "TokenSource(token=<hidden>)"

    def _read(self) -> None:
        assert self._path is not None
        try:
            token = self._path.read_text().strip()
        except OSError as error:
            raise CredentialsError(f"cannot read token file {self._path}: {error.strerror}") from None
        if not token:
            raise CredentialsError(f"token file {self._path} is empty")
        self._token = token
        self._read_at = self._clock()

    def token(self) -> str:
        if self._path is not None and self._read_at is not None \
                and self._clock() - self._read_at >= TOKEN_REREAD_SECONDS:
            # On failure keep the last good token; the API server will say if it has expired.
            with contextlib.suppress(CredentialsError):
                self._read()
        return self._token


@dataclasses.dataclass(frozen=True)
class ApiCredentials:
    server: str
    ssl_context: ssl.SSLContext | None
    tokens: TokenSource | None
    namespace: str = "default"
    server_hostname: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "o4o-dashboard"}
        if self.tokens is not None:
            headers["Authorization"] = f"Bearer {self.tokens.token()}"
        return headers


def _named(entries: Any, name: str, what: str, path: Path) -> Mapping[str, Any]:
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            body = entry.get(what)
            return body if isinstance(body, Mapping) else {}
    raise CredentialsError(f"{path}: no {what} named {name!r}")


def _decode(data: str, field: str, path: Path) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise CredentialsError(f"{path}: {field} is not valid base64") from None


def _file(value: Any, base: Path) -> Path:
    candidate = Path(str(value)).expanduser()
    return candidate if candidate.is_absolute() else base / candidate


def _tls_context(cluster: Mapping[str, Any], user: Mapping[str, Any], path: Path) -> ssl.SSLContext:
    base = path.parent
    try:
        if cluster.get("certificate-authority-data"):
            ca_pem = _decode(str(cluster["certificate-authority-data"]), "certificate-authority-data", path)
            context = ssl.create_default_context(cadata=ca_pem.decode("ascii", errors="replace"))
        elif cluster.get("certificate-authority"):
            context = ssl.create_default_context(cafile=str(_file(cluster["certificate-authority"], base)))
        else:
            context = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify") is True:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        _load_client_certificate(context, user, path)
    except (OSError, ssl.SSLError) as error:
        raise CredentialsError(f"{path}: cannot set up TLS: {error}") from None
    return context


def _load_client_certificate(context: ssl.SSLContext, user: Mapping[str, Any], path: Path) -> None:
    cert_file, key_file = user.get("client-certificate"), user.get("client-key")
    cert_data, key_data = user.get("client-certificate-data"), user.get("client-key-data")
    if cert_file and key_file:
        context.load_cert_chain(str(_file(cert_file, path.parent)), str(_file(key_file, path.parent)))
        return
    if not (cert_data and key_data):
        return
    cert_pem = _decode(str(cert_data), "client-certificate-data", path)
    key_pem = _decode(str(key_data), "client-key-data", path)
    with tempfile.TemporaryDirectory(prefix="o4o-dashboard-") as private:  # created 0700
        cert_path, key_path = Path(private, "client.crt"), Path(private, "client.key")
        for target, content in ((cert_path, cert_pem), (key_path, key_pem)):
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(content)
        context.load_cert_chain(str(cert_path), str(key_path))


def from_kubeconfig(path: Path, context_name: str | None = None) -> ApiCredentials:
    """Credentials from one kubeconfig file: server, CA, client certificate or token."""
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as error:
        raise CredentialsError(f"cannot read kubeconfig {path}: {error.strerror}") from None
    except yaml.YAMLError:
        raise CredentialsError(f"kubeconfig {path} is not valid YAML") from None
    if not isinstance(config, Mapping):
        raise CredentialsError(f"kubeconfig {path} is not a kubeconfig (expected a mapping)")
    name = context_name or config.get("current-context")
    if not name:
        raise CredentialsError(f"kubeconfig {path} has no current-context; pass --context")
    context = _named(config.get("contexts"), str(name), "context", path)
    cluster = _named(config.get("clusters"), str(context.get("cluster", "")), "cluster", path)
    user: Mapping[str, Any] = {}
    if context.get("user"):
        user = _named(config.get("users"), str(context["user"]), "user", path)
    server = str(cluster.get("server", "")).rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise CredentialsError(f"{path}: cluster of context {name!r} has no https:// server")
    if user.get("exec") or user.get("auth-provider"):
        raise CredentialsError(
            f"{path}: user of context {name!r} uses an exec or auth-provider plugin, which o4o-dashboard "
            "does not run; use a kubeconfig with a token or client certificate (e.g. a ServiceAccount token)")
    tokens: TokenSource | None = None
    if user.get("token"):
        tokens = TokenSource(token=str(user["token"]))
    elif user.get("tokenFile"):
        tokens = TokenSource(path=_file(user["tokenFile"], path.parent))
    tls = _tls_context(cluster, user, path) if server.startswith("https://") else None
    server_name = cluster.get("tls-server-name")
    return ApiCredentials(server=server, ssl_context=tls, tokens=tokens,
                          namespace=str(context.get("namespace") or "default"),
                          server_hostname=str(server_name) if server_name else None)


def in_cluster(environ: Mapping[str, str], directory: Path = SERVICE_ACCOUNT_DIR) -> ApiCredentials:
    """Credentials of the pod's ServiceAccount (token, CA and namespace under ``directory``)."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST", ""), environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise CredentialsError("not running in a cluster (KUBERNETES_SERVICE_HOST is unset)")
    if ":" in host:
        host = f"[{host}]"
    try:
        context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
        namespace = (directory / "namespace").read_text().strip() or "default"
    except (OSError, ssl.SSLError) as error:
        raise CredentialsError(f"cannot read the ServiceAccount files in {directory}: {error}") from None
    return ApiCredentials(server=f"https://{host}:{port}", ssl_context=context,
                          tokens=TokenSource(path=directory / "token"), namespace=namespace)


def load_credentials(kubeconfig: Path | None, context_name: str | None = None,
                     environ: Mapping[str, str] | None = None) -> ApiCredentials:
    """``--kubeconfig``, else ``$KUBECONFIG`` (its first file), else in-cluster, else ``~/.kube/config``."""
    env = os.environ if environ is None else environ
    if kubeconfig is not None:
        return from_kubeconfig(kubeconfig, context_name)
    listed = [Path(p) for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    existing = [p for p in listed if p.is_file()]
    if existing:
        return from_kubeconfig(existing[0], context_name)
    if env.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster(env)
    default = Path(env.get("HOME", str(Path.home()))) / ".kube" / "config"
    if default.is_file():
        return from_kubeconfig(default, context_name)
    raise CredentialsError("no kubeconfig found: pass --kubeconfig, set KUBECONFIG, or run in a cluster")
