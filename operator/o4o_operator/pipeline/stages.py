"""The ten stages, as a frozen table of data.

Owns: one row per stage: its name and order, the condition it sets, the phase
shown while it runs, its one timeout and retry budget, which spec fields are
its inputs (a change to any of them makes the stage run again), what kind of
work it is (cloud code, or a host script run generically), its script, what it then does through the
instance's own API, the
Secrets it needs, how its script results and spec values map into status, its
message of success and its drift check. Strings and enums only: the runner maps
kinds, roles and checks to code. Purely computational: no I/O.
"""

from __future__ import annotations

import dataclasses
import enum

from o4o_operator.models import Phase


class StageName(enum.StrEnum):
    PROVISION = "provision"
    DNS = "dns"
    RUNTIME = "runtime"
    DATABASE = "database"
    SOURCE = "source"
    BUILD_SITE = "build-site"
    BUILD_API = "build-api"
    CONFIGURE = "configure"
    TLS = "tls"
    APPS = "apps"


class StageKind(enum.StrEnum):
    CLOUD = "cloud"
    """Talks to the cloud API (provision, dns): code in the runner."""
    SCRIPT = "script"
    """Runs its host script over SSH; a generic runner does it, with at most a small pre-step."""


class ApiStep(enum.StrEnum):
    """What a stage does through the instance's own API after its host script (the runner maps it to code)."""

    APPS = "apps"
    """Log in as the operator's admin; install, activate, deactivate and uninstall apps; run post-install
    steps (their commands through the ``apps-ledger`` host script, which records each change)."""
    HEALTH_GATE = "health-gate"
    """After the switch: check health (the body through the API, the status codes through nginx) up to
    ``health_attempts`` times, then keep the release or roll back (``settle-release``)."""


class SecretRole(enum.StrEnum):
    """Which referenced Secrets a stage reads (the runner maps a role to the spec field that names it)."""

    SSH_KEY = "ssh-key"
    CLOUD_CREDENTIALS = "cloud-credentials"
    GIT_TOKEN = "git-token"  # noqa: S105 - a role, not a secret
    """Passed to the script as ``O4O_GIT_TOKEN``, never rendered into it."""
    ENV = "env"
    DATABASE = "database"
    """The database's names and password (the operator-owned Secret, or ``spec.database.external``'s), passed
    to the script as ``O4O_DB_*``, never rendered into it."""
    BACKUP = "backup"
    """Presigned URLs for the two objects the stage's backup uploads (``spec.database.backup``: the dump and the
    uploads), passed to the script as ``O4O_BACKUP_PUT_URL`` and ``O4O_BACKUP_UPLOADS_PUT_URL``, and for those a
    restore or a clone reads (``spec.database.restore``, bootstrap mode ``restore``) as ``O4O_RESTORE_GET_URL`` and
    ``O4O_RESTORE_UPLOADS_GET_URL``; never rendered into it; the buckets' credentials stay in the operator."""
    ADMIN = "admin"
    """The operator-owned Secret ``<name>-database``'s ADMIN_EMAIL and ADMIN_PASSWORD, passed to the script
    as ``O4O_ADMIN_EMAIL`` and ``O4O_ADMIN_PASSWORD``, never rendered into it."""


