"""``spec.database``: where an instance's database lives.

Owns: the pydantic model of ``spec.database`` (mirroring the CRD) and the names of the keys an external
database's Secret must hold. By default the database is PostgreSQL on the instance's own server, one role
and one database per instance; ``external.secretRef`` names a Secret describing another one instead, and
``external.caSecretRef`` (or a ``ca.crt`` key beside the connection's) the CA its ``sslMode`` verifies against.
Purely computational: no I/O, and it imports nothing of the operator but the cron syntax (``models_cron``);
``models`` builds on it.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from o4o_operator import models_cron

SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"  # noqa: S105 - a pattern
"""The same DNS-1123 subdomain as ``models.SECRET_NAME_PATTERN`` (a test keeps the two equal)."""

EXTERNAL_SECRET_FIELD = "spec.database.external.secretRef"  # noqa: S105 - a field name, not a secret
EXTERNAL_KEYS = ("host", "port", "name", "user", "password", "sslMode")
"""The keys the external database's Secret holds: the server's host name or address, its TCP port, the
database's name, the role and its password, and the libpq TLS mode (``require``, ``verify-full``, ...)."""
CA_SECRET_FIELD = "spec.database.external.caSecretRef"  # noqa: S105 - a field name, not a secret
CA_KEY = "ca.crt"
"""The key a CA certificate has in a Secret, as in CloudNativePG's ``<cluster>-ca`` and cert-manager's Secrets:
``caSecretRef.key``'s default, and the key of ``secretRef``'s Secret read when ``caSecretRef`` is absent."""
VERIFYING_SSL_MODES = ("verify-ca", "verify-full")
"""The ``sslMode`` values that verify the server's certificate against a CA (which the instance must be given)."""
SECRET_KEY_PATTERN = r"^\.?[-_a-zA-Z0-9][-._a-zA-Z0-9]*$"  # noqa: S105 - a pattern
"""A Secret's key, as the CRD's ``key`` fields require."""
GENERATED_SECRET_SUFFIX = "-database"  # noqa: S105 - a name suffix, not a secret
GENERATED_SECRET_FIELD = "metadata.name"  # noqa: S105 - a field name, not a secret
"""What a stall about the operator-owned Secret names: the Secret's name derives from the instance's."""
INSTANCE_LABEL = "deploy.o4o.io/instance"
"""With the instance's name as its value: on the operator-owned Secret."""
EXTENSION_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""A PostgreSQL extension's name, such as uuid-ossp or pg_trgm."""
EXTENSIONS_DEFAULT = ("uuid-ossp",)
"""O4O's migrations call ``uuid_generate_v4()`` before any of them creates the extension that defines it."""
BOOTSTRAP_FIELD = "spec.database.bootstrap"
BOOTSTRAP_COMMAND_FIELD = "spec.database.bootstrap.command"
BOOTSTRAP_RESTORE_FIELD = "spec.database.bootstrap.restore"
DATA_SOURCE_FIELD = "spec.build.api.dataSource"
SEED_COMMAND_FIELD = "spec.build.api.seedCommand"
COMMAND_WORD_PATTERN = r"^[A-Za-z0-9_@%+=:,./-]+$"
"""The same word rule as ``models_build.COMMAND_WORD_PATTERN`` (a test keeps the two equal)."""
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
NON_SECRET_KEYS: dict[str, frozenset[str]] = {
    GENERATED_SECRET_FIELD: frozenset({"DB_NAME", "DB_USERNAME", "ADMIN_EMAIL"}),
    EXTERNAL_SECRET_FIELD: frozenset({"host", "port", "name", "user", "sslMode", CA_KEY}),
    CA_SECRET_FIELD: frozenset({CA_KEY}),
}
"""Per referencing field: the keys of a database Secret that name things rather than hide them. They are not
redacted, so that a message such as the database stage's can say which database it made, and where."""


def secret_values(field: str, data: dict[str, str]) -> list[str]:
    """The values of a Secret read for ``field`` that must be redacted: all but its :data:`NON_SECRET_KEYS`."""
    public = NON_SECRET_KEYS.get(field, frozenset())
    return [value for key, value in data.items() if key not in public]


def generated_secret_name(instance_name: str) -> str:
    """The operator-owned Secret of an instance: ``<metadata.name>-database``."""
    return instance_name + GENERATED_SECRET_SUFFIX


class _DatabaseModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class DatabaseSecretRef(_DatabaseModel):
    name: str = Field(pattern=SECRET_NAME_PATTERN, max_length=253)


