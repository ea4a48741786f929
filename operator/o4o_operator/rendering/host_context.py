"""The values a host's scripts and configuration files are rendered from.

Owns: :class:`HostContext`, its validation (so that a value can never break
out of an nginx directive or a file path), and the logical paths every layer
agrees on (release directories, the ``current`` link, ``.env``, nginx sites,
certificates). Purely computational: no I/O.

Paths here are *logical*: absolute paths as on a real server. Scripts prefix
them with ``${O4O_ROOT:-}`` and the SSH session prefixes uploads with its
``root``, so a sandbox can host the same layout under a temporary directory
(test peers only: the shipped operator clears ``O4O_ROOT`` and its root is empty).

Several instances may share one host (``spec.provider.existing``), so every
per-instance name carries the namespace: the slug ``<namespace>.<name>`` (a
dot cannot occur in either DNS label, so no two instances share a slug) names
the directories, the PM2 process and the nginx site, and each instance has
its own system user ``o4o-<namespace>-<name>`` (shortened) plus a hash of
both, within the 32 characters Linux allows. The instance user owns
``base_dir`` (mode 0750, group ``web_group`` so that nginx can serve the
site); root keeps its own markers and logs in ``state_dir`` and writes the
ACME challenges into a root-owned ``webroot``, so it never writes through a
path the instance user controls.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

from o4o_operator.errors import InvalidSpecError
from o4o_operator.models_build import DATA_SOURCE_BUILD_DEFAULT
from o4o_operator.models_database import COMMAND_WORD_PATTERN
from o4o_operator.rendering.build_context import build_fields, migrate_script, validate_build

__all__ = ["HostContext", "build_fields", "instance_slug", "instance_user"]
from o4o_operator.spec_install import ADMIN_COMMAND_DEFAULT, PostInstallStep

LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
BASE_DIR_ROOT = "/srv/o4o"
STATE_ROOT = "/var/lib/o4o"
"""Root-owned: ``instances/<slug>`` (mode 0700) for markers and logs, ``acme/<slug>`` for challenges."""
USER_PREFIX = "o4o-"
_USER_MAX = 32
_USER_HASH_CHARS = 8
NODE_MIRROR = "https://nodejs.org/dist"
NODE_VERSION = "22.18.0"
"""O4O's ``.nvmrc`` and ``engines``."""
PNPM_VERSION = "10.25.0"
"""O4O's pin (root devDependencies and ``volta``); it has no ``packageManager`` field."""
PM2_VERSION = "6.0.14"

_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}\Z)({_LABEL}\.)+{_LABEL}$")
_DNS_LABEL = re.compile(rf"^{_LABEL}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_COMMIT = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/@+-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
BOOTSTRAP_MODES = ("", "migrate", "command", "synchronize", "restore")
RESTORE_KINDS = ("", "in-place", "clone")
_RESTORE_SOURCE = re.compile(r"^[A-Za-z0-9 ._/:-]{1,300}$")
_BOOTSTRAP_WORD = re.compile(COMMAND_WORD_PATTERN.removeprefix("^").removesuffix("$"))
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
_MIRROR = re.compile(r"^https?://[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]+[A-Za-z0-9._~:?#@!$&'()*+,;=%-]$")
_BACKUP_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7,12}$")


def _digest(*values: object) -> str:
    return hashlib.sha256(json.dumps(values, separators=(",", ":")).encode()).hexdigest()[:16]


def _invalid(field: str, message: str) -> InvalidSpecError:
    return InvalidSpecError(field, message)


def instance_slug(namespace: str, name: str) -> str:
    """``<namespace>.<name>``: unique per instance, since neither DNS label can hold a dot."""
    return f"{namespace}.{name}"


def instance_user(namespace: str, name: str) -> str:
    """The instance's system user: ``o4o-<namespace>-<name>`` cut short, then a hash of both (<= 32 chars).

    The hash keeps ``a``/``b-c`` and ``a-b``/``c`` apart and survives the shortening.
    """
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:_USER_HASH_CHARS]
    room = _USER_MAX - len(USER_PREFIX) - 1 - _USER_HASH_CHARS
    readable = f"{namespace}-{name}"[:room].rstrip("-")
    return f"{USER_PREFIX}{readable}-{digest}"


