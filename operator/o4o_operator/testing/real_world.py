"""The real local world: booted Debian servers, a real ACME CA and DNS fed from the cloud, for ``kubectl apply``
to end in HTTPS 200.

Owns: :class:`RealWorld`, a :class:`~o4o_operator.testing.world.LocalWorld` whose local Lightsail hands out
booted hosts (:class:`~o4o_operator.testing.booted_fleet.BootedFleet`), and what those hosts need on the
bridge address ``198.51.100.1``: the egress proxy (``HostWorld``), challtestsrv as their DNS on :53 and
Pebble's ACME directory (``AcmeWorld``), a :class:`~o4o_operator.testing.dns_feed.DnsFeed` that makes the
local Lightsail's DNS records (the DNS stage's own output) what Pebble and the hosts resolve, the Node.js
dist mirror the operator is pointed at (``O4O_NODE_MIRROR``), the real S3 server (versitygw) whose bucket
:data:`BACKUP_BUCKET` is the ``s3`` backup target of :meth:`RealWorld.backup_target` (on the bridge address, which
the hosts' image leaves out of the proxy, so they reach the operator's presigned URLs directly), and the fixture
repository (its ``o4o`` flavour: real TypeScript builds, PostgreSQL, migrations and the admin apps API) served over
smart HTTPS (its CA is trusted by each host, as a corporate image trusts its own CA). Manifests are shaped like
``manifests/samples/lightsail.yaml`` with ``blueprintId: debian_12``, ``ssh.user: admin`` and ``spec.tls``
naming Pebble (directory, endpoint CA, root).

Everything it started stops on :meth:`RealWorld.stop` (and on ``__exit__``), in reverse order, even when a
part failed to start. Only the cloud's API and the internet's DNS are simulated. Needs root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import asyncssh

from o4o_operator.testing.acme import AcmeWorld, make_endpoint_certificate
from o4o_operator.testing.booted_fleet import BootedFleet
from o4o_operator.testing.controlplane import ControlPlane
from o4o_operator.testing.dns_feed import DnsFeed
from o4o_operator.testing.fixture_o4o import BUILD_API, KNOWN_APP
from o4o_operator.testing.fixture_repo import O4O
from o4o_operator.testing.git_server import GitHttpServer, publish_bare
from o4o_operator.testing.hosts import BootedHost, HostWorld
from o4o_operator.testing.lightsail import LocalLightsail
from o4o_operator.testing.mirrors import NodeMirror
from o4o_operator.testing.s3server import S3Server
from o4o_operator.testing.world import CRD, REGION, ZONE, LocalWorld

REPOSITORY_NAME = "o4o-platform.git"
BLUEPRINT = "debian_12"
LOGIN_USER = "admin"
ACME_PORT = 14000  # Pebble's usual port; fixed, since the bridge (and so a free port on it) exists only once started
DEFAULT_DRIFT_SECONDS = 30.0
BACKUP_BUCKET = "o4o-real-backups"
BACKUP_PREFIX = "o4o"
BACKUP_SECRET = "backup-s3"  # noqa: S105 - the Secret's name


O4O_BUILD_API = {
    "dataSource": {"buildCommand": ["../../node_modules/.bin/tsup", "src/database/connection.ts",
                                    "src/scripts/create-admin-user.ts", "--out-dir", "dist/o4o-bootstrap"],
                   "module": "dist/o4o-bootstrap/database/connection.js"},
    "adminCommand": ["node", "dist/o4o-bootstrap/scripts/create-admin-user.js", "--email=${O4O_ADMIN_EMAIL}",
                     "--password=${O4O_ADMIN_PASSWORD}"],
}
"""``spec.build.api`` for the real O4O (``make dev SOURCE=...``), as the README's manifest: ``tsx`` emits no decorator
metadata, so upstream's create-admin script is bundled with its own tsup beside the data source (at the bootstrap),
and run from there. O4O's ``.npmrc`` says ``node-linker=hoisted``: tsup is in the workspace root's
``node_modules/.bin``, not the API directory's; and tsup keeps the two entries' common base, so the bundles land in
``database/`` and ``scripts/`` under the out dir."""

class RealWorld(LocalWorld):
    """``with RealWorld() as world:`` then ``world.apply(world.manifest("shop", ns))``; see the module docstring.

    ``source``: a git URL or local path to deploy instead of the fixture (served as is when it is a URL).
    ``max_hosts``: booted servers at once (CI runs at most two). ``drift_seconds``: the operator's drift period.
    """

    fixture_flavour = O4O
    """Booted hosts build, migrate and serve for real: the fixture is O4O's contract (TypeScript, PostgreSQL)."""

    def __init__(self, control_plane: ControlPlane | None = None, *, operator_env: Mapping[str, str] | None = None,
                 namespaces: tuple[str, ...] = (), source: str | None = None, max_hosts: int = 2,
                 drift_seconds: float = DEFAULT_DRIFT_SECONDS, host_world: HostWorld | None = None) -> None:
        self._own_host_world = host_world is None
        self.host_world = host_world or HostWorld()
        self.max_hosts = max_hosts
        self._git_tls_directory = Path(tempfile.mkdtemp(prefix="o4o-git-tls-"))
        self.git_tls = make_endpoint_certificate(self._git_tls_directory, [self.host_world.address])
        key = asyncssh.generate_private_key("ssh-ed25519")
        self._private_key_pem = key.export_private_key("openssh").decode()
        self.public_key_openssh = key.export_public_key("openssh").decode().strip()
        self.source = source
        self.drift_seconds = drift_seconds
        super().__init__(control_plane, operator_env=operator_env, pending_polls=1, namespaces=namespaces)
        self.acme = AcmeWorld(listen_host=self.host_world.address, dns_port=53, acme_port=ACME_PORT,
                              workdir=self.directory / "acme")
        self.dns_feed = DnsFeed(self.acme.dns)
        self.git_root = self.directory / "git"
        self.git_server = GitHttpServer(self.git_root, listen_host=self.host_world.address,
                                        certificate=self.git_tls.certificate, private_key=self.git_tls.private_key)
        self.mirror: NodeMirror | None = None
        self.s3 = S3Server(self.directory / "s3", listen_host=self.host_world.address)
        self.pebble_root_path = self.directory / "pebble-root.pem"
        self._stack = contextlib.ExitStack()

    def _make_cloud(self) -> None:
        self.booted = BootedFleet(self.host_world, max_hosts=self.max_hosts,
                                  trusted_roots={"o4o-test-git-host": self.git_tls.ca_bundle.read_text()})
        self.lightsail = LocalLightsail(pending_polls=self.pending_polls, ip_allocator=self.booted.ip_allocator,
                                        host_keys=self.booted.host_keys, fleet=self.booted)

    @property
    def ssh_private_key_pem(self) -> str:
        return self._private_key_pem

    @property
    def fleet_user(self) -> str:
        return LOGIN_USER

    # ---- lifecycle --------------------------------------------------------------------------------------------

    def _started(self, start: Callable[[], Any], stop: Callable[[], Any]) -> None:
        start()
        self._stack.callback(stop)

    def start(self, *, with_operator: bool = True) -> None:
        try:
            if self._own_plane:
                self._started(self.control_plane.start, self.control_plane.stop)
                self.control_plane.install_crds([CRD])
            if self._own_host_world:  # the bridge first: the rest binds to its address
                self._started(self.host_world.start, self.host_world.stop)
            self._started(self.acme.start, self.acme.stop)
            self.acme.pebble.write_root(self.pebble_root_path)
            self._started(self.lightsail.start, self.lightsail.stop)
            self._stack.callback(self.booted.stop)
            self.lightsail.add_domain(ZONE)
            self.dns_feed.follow_lightsail(self.lightsail.state)
            self._stack.callback(self.dns_feed.stop)
            self.mirror = NodeMirror(listen_host=self.host_world.address)
            self._started(self.mirror.start, self.mirror.stop)
            self._started(self.s3.start, self.s3.stop)
            self.s3.create_bucket(BACKUP_BUCKET)
            self._publish_source()
            self._started(self.git_server.start, self.git_server.stop)
            if with_operator:
                self.start_operator()
        except BaseException:
            self.stop()
            raise

    def _publish_source(self) -> None:
        self.git_root.mkdir(parents=True, exist_ok=True)
        if self.source is None or not _is_url(self.source):
            source = Path(self.source).resolve() if self.source else self.repository
            publish_bare(source, self.git_root, REPOSITORY_NAME)

    def publish(self) -> None:
        """Make the fixture repository's branches and tags what the git server serves (after committing)."""
        bare = self.git_root / REPOSITORY_NAME
        subprocess.run(["git", "-C", str(bare), "fetch", "--quiet", "--force", "--prune", str(self.repository),
                        "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], check=True,
                       env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})

    @property
    def repository_url(self) -> str:
        if self.source is not None and _is_url(self.source):
            return self.source
        return self.git_server.url_for(REPOSITORY_NAME)

    def operator_environment(self) -> dict[str, str]:
        environment = super().operator_environment()
        environment["O4O_DRIFT_INTERVAL_SECONDS"] = f"{self.drift_seconds:g}"
        environment["O4O_CLOUD_POLL_INTERVAL"] = "1"
        environment["O4O_SSH_CONNECT_TIMEOUT"] = "30"
        # A fleet's revision is resolved by the operator itself (git ls-remote): it trusts the git host's CA as
        # the hosts do, through the one git setting it passes on.
        environment["GIT_SSL_CAINFO"] = str(self.git_tls.ca_bundle)
        if self.mirror is not None:
            environment["O4O_NODE_MIRROR"] = self.mirror.url
        return {**environment, **self._operator_env}

    def stop(self) -> None:
        if self.operator is not None:
            with contextlib.suppress(Exception):
                self.operator.stop()
            self.operator = None
        try:
            self._stack.close()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            shutil.rmtree(self._git_tls_directory, ignore_errors=True)

    # ---- what tests and make dev ask ---------------------------------------------------------------------------

    def manifest(self, name: str, namespace: str, *, apps: tuple[str, ...] = (KNOWN_APP,),
                 **spec_changes: Any) -> dict[str, Any]:
        """A DI like the Lightsail sample: debian_12, login admin, Pebble as the ACME server, and the one app the
        fixture's API can install."""
        manifest = super().manifest(name, namespace, apps=apps)
        spec = manifest["spec"]
        spec["provider"] = {"lightsail": {"region": REGION, "bundleId": "small_3_0", "blueprintId": BLUEPRINT}}
        spec["source"] = {"repository": self.repository_url, "revision": "main"}
        spec["tls"] = {"email": "ops@example.com", "server": self.acme.pebble.directory_url,
                       "acmeCABundle": self.acme.pebble.ca_bundle.read_text(),
                       "certificateCABundle": self.pebble_root_path.read_text()}
        spec["deletionPolicy"] = "Delete"
        # A fresh database is born from the entities (neither the fixture's migrations nor O4O's build from empty).
        spec["database"] = {"bootstrap": {"mode": "synchronize"}}
        # The fixture: its own data source bundle, seed and bundled admin script. O4O itself: the defaults, but its
        # create-admin script, which tsx cannot run, bundled with upstream's tsup beside the data source.
        spec["build"] = {"api": dict(BUILD_API) if self.source is None else dict(O4O_BUILD_API)}
        spec.update(spec_changes)
        return manifest

    def backup_target(self, namespace: str) -> dict[str, Any]:
        """``spec.database.backup.target`` naming the world's S3 server, whose credentials the Secret
        :data:`BACKUP_SECRET` in ``namespace`` holds (made here; read by the operator only)."""
        self.control_plane.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": BACKUP_SECRET, "namespace": namespace},
            "stringData": {"accessKeyId": self.s3.access_key_id, "secretAccessKey": self.s3.secret_access_key}}))
        return {"s3": {"endpoint": self.s3.endpoint, "bucket": BACKUP_BUCKET, "prefix": BACKUP_PREFIX,
                       "credentialsSecretRef": {"name": BACKUP_SECRET}}}

    def server_name(self, name: str, namespace: str) -> str:
        """The Lightsail instance a DI made (its status says so once provisioned)."""
        status = self.get(name, namespace).get("status", {})
        return str(status.get("server", {}).get("name", ""))

    def host(self, server_name: str) -> BootedHost:
        return self.booted.hosts[server_name]

    def existing_host(self, name: str) -> BootedHost:
        """A booted server no cloud knows of, letting in the ``ssh-key`` Secret's key (``provider.existing``)."""
        return self.booted.existing_host(name, [self.public_key_openssh])

    def existing_manifest(self, name: str, namespace: str, host: BootedHost, **spec_changes: Any) -> dict[str, Any]:
        """A DI like the existing-host sample, on ``host``, with its DNS record in the local Lightsail zone."""
        return self.manifest(name, namespace, provider={"existing": {"host": host.address, "port": 22}},
                             **spec_changes)

    def curl(self, domain: str, address: str, path: str = "/", *, scheme: str = "https",
             extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """``curl`` from outside the host, as a user's browser would (DNS pinned to ``address``)."""
        port = 443 if scheme == "https" else 80
        args = ["curl", "--silent", "--show-error", "--max-time", "20", "--noproxy", "*",
                "--resolve", f"{domain}:{port}:{address}", "--cacert", str(self.pebble_root_path),
                "--write-out", "\n%{http_code}", *extra, f"{scheme}://{domain}{path}"]
        return subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)

    def curl_command(self, domain: str, address: str, path: str = "/") -> str:
        return (f"curl --resolve {domain}:443:{address} --cacert {self.pebble_root_path} "
                f"https://{domain}{path}")


def _is_url(source: str) -> bool:
    return "://" in source or source.startswith("git@")