class DatabaseCaSecretRef(_DatabaseModel):
    """A key of a Secret holding the PEM CA certificate(s) the external server's certificate chains to."""

    name: str = Field(pattern=SECRET_NAME_PATTERN, max_length=253)
    key: str = Field(default=CA_KEY, pattern=SECRET_KEY_PATTERN, max_length=253)


class ExternalDatabaseSpec(_DatabaseModel):
    """A PostgreSQL server elsewhere; its Secret holds :data:`EXTERNAL_KEYS`."""

    secret_ref: DatabaseSecretRef
    ca_secret_ref: DatabaseCaSecretRef | None = None
    """The CA for ``sslMode`` verify-ca and verify-full; absent: key ``ca.crt`` of ``secret_ref``'s Secret."""

    def secret_refs(self) -> list[tuple[str, str]]:
        """(Secret name, referencing field) of every Secret this database is read from."""
        refs = [(self.secret_ref.name, EXTERNAL_SECRET_FIELD)]
        if self.ca_secret_ref is not None:
            refs.append((self.ca_secret_ref.name, CA_SECRET_FIELD))
        return refs


class BootstrapMode(enum.StrEnum):
    """How an empty database is born, once, before the first migration run."""

    MIGRATE = "migrate"
    """The migrations alone (``spec.build.api.migrateCommand``): for apps whose migrations build from empty."""
    COMMAND = "command"
    """``command`` first, as the app user in the release's API directory with the .env loaded."""
    SYNCHRONIZE = "synchronize"
    """TypeORM: the schema from the API's own entities (``DataSource.synchronize()`` of
    ``spec.build.api.dataSource``), every migration recorded as applied without running it
    (``runMigrations({fake: true})``), then ``spec.build.api.seedCommand``; later releases migrate as usual, so
    only migrations newer than that baseline run. For apps whose migrations change a schema they never create."""
    RESTORE = "restore"
    """A clone: ``restore`` (another instance's backup, or a template dump) is restored into the empty database
    with ``pg_restore``, then the migrations run as every release's do (only those newer than the dump's)."""