@dataclasses.dataclass(frozen=True)
class HostContext:
    """Everything the templates need about one instance on one host."""

    domain: str
    instance_name: str
    repository: str
    revision: str
    tls_email: str
    commit: str | None = None
    namespace: str = "default"
    app_user: str = ""
    """Defaults to :func:`instance_user` of the namespace and name: one system user per instance."""
    web_group: str = "www-data"
    """The group nginx runs as; it may enter ``base_dir`` to serve the site, nothing more."""
    base_dir: str = ""
    """Defaults to ``/srv/o4o/<namespace>.<instance_name>``."""
    api_port: int = 3001
    acme_server: str = LETSENCRYPT_PRODUCTION
    apps: tuple[str, ...] = ()
    keep_releases: int = 5
    node_version: str = NODE_VERSION
    node_mirror: str = NODE_MIRROR
    """Shaped like https://nodejs.org/dist: ``v<version>/node-v<version>-linux-<arch>.tar.xz`` and
    ``v<version>/SHASUMS256.txt`` (the operator setting ``O4O_NODE_MIRROR``)."""
    pnpm_version: str = PNPM_VERSION
    pm2_version: str = PM2_VERSION
    acme_ca_bundle: str | None = None
    """PEM roots for the ACME server's own HTTPS (``spec.tls.acmeCABundle``); None: the system roots."""
    certificate_ca_bundle: str | None = None
    """PEM roots the issued certificate chains to (``spec.tls.certificateCABundle``); None: the system roots."""
    health_path: str = "/api/health"
    """``spec.build.health``: the API path probed beside ``/``, the dotted field of its JSON body that must
    equal ``health_expect`` (empty: the status code alone decides)."""
    health_body_field: str = "database.status"
    health_expect: str = "healthy"
    health_attempts: int = 10
    health_interval_seconds: int = 3
    install_flags: tuple[str, ...] = ("--frozen-lockfile",)
    """``spec.build.installFlags``: the flags of ``pnpm install``."""
    site_package: str = "@o4o/main-site-nextgen"
    site_build_script: str = "build"
    site_dist: str = "apps/main-site/dist"
    site_api_url_variable: str = "VITE_API_URL"
    """Set to ``https://<domain>`` while the site builds (empty: not set); O4O's client appends /api/v1/..."""
    site_env: tuple[tuple[str, str], ...] = ()
    """``spec.build.site.env``: more build-time variables, in name order."""
    api_package: str = "@o4o/api-server"
    api_dir: str = "apps/api-server"
    api_build_script: str = "build"
    api_bundle_script: str = "build:api"
    """Run after ``api_build_script`` on the API package alone; empty: no bundle step."""
    api_entry: str = "dist/main.js"
    api_migrate_command: tuple[str, ...] = ("node", "dist/migrate.js")
    """Run in the new release's API directory, with the .env, before ``current`` switches to it."""
    api_keep_across_bundle: tuple[str, ...] = ("dist/database",)
    """From the API directory: saved after the build step and put back after the bundle step."""
    api_uploads_dir: str = "public/uploads"
    """From the API directory: where the API writes uploads; a link to :attr:`uploads_dir` in each release."""
    admin_command: tuple[str, ...] = ADMIN_COMMAND_DEFAULT
    """``spec.build.api.adminCommand``; its credential placeholders are expanded by the apps script."""
    api_data_source_module: str = "dist/o4o-bootstrap/connection.js"
    api_data_source_export: str = "AppDataSource"
    api_data_source_build: tuple[str, ...] = DATA_SOURCE_BUILD_DEFAULT
    api_seed_command: tuple[str, ...] = ()
    """``spec.build.api.dataSource`` and ``seedCommand``: what bootstrap mode ``synchronize`` runs."""
    post_install: tuple[PostInstallStep, ...] = ()
    """``spec.postInstall`` (validated by its model)."""
    bootstrap_mode: str = ""
    """The bootstrap this configure run performs (``migrate``, ``command`` or ``synchronize``), as
    :func:`o4o_operator.pipeline.bootstrap.plan_bootstrap` decided; empty: none."""
    bootstrap_command: tuple[str, ...] = ()
    """``spec.database.bootstrap.command``, with ``bootstrap_mode`` ``command``."""
    bootstrap_reset: bool = False
    """Drop the instance's own local database and create it again first (an earlier bootstrap failed)."""
    backup_id: str = ""
    """The backup this configure run makes before its migration run, if it runs one (``pipeline/backups.py``
    names it); empty: ``spec.database.backup`` is absent. Its upload URL reaches the script as a secret."""
    restore_kind: str = ""
    """``in-place`` (``spec.database.restore``, drop and create the local database again first) or ``clone``
    (bootstrap mode ``restore`` into the empty database); empty: nothing is restored. ``pipeline/restore.py``
    decides; the dump's download URL reaches the script as a secret."""
    restore_id: str = ""
    """The backup restored (an id; a template dump without one: ``template``)."""
    restore_sha256: str = ""
    """The dump's SHA-256 from its record: checked before anything is dropped or restored."""
    restore_uploads_sha256: str = ""
    """The SHA-256 of the uploads taken with that dump (a tar, gzip), checked as the dump's is; empty: the backup
    holds none (made before uploads were backed up, or a template), so the uploads are left as they are."""
    postgres_version: str = ""
    """The server's ``server_version_num``, as ``database-facts`` reported before configure: what a restore's dump
    is checked against (``pipeline/restore.py``). Rendered nowhere."""
    restore_source: str = ""
    """What is restored, for the log and the host's record: ``<namespace>/<name> backup <id>`` or ``template <key>``."""
    letsencrypt_dir: str = "/etc/letsencrypt"
    nginx_dir: str = "/etc/nginx"
    nginx_log_dir: str = "/var/log/nginx"

    @classmethod
    def for_teardown(cls, namespace: str, instance_name: str, domain: str) -> HostContext:
        """What ``teardown-host.sh`` needs, and no more: the names and paths that derive from the namespace
        and name, and the certificate's domain. The source and ACME contact, which it never renders, hold
        inert values, so teardown needs no spec."""
        return cls(domain=domain, instance_name=instance_name, namespace=namespace, repository="teardown:none",
                   revision="none", tls_email="none@teardown.invalid")

    def __post_init__(self) -> None:
        if not self.app_user:
            object.__setattr__(self, "app_user", instance_user(self.namespace, self.instance_name))
        if not self.base_dir:
            object.__setattr__(self, "base_dir", f"{BASE_DIR_ROOT}/{self.slug}")
        self._validate()

    def _validate(self) -> None:
        if not _DOMAIN.fullmatch(self.domain):
            raise _invalid("domain", "must be a lowercase DNS name such as shop.example.com")
        if not _DNS_LABEL.fullmatch(self.instance_name):
            raise _invalid("metadata.name", "must be a DNS-1123 label")
        if not _DNS_LABEL.fullmatch(self.namespace):
            raise _invalid("metadata.namespace", "must be a DNS-1123 label")
        if not _USER.fullmatch(self.app_user):
            raise _invalid("appUser", "must be a lowercase POSIX user name")
        if not _USER.fullmatch(self.web_group):
            raise _invalid("webGroup", "must be a lowercase POSIX group name")
        if not 1 <= self.api_port <= 65535:
            raise _invalid("apiPort", "must be between 1 and 65535")
        if self.commit is not None and not _COMMIT.fullmatch(self.commit):
            raise _invalid("source.commit", "must be a full hexadecimal commit SHA")
        if not self.repository or _CONTROL.search(self.repository) or self.repository.startswith("-"):
            raise _invalid("source.repository", "must be a URL without control characters")
        if not self.revision or _CONTROL.search(self.revision) or self.revision.startswith("-") \
                or " " in self.revision:
            raise _invalid("source.revision", "must be a branch, tag or commit without spaces")
        if not self.tls_email or _CONTROL.search(self.tls_email) or "@" not in self.tls_email \
                or self.tls_email.startswith("-"):
            raise _invalid("spec.tls.email", "must be an email address (not starting with '-')")
        if _CONTROL.search(self.acme_server) or not self.acme_server.startswith(("https://", "http://")):
            raise _invalid("tls.server", "must be an http(s) URL")
        if not 1 <= self.keep_releases <= 100:
            raise _invalid("keepReleases", "must be between 1 and 100")
        for name, value in (("nodeVersion", self.node_version), ("pnpmVersion", self.pnpm_version),
                            ("pm2Version", self.pm2_version)):
            if not _VERSION.fullmatch(value):
                raise _invalid(name, "must be a version such as 22.18.0")
        if not _MIRROR.fullmatch(self.node_mirror):
            raise _invalid("O4O_NODE_MIRROR", "must be an http(s) URL without a trailing slash, such as "
                           "https://nodejs.org/dist")
        if self.health_attempts < 1 or self.health_interval_seconds < 0:
            raise _invalid("health", "needs at least one attempt and a non-negative interval")
        for name in ("base_dir", "letsencrypt_dir", "nginx_dir", "nginx_log_dir"):
            if not _SAFE_PATH.fullmatch(getattr(self, name)) or ".." in getattr(self, name):
                raise _invalid(name, "must be an absolute path of plain characters")
        if self.bootstrap_mode not in BOOTSTRAP_MODES or (self.bootstrap_mode == "command") != bool(
                self.bootstrap_command) or not all(_BOOTSTRAP_WORD.fullmatch(w) for w in self.bootstrap_command):
            raise _invalid("spec.database.bootstrap.command", "must be words of plain characters, with mode command")
        if self.backup_id and not _BACKUP_ID.fullmatch(self.backup_id):
            raise _invalid("backup_id", "must be <UTC time>-<commit>, such as 20261206T120000Z-0123456789ab")
        if self.restore_kind not in RESTORE_KINDS or bool(self.restore_kind) != bool(self.restore_id) or (
                self.restore_kind and not (re.fullmatch(r"[0-9a-f]{64}", self.restore_sha256)
                                           and (_BACKUP_ID.fullmatch(self.restore_id) or self.restore_id == "template")
                                           and _RESTORE_SOURCE.fullmatch(self.restore_source))):
            raise _invalid("spec.database.restore", "needs a backup id, its SHA-256 and a plain source description")
        if self.restore_uploads_sha256 and not (self.restore_kind
                                                and re.fullmatch(r"[0-9a-f]{64}", self.restore_uploads_sha256)):
            raise _invalid("spec.database.restore", "the uploads' SHA-256 must be 64 hex digits, with a restore")
        validate_build(self)
        for app in self.apps:
            if not _DNS_LABEL.fullmatch(app):
                raise _invalid("apps", f"{app!r} is not a valid app name")

    @property
    def site_build_env(self) -> tuple[tuple[str, str], ...]:
        """The site's build-time variables: the API address for this domain, then ``spec.build.site.env``."""
        api_url = ((self.site_api_url_variable, f"https://{self.domain}"),) if self.site_api_url_variable else ()
        return (*api_url, *((k, v) for k, v in self.site_env if k != self.site_api_url_variable))

    @property
    def install_digest(self) -> str:
        """Names what ``pnpm install`` ran with; a release installed otherwise installs again."""
        return _digest("install", self.install_flags)

    @property
    def site_build_digest(self) -> str:
        """Names how the site was built; a release built otherwise builds again."""
        return _digest("site", self.install_flags, self.site_package, self.site_build_script, self.site_dist,
                       self.site_build_env)

    @property
    def api_build_digest(self) -> str:
        return _digest("api", self.install_flags, self.api_package, self.api_dir, self.api_build_script,
                       self.api_bundle_script, self.api_entry, self.api_keep_across_bundle)

    @property
    def api_migrate_script(self) -> str | None:
        """The file a ``node <script>`` migration runs, from the API directory; the build must leave it."""
        return migrate_script(self.api_migrate_command)

    def with_commit(self, commit: str) -> HostContext:
        """The same context, pinned to a resolved commit."""
        return dataclasses.replace(self, commit=commit)

    # ---- names and logical paths ---------------------------------------------

    @property
    def slug(self) -> str:
        """``<namespace>.<name>``: the per-instance part of every directory, process and site name."""
        return instance_slug(self.namespace, self.instance_name)

    @property
    def state_dir(self) -> str:
        """Root-owned (mode 0700): markers and activation logs that root writes; never app-writable."""
        return f"{STATE_ROOT}/instances/{self.slug}"

    @property
    def activation_log_dir(self) -> str:
        return f"{self.state_dir}/activations"

    def activation_log(self, commit: str) -> str:
        return f"{self.activation_log_dir}/{commit}.log"

    def migrated_marker(self, commit: str) -> str:
        """Root's record that the release's migration succeeded: it is not run again."""
        return f"{self.activation_log_dir}/{commit}.migrated"

    @property
    def nginx_applied_marker(self) -> str:
        return f"{self.state_dir}/nginx-applied"

    @property
    def repo_dir(self) -> str:
        return f"{self.base_dir}/repo"

    @property
    def releases_dir(self) -> str:
        return f"{self.base_dir}/releases"

    def release_dir(self, commit: str) -> str:
        return f"{self.releases_dir}/{commit}"

    @property
    def current_link(self) -> str:
        return f"{self.base_dir}/current"

    @property
    def shared_dir(self) -> str:
        return f"{self.base_dir}/shared"

    @property
    def uploads_dir(self) -> str:
        """Shared by every release (the API writes, nginx serves ``/uploads/``): outlives switches and rollbacks."""
        return f"{self.shared_dir}/uploads"

    @property
    def env_path(self) -> str:
        """The ``.env`` file the API reads; uploaded with mode 0600, owned by the app user."""
        return f"{self.shared_dir}/.env"

    @property
    def database_ca_path(self) -> str:
        """An external database's CA (``sslMode`` verify-ca, verify-full): mode 0600, owned by the app user, who
        checks the connection with it (psql's ``sslrootcert``) and runs the API that verifies against it."""
        return f"{self.shared_dir}/database-ca.crt"

    @property
    def ecosystem_path(self) -> str:
        return f"{self.shared_dir}/ecosystem.config.js"

    @property
    def apps_state_dir(self) -> str:
        """Root's record of the admin account, the apps it installed and the post-install steps run."""
        return f"{self.state_dir}/apps"

    @property
    def webroot(self) -> str:
        """Where certbot (as root) writes HTTP-01 challenges and nginx serves them from; root-owned."""
        return f"{STATE_ROOT}/acme/{self.slug}"

    @property
    def pm2_app_name(self) -> str:
        return f"o4o-{self.slug}-api"

    @property
    def nginx_site_stem(self) -> str:
        """``o4o-<namespace>.<name>``: the nginx site and log file names start with it."""
        return f"o4o-{self.slug}"

    def nginx_site_name(self, https: bool) -> str:
        return f"{self.nginx_site_stem}.{'https' if https else 'http'}.conf"

    def nginx_site_path(self, https: bool) -> str:
        """One of the two site variants the caller uploads; ``configure`` and ``tls`` pick one."""
        return f"{self.nginx_dir}/sites-available/{self.nginx_site_name(https)}"

    @property
    def nginx_enabled_path(self) -> str:
        return f"{self.nginx_dir}/sites-enabled/{self.nginx_site_stem}.conf"

    @property
    def certificate_dir(self) -> str:
        return f"{self.letsencrypt_dir}/live/{self.domain}"

    @property
    def certificate_path(self) -> str:
        return f"{self.certificate_dir}/fullchain.pem"

    @property
    def certificate_key_path(self) -> str:
        return f"{self.certificate_dir}/privkey.pem"

    @property
    def tls_dir(self) -> str:
        """Public CA bundles from ``spec.tls``, for the root scripts that verify TLS with them: in root's
        state directory, so the instance's user cannot swap the roots its own health is judged by."""
        return f"{self.state_dir}/tls"

    @property
    def acme_ca_path(self) -> str | None:
        return f"{self.tls_dir}/acme-ca.pem" if self.acme_ca_bundle else None

    @property
    def certificate_ca_path(self) -> str | None:
        return f"{self.tls_dir}/certificate-ca.pem" if self.certificate_ca_bundle else None

    # ---- the runtime ---------------------------------------------------------

    @property
    def node_dir(self) -> str:
        """Where this Node.js release is unpacked, one directory per version (as nvm and volta keep them)."""
        return f"/opt/o4o/node/v{self.node_version}"

    @property
    def app_home(self) -> str:
        """The instance user's home (mode 0700): PM2's state and the instance's own pnpm live there."""
        return f"/home/{self.app_user}"

    @property
    def pnpm_root(self) -> str:
        """One npm prefix per pnpm version the instance's repository pins, ``<pnpm_root>/<version>``, installed
        by and for the instance's user: instances sharing a host each build with their own pnpm."""
        return f"{self.app_home}/.o4o/pnpm"

    @property
    def global_prefix(self) -> str:
        """npm's global prefix: node, npm, npx, pnpm and pm2 are linked or installed into its ``bin``."""
        return "/usr/local"

    @property
    def site_root(self) -> str:
        """The static main site of the live release, as nginx serves it."""
        return f"{self.current_link}/{self.site_dist}"

    @property
    def api_cwd(self) -> str:
        return f"{self.current_link}/{self.api_dir}"
