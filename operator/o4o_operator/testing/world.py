"""A whole local world: control plane, local Lightsail, sandbox hosts as servers, and the operator.

Owns: :class:`SandboxFleet` (one real sshd per server, on its own loopback
address at port 22, handed out by the local cloud as the server's static IP
and host key) and :class:`LocalWorld` (wiring them together with a fixture
repository, Secrets and manifests). Shared by end-to-end tests, ``make dev``
and benchmarks. Binding 127.x.y.z:22 needs root, as in CI.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncssh

from o4o_operator.testing.controlplane import ControlPlane
from o4o_operator.testing.file_lock import exclusive
from o4o_operator.testing.fixture_repo import PLAIN, make_fixture_repo
from o4o_operator.testing.lightsail import LocalLightsail
from o4o_operator.testing.lightsail_catalog import host_key_entry
from o4o_operator.testing.operator_process import OperatorProcess
from o4o_operator.testing.sandbox import SandboxHost

ADDRESS_LOCK = Path("/run/lock/o4o-sandbox-addresses.lock")
"""Held from choosing a sandbox host's address until its sshd listens there: every world on this machine (each
of ``make test``'s workers has its own) picks from the same addresses, and a probe alone let two pick one."""

ZONE = "example.com"
REGION = "us-east-1"
CRD = Path(__file__).resolve().parents[3] / "crds" / "deploymentinstances.deploy.o4o.io.yaml"
FLEET_CRD = CRD.with_name("deploymentfleets.deploy.o4o.io.yaml")


def free_address(subnet: int, after: int) -> tuple[int, str]:
    """The next 127.<subnet>.x.y after number ``after`` whose port 22 nobody holds (other worlds may run at once),
    with its number. Hold :data:`ADDRESS_LOCK` until the address is bound."""
    number = after
    while True:
        number += 1
        address = f"127.{subnet}.{number // 250}.{number % 250 + 1}"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((address, 22))
            except OSError:
                continue
        return number, address


class SandboxFleet:
    """Sandbox hosts created on demand, one per server name, all trusting one client key."""

    def __init__(self, directory: Path, *, subnet: int = 77, command_latency_seconds: float = 0.0) -> None:
        self._directory = directory
        self._subnet = subnet
        self._command_latency_seconds = command_latency_seconds
        self._lock = threading.Lock()
        self.hosts: dict[str, SandboxHost] = {}
        self._next = 0
        key = asyncssh.generate_private_key("ssh-ed25519")
        self.private_key_pem = key.export_private_key("openssh").decode()
        self.public_key_openssh = key.export_public_key("openssh").decode().strip()

    def host_for(self, server_name: str) -> SandboxHost:
        server_name = server_name.removesuffix("-ip")
        with self._lock:
            host = self.hosts.get(server_name)
            if host is None:
                with exclusive(ADDRESS_LOCK):
                    self._next, address = free_address(self._subnet, self._next)
                    host = SandboxHost(address, 22, directory=self._directory,
                                       command_latency_seconds=self._command_latency_seconds)
                    host.authorize(self.public_key_openssh)
                    host.start()
                self.hosts[server_name] = host
            return host

    def ip_allocator(self, name: str) -> str:
        return self.host_for(name).address

    def host_keys(self, instance_name: str) -> list[dict[str, Any]]:
        host = self.host_for(instance_name)
        algorithm, blob = host.host_public_key_openssh.split()[:2]
        return [host_key_entry(algorithm, base64.b64decode(blob))]

    def stop(self) -> None:
        for host in self.hosts.values():
            host.close()
        self.hosts.clear()


