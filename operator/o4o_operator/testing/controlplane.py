"""A real local Kubernetes control plane: etcd plus kube-apiserver, envtest-style.

Owns: starting both processes with a throwaway PKI, RBAC authorization and
service-account token signing; waiting for ``/readyz``; writing an admin
kubeconfig; installing CRDs; minting ServiceAccount tokens; running kubectl;
and stopping everything, even when a test fails. There is no
controller-manager: namespaces never finish deleting and nothing is garbage
collected, so callers isolate themselves by namespace.

Must not: download binaries (see :mod:`o4o_operator.testing.testbin`) or leave
processes or directories behind.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from o4o_operator.testing import testbin
from o4o_operator.testing.pki import PkiFiles, make_pki
from o4o_operator.testing.processes import free_port, log_tail, start_process, stop_process

READY_TIMEOUT_SECONDS = 60.0


class ControlPlaneError(RuntimeError):
    pass


class ControlPlane:
    """etcd + kube-apiserver on loopback. Use as a context manager."""

    def __init__(self, *, kubeconfig_path: Path | None = None, assets: Path | None = None,
                 extra_apiserver_flags: Sequence[str] = ()) -> None:
        self._assets = assets
        self._requested_kubeconfig = kubeconfig_path
        self._extra_flags = list(extra_apiserver_flags)
        self._workdir: Path | None = None
        self._processes: list[Any] = []
        self.pki: PkiFiles | None = None
        self.kubeconfig = Path()
        self.server = ""
        self.startup_seconds = 0.0

    # ---- lifecycle ------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def assets(self) -> Path:
        return self._assets or testbin.ensure_testbin()

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise ControlPlaneError("control plane is not started")
        return self._workdir

    def start(self) -> None:
        started = time.monotonic()
        self._workdir = Path(tempfile.mkdtemp(prefix="o4o-controlplane-"))
        try:
            self.pki = make_pki(self.workdir / "pki")
            etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url)
            self._write_kubeconfig()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        for process in reversed(self._processes):
            stop_process(process)
        self._processes.clear()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def apiserver_pid(self) -> int:
        return int(self._processes[-1].pid)

    def apiserver_rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.apiserver_pid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _start_etcd(self) -> str:
        client_url = f"http://127.0.0.1:{free_port()}"
        peer_url = f"http://127.0.0.1:{free_port()}"
        args = [
            str(self.assets / "etcd"), "--name=o4o", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=o4o={peer_url}", "--unsafe-no-fsync=true", "--log-level=warn",
        ]
        self._processes.append(start_process(args, self.workdir / "etcd.log"))
        return client_url

    def _start_apiserver(self, etcd_url: str) -> None:
        assert self.pki is not None
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        args = [
            str(self.assets / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={self.pki.serving_cert}", f"--tls-private-key-file={self.pki.serving_key}",
            f"--client-ca-file={self.pki.ca_cert}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={self.pki.service_account_pub}",
            f"--service-account-signing-key-file={self.pki.service_account_key}",
            "--disable-admission-plugins=ServiceAccount",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            *self._extra_flags,
        ]
        self._processes.append(start_process(args, self.workdir / "kube-apiserver.log"))

    def _write_kubeconfig(self) -> None:
        assert self.pki is not None
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "o4o-local",
            "clusters": [{"name": "o4o-local", "cluster": {
                "server": self.server, "certificate-authority": str(self.pki.ca_cert)}}],
            "users": [{"name": "o4o-admin", "user": {
                "client-certificate": str(self.pki.admin_cert), "client-key": str(self.pki.admin_key)}}],
            "contexts": [{"name": "o4o-local", "context": {"cluster": "o4o-local", "user": "o4o-admin"}}],
        }
        self.kubeconfig = self._requested_kubeconfig or self.workdir / "kubeconfig"
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
        self.kubeconfig.chmod(0o600)

    def write_inlined_kubeconfig(self, path: Path, *, mode: int = 0o600) -> Path:
        """The admin kubeconfig with the CA, certificate and key inlined as base64 ``*-data`` fields, as most
        kubeconfigs carry them (kind's, EKS's, a copied admin.conf): one file, no paths into ``workdir``."""
        assert self.pki is not None
        config = json.loads(self.kubeconfig.read_text())
        config["clusters"][0]["cluster"] = {"server": self.server,
                                             "certificate-authority-data": _base64(self.pki.ca_cert)}
        config["users"][0]["user"] = {"client-certificate-data": _base64(self.pki.admin_cert),
                                      "client-key-data": _base64(self.pki.admin_key)}
        path.write_text(json.dumps(config, indent=2))
        path.chmod(mode)
        return path

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the CA and presenting the admin certificate."""
        assert self.pki is not None
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return context

    def get(self, path: str) -> tuple[int, str]:
        """GET ``path`` as admin; returns (status, body)."""
        request = urllib.request.Request(self.server + path)  # noqa: S310 - https to our own apiserver
        try:
            with urllib.request.urlopen(request, context=self.ssl_context(), timeout=5) as response:  # noqa: S310
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode(errors="replace")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        last = "no answer"
        while time.monotonic() < deadline:
            for process, name in zip(self._processes, ("etcd", "kube-apiserver"), strict=False):
                if process.poll() is not None:
                    raise ControlPlaneError(f"{name} exited with {process.returncode}:\n"
                                            f"{log_tail(self.workdir / f'{name}.log')}")
            try:
                status, body = self.get("/readyz")
                if status == 200:
                    return
                last = f"HTTP {status}: {body[-300:]}"
            except (OSError, ssl.SSLError) as error:
                last = str(error)
            time.sleep(0.2)  # polling a remote condition, bounded by the deadline
        raise ControlPlaneError(f"kube-apiserver not ready after {READY_TIMEOUT_SECONDS:.0f}s ({last}):\n"
                                f"{log_tail(self.workdir / 'kube-apiserver.log')}")

    # ---- helpers --------------------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane as admin."""
        command = [str(self.assets / "kubectl"), f"--kubeconfig={self.kubeconfig}",
                   f"--cache-dir={self.workdir / 'kubectl-cache'}", *args]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout,
                                check=False)
        if check and result.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                    f"{result.stderr.strip()}")
        return result

    def install_crds(self, paths: Iterable[Path | str]) -> list[str]:
        """Apply CRDs, then wait until each is Established and served by discovery."""
        crds: list[dict[str, Any]] = []
        for path in paths:
            applied = self.kubectl("apply", "--server-side", "-f", str(path), "-o", "json")
            document = json.loads(applied.stdout)
            crds.extend(document.get("items", [document]))
        for crd in crds:
            name = crd["metadata"]["name"]
            self.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
            group = crd["spec"]["group"]
            for version in (v["name"] for v in crd["spec"]["versions"] if v.get("served")):
                self._wait_served(f"/apis/{group}/{version}", crd["spec"]["names"]["plural"])
                self._wait_served(f"/openapi/v3/apis/{group}/{version}", crd["spec"]["names"]["kind"])
                self._wait_served("/openapi/v3", f"apis/{group}/{version}")
            self._wait_kubectl_discovery(f"{crd['spec']['names']['plural']}.{group}")
        return [crd["metadata"]["name"] for crd in crds]

    def _wait_served(self, path: str, needle: str) -> None:
        """Wait until ``path`` answers 200 mentioning ``needle`` (discovery and OpenAPI lag behind)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, body = self.get(path)
            if status == 200 and f'"{needle}' in body:
                return
            time.sleep(0.2)  # both are refreshed asynchronously; bounded by the deadline
        raise ControlPlaneError(f"{path} does not serve {needle} after 60s")

    def _wait_kubectl_discovery(self, resource: str) -> None:
        """``kubectl api-resources`` refreshes kubectl's discovery cache; wait until it lists ``resource``."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if resource in self.kubectl("api-resources", "-o", "name", check=False).stdout.split():
                return
            time.sleep(0.2)  # aggregated discovery lags behind the group endpoint; bounded
        raise ControlPlaneError(f"kubectl discovery does not list {resource} after 60s")

    def create_namespace(self, name: str) -> None:
        self.kubectl("create", "namespace", name)

    def token_for(self, service_account: str, namespace: str, *, duration: str = "1h") -> str:
        """A bearer token for the ServiceAccount (created if missing), via the TokenRequest API."""
        existing = self.kubectl("get", "serviceaccount", service_account, "-n", namespace, check=False)
        if existing.returncode != 0:
            self.kubectl("create", "serviceaccount", service_account, "-n", namespace)
        return self.kubectl("create", "token", service_account, "-n", namespace,
                            f"--duration={duration}").stdout.strip()

    def kubeconfig_for_token(self, token: str, path: Path) -> Path:
        """Write a kubeconfig that authenticates with ``token`` instead of the admin certificate."""
        assert self.pki is not None
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "token",
            "clusters": [{"name": "o4o-local", "cluster": {
                "server": self.server, "certificate-authority": str(self.pki.ca_cert)}}],
            "users": [{"name": "token", "user": {"token": token}}],
            "contexts": [{"name": "token", "context": {"cluster": "o4o-local", "user": "token"}}],
        }
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    def environ(self) -> dict[str, str]:
        """Environment for child processes that should talk to this control plane."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


def _base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()