BACKUP_ID_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7,12}$"
"""A backup's id, as ``pipeline/backups.ID_PATTERN`` makes them (a test keeps the two equal)."""
LATEST_BACKUP = "latest"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
TEMPLATE_KEY_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}(/[a-z0-9][a-z0-9._-]{0,62}){0,7}/[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""A template dump's object key: a folder of the target's prefix rules, then a plain file name."""
SHA256_PATTERN = r"^[0-9a-f]{64}$"
RESTORE_FIELD = "spec.database.restore"
RESTORE_BACKUP_FIELD = "spec.database.restore.backup"
CLONE_INSTANCE_FIELD = "spec.database.bootstrap.restore.instance"
CLONE_BACKUP_FIELD = "spec.database.bootstrap.restore.backup"
CLONE_TEMPLATE_FIELD = "spec.database.bootstrap.restore.template"


class CloneSourceInstance(_DatabaseModel):
    """The instance whose backup a clone starts from; its namespace defaults to the clone's own. Another
    namespace must grant it (annotation ``deploy.o4o.io/clone-namespaces`` on the source instance)."""

    name: str = Field(pattern=DNS_LABEL_PATTERN, max_length=63)
    namespace: str | None = Field(default=None, pattern=DNS_LABEL_PATTERN, max_length=63)


class TemplateDump(_DatabaseModel):
    """A ``pg_dump --format=custom`` archive at ``key`` in the clone's own backup target's bucket (read with the
    clone's own target credentials, which must be allowed to read it)."""

    key: str = Field(pattern=TEMPLATE_KEY_PATTERN, max_length=1024)
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    """Checked before the restore; absent: the object's own ``sha256`` metadata, if it has one."""


class DatabaseRestoreSpec(_DatabaseModel):
    """Where a clone (bootstrap mode ``restore``) starts from: exactly one of ``instance`` (with ``backup``: an id
    of its backups, or ``latest``) and ``template``."""

    instance: CloneSourceInstance | None = None
    backup: str = Field(default=LATEST_BACKUP, pattern=r"^(latest|[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7,12})$")
    template: TemplateDump | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DatabaseRestoreSpec:
        if (self.instance is None) == (self.template is None):
            raise ValueError("restore needs exactly one of instance and template")
        return self


class DatabaseInPlaceRestoreSpec(_DatabaseModel):
    """``spec.database.restore``: restore this instance's own backup ``backup`` in place, once per id."""

    backup: str = Field(pattern=BACKUP_ID_PATTERN)


class RestoreStatus(_DatabaseModel):
    """The last in-place restore (``spec.database.restore``): each backup id is restored once."""

    backup: str
    started_at: str | None = None
    finished_at: str | None = None
    outcome: str = "Succeeded"
    """``Succeeded``: restored, migrated, and the health gate passed (a failure stalls the configure stage)."""
    pre_restore_backup: str | None = None
    """The backup taken just before the restore (what the database held then)."""


class DatabaseBootstrapSpec(_DatabaseModel):
    """What happens once, on an empty database (no table in any application schema, no migrations table),
    before the first migration run. A database that is not empty is never bootstrapped."""

    mode: BootstrapMode = BootstrapMode.MIGRATE
    command: tuple[Annotated[str, Field(pattern=COMMAND_WORD_PATTERN, max_length=255)], ...] | None = Field(
        default=None, min_length=1, max_length=32)
    """With ``mode: command``: one word per item, run before the migrations."""
    restore: DatabaseRestoreSpec | None = None

    @model_validator(mode="after")
    def _command_with_its_mode(self) -> DatabaseBootstrapSpec:
        if self.mode is BootstrapMode.COMMAND and not self.command:
            raise ValueError("mode command needs command (one word per item)")
        if self.mode is BootstrapMode.RESTORE and self.restore is None:
            raise ValueError("mode restore needs restore (an instance's backup or a template dump)")
        return self


BACKUP_FIELD = "spec.database.backup"
BACKUP_SCHEDULE_FIELD = "spec.database.backup.schedule"
BACKUP_CREDENTIALS_FIELD = "spec.database.backup.target.s3.credentialsSecretRef"
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
"""An S3 bucket's name (3 to 63 characters: lower-case letters, digits, dots and hyphens)."""
PREFIX_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}(/[a-z0-9][a-z0-9._-]{0,62}){0,7}$"
"""The target's key prefix: slash-separated segments of lower-case letters, digits, ``.``, ``_`` and ``-``,
no empty segment, no ``..`` start (a segment starts with a letter or digit)."""
ENDPOINT_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$"
"""An S3-compatible endpoint: scheme, host and optional port; no path, query, user or password."""
MAX_AGE_PATTERN = r"^[1-9][0-9]{0,4}[hd]$"
"""A retention age: hours or days, such as ``36h`` or ``30d``."""


class BackupCredentialsSecretRef(_DatabaseModel):
    """The Secret holding the S3 keys; the operator reads it, the server never sees it (it gets presigned URLs)."""

    name: str = Field(pattern=SECRET_NAME_PATTERN, max_length=253)
    access_key_id_key: str = Field(default="accessKeyId", pattern=SECRET_KEY_PATTERN, max_length=253)
    secret_access_key_key: str = Field(default="secretAccessKey", pattern=SECRET_KEY_PATTERN, max_length=253)


class S3BackupTarget(_DatabaseModel):
    """Any S3-compatible endpoint (AWS S3, a Lightsail bucket's endpoint, MinIO, versitygw, ...)."""

    endpoint: str = Field(pattern=ENDPOINT_PATTERN, max_length=253)
    bucket: str = Field(pattern=BUCKET_PATTERN)
    region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]{1,32}$")
    prefix: str = Field(default="o4o-backups", pattern=PREFIX_PATTERN, max_length=255)
    credentials_secret_ref: BackupCredentialsSecretRef


LIGHTSAIL_BUCKET_FIELD = "spec.database.backup.target.lightsailBucket"
LIGHTSAIL_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9-]{1,52}[a-z0-9]$"
"""A Lightsail bucket's name: 3 to 54 lower-case letters, digits and hyphens (Lightsail's own rule)."""


class LightsailBucketTarget(_DatabaseModel):
    """A Lightsail bucket the operator makes (tagged as the instance's), with an access key of its own kept in the
    operator-owned Secret ``<metadata.name>-backup-bucket``; deleted on teardown unless deletionPolicy Retain.
    The Lightsail calls use the instance's cloud credentials (``spec.provider.lightsail.credentialsSecretRef``,
    else the operator's own identity where ``O4O_AMBIENT_GRANTS`` allows it)."""

    name: str | None = Field(default=None, pattern=LIGHTSAIL_BUCKET_PATTERN)
    """Absent: ``o4o-<namespace>-<name>`` shortened, with a hash of the instance's uid (unique per instance)."""
    region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]{1,32}$")
    prefix: str = Field(default="o4o-backups", pattern=PREFIX_PATTERN, max_length=255)