class LocalWorld:
    """Everything a DeploymentInstance needs to reach Ready without leaving this machine."""

    fixture_flavour = PLAIN
    """The fixture repository's flavour: ``plain`` for the shim sandbox (``RealWorld``: ``o4o``)."""

    def __init__(self, control_plane: ControlPlane | None = None, *, operator_env: Mapping[str, str] | None = None,
                 pending_polls: int = 1, namespaces: tuple[str, ...] = ()) -> None:
        """``namespaces`` (globs allowed) limits what the operator watches; empty means all."""
        self.namespaces = namespaces
        self._own_plane = control_plane is None
        self.control_plane = control_plane or ControlPlane()
        self.directory = Path(tempfile.mkdtemp(prefix="o4o-world-"))
        self.pending_polls = pending_polls
        self._make_cloud()
        self.repository, self.commit = make_fixture_repo(self.directory / "fixture-repo", self.fixture_flavour)
        self._operator_env = dict(operator_env or {})
        self.operator: OperatorProcess | None = None

    def _make_cloud(self) -> None:
        """The servers behind the local cloud: sandbox hosts here (``RealWorld`` boots Debian hosts)."""
        self.fleet = SandboxFleet(self.directory)
        self.lightsail = LocalLightsail(pending_polls=self.pending_polls, ip_allocator=self.fleet.ip_allocator,
                                        host_keys=self.fleet.host_keys)

    @property
    def ssh_private_key_pem(self) -> str:
        """The private key of the ``ssh-key`` Secret (what the servers let in)."""
        return self.fleet.private_key_pem

    def __enter__(self) -> LocalWorld:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self, *, with_operator: bool = True) -> None:
        if self._own_plane:
            self.control_plane.start()
            self.control_plane.install_crds([CRD, FLEET_CRD])
        self.lightsail.start()
        self.lightsail.add_domain(ZONE)
        if with_operator:
            self.start_operator()

    def operator_environment(self) -> dict[str, str]:
        return {
            "O4O_LIGHTSAIL_ENDPOINT_URL": self.lightsail.endpoint_url,
            "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
            "O4O_CLOUD_POLL_INTERVAL": "0.2", "O4O_SSH_CONNECT_TIMEOUT": "60",
            # The world's instances use the operator's (local) identity, in every namespace, for its one zone.
            "O4O_AMBIENT_GRANTS": f"*={ZONE}",
            **self._operator_env,
        }

    def start_operator(self, kubeconfig: Path | None = None, *,
                       env: Mapping[str, str] | None = None) -> OperatorProcess:
        """(Re)start the operator as admin, or with ``kubeconfig`` (e.g. a ServiceAccount token's)."""
        if self.operator is not None:
            self.operator.stop()
        self.operator = OperatorProcess(kubeconfig or self.control_plane.kubeconfig, self.directory / "operator.log",
                                        env={**self.operator_environment(), **(env or {})},
                                        namespaces=self.namespaces)
        self.operator.start()
        return self.operator

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        self.lightsail.stop()
        self.fleet.stop()
        if self._own_plane:
            self.control_plane.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    # ---- resources -------------------------------------------------------------------

    def create_secrets(self, namespace: str, *, env: Mapping[str, str] | None = None) -> None:
        """The SSH key and env Secrets the manifests below reference."""
        secrets = [
            {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/ssh-auth",
             "metadata": {"name": "ssh-key", "namespace": namespace},
             "stringData": {"ssh-privatekey": self.ssh_private_key_pem}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-env", "namespace": namespace},
             "stringData": dict(env or {"DATABASE_URL": "postgres://o4o@localhost/o4o", "JWT_SECRET": "dev"})},
        ]
        self.control_plane.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                          "items": secrets}))

    def manifest(self, name: str, namespace: str, *, apps: tuple[str, ...] = ("forum-core",),
                 **spec_changes: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "domain": f"{name}.{ZONE}",
            "description": f"Local instance {name}",
            "apps": list(apps),
            "provider": {"lightsail": {"region": REGION, "bundleId": "small_3_0", "blueprintId": "ubuntu_22_04"}},
            "ssh": {"user": self.fleet_user, "privateKeySecretRef": {"name": "ssh-key"}},
            "source": {"repository": self.repository.as_uri(), "revision": "main"},
            "tls": {"email": "ops@example.com"},
            "dns": {"provider": "lightsail", "zone": ZONE},
            "env": [{"name": "app-env"}],
        }
        spec.update(spec_changes)
        return {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance",
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}

    @property
    def fleet_user(self) -> str:
        import os
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name

    def apply(self, manifest: Mapping[str, Any]) -> None:
        self.control_plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def get(self, name: str, namespace: str) -> dict[str, Any]:
        result = self.control_plane.kubectl("get", "di", name, "-n", namespace, "-o", "json")
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def wait_for(self, name: str, namespace: str, condition: str, timeout: float = 180) -> dict[str, Any]:
        """``kubectl wait --for=<condition>`` on the DI (a condition or a jsonpath), then the object. A failure
        raises with the condition, the DI's status and the tail of the operator's log."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(1, int(deadline - time.monotonic()))
            result = self.control_plane.kubectl("wait", f"--for={condition}", f"di/{name}", "-n", namespace,
                                                f"--timeout={remaining}s", check=False, timeout=remaining + 30)
            # kubectl wait's first lookup is served from the watch cache and may miss a just-created object
            if result.returncode == 0 or "NotFound" not in result.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if result.returncode != 0:
            operator_log = self.operator.output()[-8000:] if self.operator else ""
            current = self.control_plane.kubectl("get", "di", name, "-n", namespace, "-o", "json",
                                                 check=False).stdout
            raise AssertionError(f"{condition} not reached: {result.stderr}\nstatus: {current[-5000:]}\n"
                                 f"operator log:\n{operator_log}")
        return self.get(name, namespace)