class DriftCheck(enum.StrEnum):
    """What a drift check looks at; a finding turns the stage that owns the check back to Failed."""

    SERVER_RUNNING = "ServerNotRunning"
    HTTP_HEALTH = "HealthCheckFailed"
    CERTIFICATE_EXPIRY = "CertificateExpiring"

    @property
    def reason(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class ResultField:
    """A script's ``::o4o::result key=value`` and the status field (dotted, snake_case) it is recorded in."""

    key: str
    status_field: str | None = None
    """None: the value only appears in the stage's message."""
    missing_reason: str | None = None
    """When set, a script that does not report the key fails transiently with this reason."""


SCRIPT_MARGIN_SECONDS = 60.0
"""How much sooner than the stage's own timeout the host script is stopped, so that the script's
timeout (which kills it on the host and reports its output) fires before the stage's."""


@dataclasses.dataclass(frozen=True)
class Stage:
    name: StageName
    condition: str
    phase: Phase
    title: str
    timeout_seconds: float
    """The one timeout of the stage; a host script's timeout derives from it (:attr:`script_timeout_seconds`)."""
    inputs: tuple[str, ...]
    """Dotted spec paths (plus ``facts.*`` observed values) whose change re-runs the stage."""
    message: str
    """The past-tense message of success, formatted with ``domain``, ``revision``, ``commit`` (12 characters)
    and the script's results (``release``, ``notAfter``, ...)."""
    kind: StageKind = StageKind.SCRIPT
    script: str | None = None
    """The host script it runs (a name in ``templates/scripts/``)."""
    secrets: tuple[SecretRole, ...] = ()
    results: tuple[ResultField, ...] = ()
    records: tuple[tuple[str, str], ...] = ()
    """``(status field, spec path)``: spec values recorded in status when the stage succeeds."""
    drift: DriftCheck | None = None
    api_step: ApiStep | None = None
    """What it then does through the instance's own API (an SSH tunnel to ``spec.apiPort``), if anything."""
    max_backoff_seconds: float = 300.0

    @property
    def script_timeout_seconds(self) -> float:
        return max(self.timeout_seconds - SCRIPT_MARGIN_SECONDS, self.timeout_seconds / 2)


_REVISION = ("source.repository", "source.revision")
_HOST = "facts.serverIdentity"  # address and machine: a replaced server must be set up again from scratch
_SSH = (SecretRole.SSH_KEY,)
# What build-api.sh reads of spec.build.api: not uploadsDir (configure's) nor adminCommand (apps'), whose changes
# must not rebuild the API.
_API_BUILD_INPUTS = tuple(f"build.api.{field}" for field in (
    "package", "directory", "buildScript", "bundleScript", "entryPoint", "migrateCommand", "keepAcrossBundle"))

STAGES: tuple[Stage, ...] = (
    Stage(StageName.PROVISION, "ServerReady", Phase.PROVISIONING, "Provision the server",
          900, ("provider", "ssh.user", "ssh.hostKeyFingerprint", "ssh.trustOnFirstUse"),
          message="", kind=StageKind.CLOUD, secrets=(SecretRole.CLOUD_CREDENTIALS, SecretRole.SSH_KEY),
          drift=DriftCheck.SERVER_RUNNING),
    Stage(StageName.DNS, "DnsReady", Phase.PROVISIONING, "Create the DNS record",
          600, ("domain", "dns", "facts.serverAddress"),
          message="", kind=StageKind.CLOUD, secrets=(SecretRole.CLOUD_CREDENTIALS,)),
    Stage(StageName.RUNTIME, "RuntimeReady", Phase.INSTALLING, "Install Node.js, pnpm, nginx and PM2",
          1200, (_HOST,), message="Installed Node.js, pnpm, nginx, PM2 and certbot",
          script="setup-runtime", secrets=_SSH),
    Stage(StageName.DATABASE, "DatabaseReady", Phase.INSTALLING, "Create the database",
          600, ("database", "facts.databaseVersion", _HOST), message="Database ready: {database}",
          script="setup-database", secrets=(*_SSH, SecretRole.DATABASE),
          results=(ResultField("database", missing_reason="DatabaseUnavailable"),)),
    Stage(StageName.SOURCE, "SourceReady", Phase.INSTALLING, "Fetch the source at its revision",
          600, (*_REVISION, _HOST), message="Fetched {revision} at commit {commit}",
          script="fetch-source", secrets=(*_SSH, SecretRole.GIT_TOKEN),
          results=(ResultField("commit", "source.commit", missing_reason="NoCommit"),),
          records=(("source.repository", "source.repository"), ("source.revision", "source.revision"))),
    Stage(StageName.BUILD_SITE, "SiteBuilt", Phase.BUILDING, "Build the main site",
          1800, (*_REVISION, "build.installFlags", "build.site", "facts.commit", _HOST),
          message="Built the main site for commit {commit}",
          script="build-site", secrets=_SSH),
    Stage(StageName.BUILD_API, "ApiBuilt", Phase.BUILDING, "Build the API server",
          1800, (*_REVISION, "build.installFlags", *_API_BUILD_INPUTS, "facts.commit", _HOST),
          message="Built the API server for commit {commit}",
          script="build-api", secrets=_SSH),
    Stage(StageName.CONFIGURE, "Configured", Phase.CONFIGURING, "Configure nginx, PM2 and .env",
          600, ("domain", "apiPort", *_REVISION, "build.site.outputDir", "build.api.directory",
                "build.api.entryPoint", "build.api.migrateCommand", "build.api.uploadsDir", "build.health",
                "build.api.dataSource", "build.api.seedCommand", "database.bootstrap", "database.restore",
                "facts.commit",
                "facts.envVersion", _HOST),
          message="Configured nginx, PM2 and .env; serving release {release}",
          # DATABASE: the bootstrap's facts and its last guard are read as the instance's role.
          script="configure", secrets=(*_SSH, SecretRole.ENV, SecretRole.DATABASE, SecretRole.BACKUP),
          results=(ResultField("release"), ResultField("bootstrap", "database.bootstrap"),
                   ResultField("bootstrappedAt", "database.bootstrapped_at"),
                   ResultField("bootstrapCommit", "database.bootstrap_commit"),
                   ResultField("bootstrapSource", "database.bootstrap_source")),
          drift=DriftCheck.HTTP_HEALTH, api_step=ApiStep.HEALTH_GATE),
    Stage(StageName.TLS, "CertificateReady", Phase.CONFIGURING, "Obtain the TLS certificate",
          # All of spec.tls: a new server re-runs the stage, whose script then issues afresh instead of reusing.
          900, ("domain", "tls", *_REVISION, _HOST),
          message="Certificate for {domain} from {server} valid until {notAfter}",
          script="issue-cert", secrets=_SSH,
          results=(ResultField("notAfter", "certificate.not_after"), ResultField("issuer", "certificate.issuer"),
                   ResultField("server", "certificate.server")),
          drift=DriftCheck.CERTIFICATE_EXPIRY),
    Stage(StageName.APPS, "AppsReady", Phase.CONFIGURING, "Install the apps",
          1200, ("apps", "postInstall", "build.api.adminCommand", *_REVISION, "facts.commit", _HOST),
          message="Apps up to date ({changes})", script="apps", secrets=(*_SSH, SecretRole.ADMIN),
          results=(ResultField("installed"), ResultField("added"), ResultField("removed")),
          api_step=ApiStep.APPS),
)

STAGES_BY_NAME: dict[StageName, Stage] = {stage.name: stage for stage in STAGES}
STAGE_COUNT = len(STAGES)


def script_for(name: StageName) -> str:
    """The host script stage ``name`` runs (ValueError for a stage that runs none)."""
    script = STAGES_BY_NAME[name].script
    if script is None:
        raise ValueError(f"The {name.value} stage runs no host script")
    return script