class BackupTarget(_DatabaseModel):
    """Where backups go: exactly one kind, ``s3`` (any S3-compatible endpoint and a credentials Secret) or
    ``lightsailBucket`` (a bucket the operator makes)."""

    s3: S3BackupTarget | None = None
    lightsail_bucket: LightsailBucketTarget | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> BackupTarget:
        if (self.s3 is None) == (self.lightsail_bucket is None):
            raise ValueError("give exactly one of s3 and lightsailBucket")
        return self


class BackupRetention(_DatabaseModel):
    """Which backups are kept after each successful one: the newest ``count``, none older than ``max_age``."""

    count: int = Field(default=7, ge=1, le=1000)
    max_age: str | None = Field(default=None, pattern=MAX_AGE_PATTERN)

    @property
    def max_age_seconds(self) -> int | None:
        if self.max_age is None:
            return None
        return int(self.max_age[:-1]) * (3600 if self.max_age.endswith("h") else 86400)


class DatabaseBackupSpec(_DatabaseModel):
    """A ``pg_dump --format=custom`` before every migration run, to ``target``; pruned by ``retention``."""

    target: BackupTarget
    retention: BackupRetention = Field(default_factory=BackupRetention)
    schedule: str | None = Field(default=None, pattern=models_cron.PATTERN, max_length=128)
    """A backup more on a cron schedule (five fields or a macro such as ``@daily``, UTC), while the instance is
    settled; a window missed while the operator was down is caught up once."""

    @field_validator("schedule")
    @classmethod
    def _schedule_parses(cls, value: str | None) -> str | None:
        if value is not None:
            models_cron.parse(value)  # ValueError: pydantic names the field
        return value


class DatabaseSpec(_DatabaseModel):
    """Absent ``external``: PostgreSQL (Debian's package) on the server, installed by the database stage."""

    external: ExternalDatabaseSpec | None = None
    extensions: tuple[Annotated[str, Field(pattern=EXTENSION_PATTERN)], ...] = Field(
        default=EXTENSIONS_DEFAULT, max_length=16)
    """Created in the instance's database by the database stage (``CREATE EXTENSION IF NOT EXISTS``), before
    the migrations run: as the superuser on the server's own PostgreSQL, as the instance's role (trusted
    extensions only) on an external one."""
    bootstrap: DatabaseBootstrapSpec = Field(default_factory=DatabaseBootstrapSpec)
    backup: DatabaseBackupSpec | None = None
    """Absent: no backups (the migrations run unprotected, as before)."""
    restore: DatabaseInPlaceRestoreSpec | None = None
    """Restore one of this instance's backups in place, once per id (``status.database.restore`` records it)."""

    @property
    def local(self) -> bool:
        return self.external is None


BACKUPS_KEPT_IN_STATUS = 10
"""``status.database.backups`` holds the newest this many records (the bucket holds what retention keeps)."""


class UploadsArchiveRecord(_DatabaseModel):
    """The instance's uploads (``shared/uploads``) as a backup took them: a tar (gzip) object beside the dump."""

    key: str
    size: int
    sha256: str


class BackupRecord(_DatabaseModel):
    """One backup, as status and the object's metadata record it. Nothing in it is secret."""

    id: str
    time: str
    """When the dump began (UTC, RFC 3339)."""
    size: int
    sha256: str
    postgres_version: str
    """The server's ``server_version_num`` (such as 150013): a restore compares the major version."""
    commit: str
    """The release whose migration run the backup protects (the data is from before that run)."""
    migration_head: str | None = None
    """The newest row of the migrations table, when there is one."""
    key: str
    reason: str = "migration"
    """``migration`` (before a migration run), ``request`` (an on-request backup) or ``schedule``."""
    uploads: UploadsArchiveRecord | None = None
    """The uploads taken with the dump; none in a backup made before uploads were backed up (or in a template):
    restoring it restores the database only."""


class BackupRequestStatus(_DatabaseModel):
    """The last on-request backup (annotation ``deploy.o4o.io/backup-request``): each id runs once."""

    id: str
    outcome: str
    """``Succeeded`` or ``Failed`` (a failed request is not retried: a new id asks again)."""
    time: str
    backup_id: str | None = None
    message: str = ""


class ScheduledBackupStatus(_DatabaseModel):
    """The last scheduled backup (``spec.database.backup.schedule``): when it ran and how it went. A failed one is
    not retried before the next window (the ``BackupOverdue`` alert watches the gap)."""

    time: str
    outcome: str
    """``Succeeded`` or ``Failed``."""
    backup_id: str | None = None
    message: str = ""
