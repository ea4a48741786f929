"""The hosts' only way out: tinyproxy on the bridge address, letting through the package registries alone.

Owns: one ``tinyproxy -d`` child (SIGKILLed if this process dies) with its own configuration, filter and
log in a temporary directory; a default-deny filter that admits exactly the listed host names (CONNECT only
to port 443); clients only from the hosts' subnet. Names are resolved by the machine, outside the hosts.
Must not be reachable from anywhere but the bridge, and must not admit a name it was not given.
"""

from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from o4o_operator.testing.hosts import network
from o4o_operator.testing.hosts.system import HostWorldError, spawn_guarded

NPM_REGISTRY_HOST = "registry.npmjs.org"
PROXY_PORT = 3128
_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
_START_TIMEOUT = 15.0


def _filter_rules(allowed_hosts: Sequence[str]) -> str:
    rules = []
    for host in allowed_hosts:
        name = host.lower().rstrip(".")
        if not _HOST_NAME.match(name):
            raise ValueError(f"allowed_hosts: {host!r} is not a host name")
        rules.append("^" + name.replace(".", r"\.") + "$")
    return "\n".join(rules) + "\n"


class EgressProxy:
    """``with EgressProxy(["deb.debian.org", "registry.npmjs.org"]) as proxy:`` serves ``proxy.url``."""

    def __init__(self, allowed_hosts: Sequence[str], *, listen: str = str(network.WORLD_ADDRESS),
                 port: int = PROXY_PORT, clients: str = str(network.SUBNET), directory: Path | None = None) -> None:
        if not allowed_hosts:
            raise ValueError("allowed_hosts: give at least one registry host name")
        self.allowed_hosts = tuple(allowed_hosts)
        self.listen, self.port, self.clients = listen, port, clients
        self._parent = directory
        self._directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.listen}:{self.port}"

    @property
    def log_path(self) -> Path:
        if self._directory is None:
            raise HostWorldError("the egress proxy has not been started")
        return self._directory / "tinyproxy.log"

    def _configuration(self, directory: Path) -> str:
        return "\n".join([
            "User nobody", "Group nogroup", f"Port {self.port}", f"Listen {self.listen}",
            "Timeout 600", "LogLevel Connect", "MaxClients 100", f"Allow {self.clients}",
            f'Filter "{directory / "filter"}"', "FilterType ere", "FilterURLs Off", "FilterDefaultDeny Yes",
            "ConnectPort 443", "DisableViaHeader Yes", ""])

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.listen, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def start(self) -> EgressProxy:
        if self._parent is not None:
            self._parent.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="o4o-egress-proxy-", dir=self._parent))
        directory.chmod(0o755)  # tinyproxy reads its filter after dropping to nobody
        (directory / "filter").write_text(_filter_rules(self.allowed_hosts))
        (directory / "tinyproxy.conf").write_text(self._configuration(directory))
        self._directory = directory
        self._process = spawn_guarded(["tinyproxy", "-d", "-c", str(directory / "tinyproxy.conf")], self.log_path)
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = self.log_path.read_text(errors="replace")[-2000:]
                self.stop()
                raise HostWorldError(f"tinyproxy did not start listening on {self.url}:\n{log}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._directory is not None:
            for entry in self._directory.iterdir():
                entry.unlink()
            self._directory.rmdir()
            self._directory = None

    def __enter__(self) -> EgressProxy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
