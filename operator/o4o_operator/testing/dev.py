"""``make dev``: the whole product on this machine, until Ctrl-C.

Owns: starting the local control plane (kubeconfig at ``./.kubeconfig``), the local world (by default the real
one: booted Debian servers, Pebble, DNS fed from the local cloud; ``--hosts sandbox`` for the shim world), the
operator and the dashboard; applying a sample DeploymentInstance (``--source`` deploys another repository: a
git URL or a local path); showing stage progress (``k/N`` and the current step) until it is Ready; printing
what to try (for real hosts, the ``curl`` that reaches the instance over HTTPS and the Pebble root it needs);
and stopping everything cleanly on Ctrl-C or SIGTERM. Must not be imported by shipped code.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from o4o_operator.pipeline.stages import STAGE_COUNT
from o4o_operator.testing.controlplane import ControlPlane
from o4o_operator.testing.fixture_o4o import KNOWN_APP
from o4o_operator.testing.processes import free_port, start_process, stop_process
from o4o_operator.testing.world import CRD, FLEET_CRD, LocalWorld

REPO = Path(__file__).resolve().parents[3]
NAMESPACE = "o4o-dev"
NAME = "shop"
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


def _revision_of(source: str | None) -> str:
    """The branch to deploy: a local path's checked-out branch, else ``main``."""
    if source and Path(source).is_dir():
        branch = subprocess.run(["git", "-C", source, "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
        if branch and branch != "HEAD":
            return branch
    return "main"


def progress_line(obj: dict[str, Any]) -> str:
    """``[k/N] <current step>``: the stage progress and the newest log line (or the Ready condition)."""
    status = obj.get("status", {})
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    ready = conditions.get("Ready", {})
    tail = status.get("logTail") or []
    step = re.sub(r"^\d\d:\d\d:\d\d ", "", tail[-1]) if tail else ready.get("message", "waiting for the operator")
    return f"[{status.get('stageProgress', f'0/{STAGE_COUNT}')}] {status.get('phase', 'Pending')}: {step}"[:200]


def _follow(world: LocalWorld, stop: threading.Event) -> dict[str, Any] | None:
    """Print progress whenever it changes, until Ready (returns the object) or Ctrl-C (None)."""
    shown = ""
    while not stop.is_set():
        result = world.control_plane.kubectl("get", "di", NAME, "-n", NAMESPACE, "-o", "json", check=False)
        if result.returncode == 0:
            obj: dict[str, Any] = json.loads(result.stdout)
            line = progress_line(obj)
            if line != shown:
                print(f"  {time.strftime('%H:%M:%S')} {line}", flush=True)
                shown = line
            ready: dict[str, Any] = next(
                (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})
            if ready.get("status") == "True":
                return obj
        stop.wait(1.0)
    return None


def _make_world(plane: ControlPlane, hosts: str, source: str | None, dev_dir: Path) -> LocalWorld:
    if hosts == "sandbox":
        return LocalWorld(plane)
    from o4o_operator.testing.real_world import RealWorld
    return RealWorld(plane, source=source, max_hosts=2)


def _manifest(world: LocalWorld, hosts: str, source: str | None) -> dict[str, Any]:
    if hosts == "sandbox":
        return world.manifest(NAME, NAMESPACE, apps=("forum-core",), description="Sample instance from make dev")
    # Booted hosts: the fixture's one installable app; O4O itself installs none at HEAD ("No manifest found").
    apps = () if source else (KNOWN_APP,)
    manifest = world.manifest(NAME, NAMESPACE, apps=apps, description="Sample instance from make dev")
    if source:
        manifest["spec"]["source"]["revision"] = _revision_of(source)
    return manifest


def _served_hint(world: LocalWorld, obj: dict[str, Any], dev_dir: Path) -> str:
    from o4o_operator.testing.real_world import BACKUP_SECRET, RealWorld
    if not isinstance(world, RealWorld):
        return "  Served by:     a sandbox host (shims: nothing is really installed; make dev HOSTS=booted is real)"
    root = dev_dir / "pebble-root.pem"
    shutil.copyfile(world.pebble_root_path, root)
    address, domain = obj["status"]["server"]["ipAddress"], obj["spec"]["domain"]
    backups = {"spec": {"database": {"backup": {"target": world.backup_target(NAMESPACE)}}}}
    return (f"  Pebble root:   {root}\n"
            f"  Try it:        curl --resolve {domain}:443:{address} --cacert {root} https://{domain}/\n"
            f"                 curl --resolve {domain}:443:{address} --cacert {root} https://{domain}/api/health\n"
            f"  Log in:        the Secret ssh-key in {NAMESPACE} holds the key for admin@{address}\n"
            f"  Back it up:    kubectl patch di {NAME} -n {NAMESPACE} --type=merge -p "
            f"'{json.dumps(backups, separators=(',', ':'))}'  (this world's S3 server; Secret {BACKUP_SECRET})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the operator locally against a local cloud until Ctrl-C.")
    parser.add_argument("--hosts", choices=("booted", "sandbox"), default=os.environ.get("HOSTS") or "booted",
                        help="booted: real Debian servers (default); sandbox: the fast shim world")
    parser.add_argument("--source", default=os.environ.get("SOURCE") or None,
                        help="a git URL or local path to deploy instead of the fixture repository")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    dev_dir = REPO / ".dev"
    dev_dir.mkdir(exist_ok=True)
    kubeconfig = REPO / ".kubeconfig"
    print("Starting the local control plane (etcd + kube-apiserver)...", flush=True)
    with ControlPlane(kubeconfig_path=kubeconfig) as plane:
        plane.install_crds([CRD, FLEET_CRD])
        what = "sandbox hosts" if args.hosts == "sandbox" else "booted Debian hosts, Pebble, DNS, mirrors"
        print(f"Starting the local Lightsail endpoint, {what} and the operator...", flush=True)
        with _make_world(plane, args.hosts, args.source, dev_dir) as world:
            plane.create_namespace(NAMESPACE)
            world.create_secrets(NAMESPACE, env={"NODE_ENV": "production"})  # JWT_SECRET: generated
            world.apply(_manifest(world, args.hosts, args.source))
            port = DASHBOARD_PORT if _port_is_free(DASHBOARD_PORT) else free_port()
            dashboard = _start_dashboard(kubeconfig, dev_dir / "dashboard.log", port)
            try:
                url = f"http://127.0.0.1:{port}/"
                _wait_http(url + "healthz", stop)
                kubectl = plane.assets / "kubectl"
                print(f"A sample DeploymentInstance '{NAME}' was applied in '{NAMESPACE}'; dashboard at {url}.\n"
                      "Progress (stage k/N and the current step):", flush=True)
                started = time.monotonic()
                ready = _follow(world, stop)
                if ready is not None:
                    print(f"""
'{NAME}' is Ready after {time.monotonic() - started:.0f} s.

  Dashboard:     {url}
  Kubeconfig:    {kubeconfig}
  Watch it:      {kubectl} --kubeconfig {kubeconfig} get di -A -w
  Explain it:    {kubectl} --kubeconfig {kubeconfig} explain di.spec
  Operator log:  {world.directory / 'operator.log'}
  Local cloud:   {world.lightsail.endpoint_url} (Lightsail JSON API)
{_served_hint(world, ready, dev_dir)}

Press Ctrl-C to stop everything.""", flush=True)
                    stop.wait()
                print("\nStopping...", flush=True)
            finally:
                stop_process(dashboard)
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
