"""``make dev``: the whole product on this machine, until Ctrl-C.

Owns: starting the local control plane (kubeconfig at ``./.kubeconfig``), the
local Lightsail endpoint, sandbox hosts, the operator and the dashboard;
applying a sample DeploymentInstance; printing what to try; and stopping
everything cleanly on Ctrl-C or SIGTERM. Must not be imported by shipped code.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

from o4o_operator.testing.controlplane import ControlPlane
from o4o_operator.testing.processes import free_port, start_process, stop_process
from o4o_operator.testing.world import CRD, LocalWorld

REPO = Path(__file__).resolve().parents[3]
NAMESPACE = "o4o-dev"
DASHBOARD_PORT = 8000


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start_dashboard(kubeconfig: Path, log: Path, port: int) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "o4o_dashboard", "--kubeconfig", str(kubeconfig), "--all-namespaces",
            "--host", "127.0.0.1", "--port", str(port)]
    return start_process(args, log, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_http(url: str, stop: threading.Event, attempts: int = 300) -> bool:
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own local dashboard
                return True
        except (urllib.error.URLError, OSError):
            if stop.wait(0.1):
                return False
    return False


def main() -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    dev_dir = REPO / ".dev"
    dev_dir.mkdir(exist_ok=True)
    kubeconfig = REPO / ".kubeconfig"
    print("Starting the local control plane (etcd + kube-apiserver)...", flush=True)
    with ControlPlane(kubeconfig_path=kubeconfig) as plane:
        plane.install_crds([CRD])
        print("Starting the local Lightsail endpoint, sandbox hosts and the operator...", flush=True)
        with LocalWorld(plane) as world:
            plane.create_namespace(NAMESPACE)
            world.create_secrets(NAMESPACE)
            world.apply(world.manifest("shop", NAMESPACE, apps=("commerce", "forum"),
                                       description="Sample instance from make dev"))
            port = DASHBOARD_PORT if _port_is_free(DASHBOARD_PORT) else free_port()
            dashboard = _start_dashboard(kubeconfig, dev_dir / "dashboard.log", port)
            try:
                url = f"http://127.0.0.1:{port}/"
                _wait_http(url + "healthz", stop)
                kubectl = plane.assets / "kubectl"
                print(f"""
o4o-operator is running locally. A sample DeploymentInstance 'shop' was applied in '{NAMESPACE}'.

  Dashboard:     {url}
  Kubeconfig:    {kubeconfig}
  Watch it:      {kubectl} --kubeconfig {kubeconfig} get di -A -w
  Explain it:    {kubectl} --kubeconfig {kubeconfig} explain di.spec
  Operator log:  {world.directory / 'operator.log'}
  Local cloud:   {world.lightsail.endpoint_url} (Lightsail JSON API)

Press Ctrl-C to stop everything.""", flush=True)
                stop.wait()
                print("\nStopping...", flush=True)
            finally:
                stop_process(dashboard)
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
