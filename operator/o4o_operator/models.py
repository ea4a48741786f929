"""Typed views of a DeploymentInstance: spec, status, and their vocabularies.

Owns: the pydantic models that mirror ``crds/deploymentinstances.deploy.o4o.io.yaml``
and the string enums (phases, condition statuses, stage states). ``spec.build`` lives in
``models_build``, ``spec.database`` in ``models_database`` and the declared install steps in
``spec_install``; this module re-exports the build names, so callers import them from here. Purely
computational: no I/O, no Kopf, no clients. Field names follow the CRD's camelCase through aliases;
Python code uses snake_case.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Annotated, Any

from cryptography import x509
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from o4o_operator.models_build import BODY_FIELD_PATTERN as BODY_FIELD_PATTERN
from o4o_operator.models_build import BUILD_RAM_GB as BUILD_RAM_GB
from o4o_operator.models_build import COMMAND_WORD_PATTERN as COMMAND_WORD_PATTERN
from o4o_operator.models_build import ENV_NAME_PATTERN as ENV_NAME_PATTERN
from o4o_operator.models_build import EXPORT_NAME_PATTERN as EXPORT_NAME_PATTERN
from o4o_operator.models_build import HEALTH_VALUE_PATTERN as HEALTH_VALUE_PATTERN
from o4o_operator.models_build import INSTALL_FLAG_PATTERN as INSTALL_FLAG_PATTERN
from o4o_operator.models_build import PACKAGE_NAME_PATTERN as PACKAGE_NAME_PATTERN
from o4o_operator.models_build import RELATIVE_PATH_PATTERN as RELATIVE_PATH_PATTERN
from o4o_operator.models_build import SCRIPT_NAME_PATTERN as SCRIPT_NAME_PATTERN
from o4o_operator.models_build import URL_PATH_PATTERN as URL_PATH_PATTERN
from o4o_operator.models_build import ApiBuildSpec as ApiBuildSpec
from o4o_operator.models_build import BuildSpec as BuildSpec
from o4o_operator.models_build import DataSourceSpec as DataSourceSpec
from o4o_operator.models_build import HealthSpec as HealthSpec
from o4o_operator.models_build import SiteBuildSpec as SiteBuildSpec
from o4o_operator.models_database import (
    BackupRecord,
    BackupRequestStatus,
    DatabaseSpec,
    RestoreStatus,
    ScheduledBackupStatus,
)
from o4o_operator.models_inventory import InventoryItem
from o4o_operator.spec_install import PostInstallStep, unique_step_names

GROUP = "deploy.o4o.io"
VERSION = "v1alpha1"
PLURAL = "deploymentinstances"
KIND = "DeploymentInstance"
FINALIZER = f"{GROUP}/teardown"
ADOPT_ANNOTATION = f"{GROUP}/adopt"
PAUSED_ANNOTATION = f"{GROUP}/paused"
SECRET_FINALIZER_PREFIX = f"{GROUP}/teardown-"
LOG_TAIL_LINES = 100
LOG_LINE_BYTES = 1024


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    def to_body(self) -> dict[str, Any]:
        """The camelCase dict for the Kubernetes API, without unset optionals."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def merge_patch(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``before`` into ``after``.

    ``to_body`` leaves out what is empty, and a merge patch keeps whatever it does not name, so a key
    that was written before and is absent now becomes an explicit null. Lists are replaced whole.
    """
    patch = dict(after)
    for key, old in (before or {}).items():
        if key not in after:
            patch[key] = None
        elif isinstance(old, Mapping) and isinstance(after[key], Mapping):
            patch[key] = merge_patch(old, after[key])
    return patch


class Phase(enum.StrEnum):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    INSTALLING = "Installing"
    BUILDING = "Building"
    CONFIGURING = "Configuring"
    READY = "Ready"
    FAILED = "Failed"
    DELETING = "Deleting"


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class StageState(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class DeletionPolicy(enum.StrEnum):
    DELETE = "Delete"
    RETAIN = "Retain"


class HostKeySource(enum.StrEnum):
    """Where a server's host key pin came from."""

    SPEC = "Spec"
    PROVIDER = "Provider"
    TRUSTED_ON_FIRST_USE = "TrustedOnFirstUse"


class DnsProviderKind(enum.StrEnum):
    LIGHTSAIL = "lightsail"
    ROUTE53 = "route53"
    NONE = "none"


# ---- spec -------------------------------------------------------------------

SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"  # noqa: S105 - a pattern, not a secret
"""A DNS-1123 subdomain, as the CRD's ``*SecretRef.name`` fields require (at most 253 characters)."""
SECRET_KEY_PATTERN = r"^\.?[-_a-zA-Z0-9][-._a-zA-Z0-9]*$"  # noqa: S105 - a pattern, not a secret
"""A Secret data key: Kubernetes' ``[-._a-zA-Z0-9]+``, and neither ``.``, ``..`` nor ``..``-prefixed."""
_SECRET_NAME = re.compile(SECRET_NAME_PATTERN)
_SECRET_KEY = re.compile(SECRET_KEY_PATTERN)
_MAX_SECRET_NAME = 253


def _secret_name(value: str) -> str:
    if len(value) > _MAX_SECRET_NAME or not _SECRET_NAME.fullmatch(value):
        raise ValueError("must be a Secret name in this namespace: a lowercase DNS-1123 subdomain "
                         "(letters, digits, '-' and '.', at most 253 characters)")
    return value


def _secret_key(value: str) -> str:
    if len(value) > _MAX_SECRET_NAME or not _SECRET_KEY.fullmatch(value):
        raise ValueError("must be a Secret key: letters, digits, '-', '_' and '.', at most 253 characters, "
                         "not '.' or '..'")
    return value


SecretName = Annotated[str, AfterValidator(_secret_name)]
SecretKey = Annotated[str, AfterValidator(_secret_key)]

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
MAX_CA_BUNDLE_CHARS = 65536


def pem_certificates(value: str) -> str:
    """One or more PEM certificates, and nothing that is not one (never a private key in the spec)."""
    if len(value) > MAX_CA_BUNDLE_CHARS:
        raise ValueError(f"must be at most {MAX_CA_BUNDLE_CHARS} characters of PEM certificates")
    if "PRIVATE KEY" in value:
        raise ValueError("holds a private key; only public CA certificates belong here (and the spec is "
                         "not a place for secrets)")
    blocks = list(_PEM_BLOCK.finditer(value))
    if not blocks:
        raise ValueError("must hold one or more PEM certificates (-----BEGIN CERTIFICATE----- ...)")
    for number, block in enumerate(blocks, start=1):
        kind = block.group(1)
        if kind != "CERTIFICATE":
            # Name the block's type only: its content may be a secret pasted by mistake.
            raise ValueError(f"PEM block {number} is a {kind}, not a CERTIFICATE; only public "
                             "certificates belong here")
        try:
            x509.load_pem_x509_certificate(block.group(0).encode())
        except ValueError:
            raise ValueError(f"PEM block {number} is not a valid X.509 certificate") from None
    return value


PemCertificates = Annotated[str, AfterValidator(pem_certificates)]
"""Public CA certificates inline in the spec (a bundle of PEM ``CERTIFICATE`` blocks)."""


O4O_REPOSITORY = "https://github.com/Renagang21/o4o-platform.git"
"""The O4O platform's public repository (branch ``main``): the default source."""


class SecretKeyRef(_Model):
    name: SecretName
    key: SecretKey


class SecretRef(_Model):
    name: SecretName


class AwsCredentialsRef(_Model):
    """A Secret holding AWS keys; absent means the default credential chain."""

    name: SecretName
    access_key_id_key: SecretKey = "aws_access_key_id"
    secret_access_key_key: SecretKey = "aws_secret_access_key"  # noqa: S105 - a key name, not a secret


class LightsailSpec(_Model):
    region: str
    availability_zone: str | None = None
    bundle_id: str = "small_3_0"
    """2 GB: O4O's build peaks at about 1.6 GB; smaller bundles stall with BundleTooSmall."""
    blueprint_id: str = "ubuntu_22_04"
    credentials_secret_ref: AwsCredentialsRef | None = None
    key_pair_name: str | None = None
    ssh_allowed_cidrs: tuple[str, ...] = ()


class ExistingHostSpec(_Model):
    host: str
    port: int = 22
    user: str | None = None


class ProviderSpec(_Model):
    lightsail: LightsailSpec | None = None
    existing: ExistingHostSpec | None = None


class SshSpec(_Model):
    user: str = "ubuntu"
    private_key_secret_ref: SecretKeyRef
    host_key_fingerprint: str | None = None
    trust_on_first_use: bool = False
    """Existing hosts without ``host_key_fingerprint``: pin the first key seen (made visible in status)."""


class SourceSpec(_Model):
    repository: str = O4O_REPOSITORY
    revision: str = "main"
    credentials_secret_ref: SecretKeyRef | None = None


TLS_EMAIL_PATTERN = r"^[^@\s-][^@\s]*@[^@\s]+\.[^@\s]+$"
"""As in the CRD: never starting with ``-``, so certbot cannot read it as an option."""


class TlsSpec(_Model):
    email: str = Field(pattern=TLS_EMAIL_PATTERN, max_length=254)
    server: str = "https://acme-v02.api.letsencrypt.org/directory"
    acme_ca_bundle: PemCertificates | None = Field(default=None, alias="acmeCABundle")
    """Verifies the ACME server's own HTTPS (Pebble, step-ca, a corporate ACME server); None: system roots."""
    certificate_ca_bundle: PemCertificates | None = Field(default=None, alias="certificateCABundle")
    """The roots the issued certificate chains to, for the HTTPS health checks; None: system roots."""


class DnsSpec(_Model):
    provider: DnsProviderKind = DnsProviderKind.NONE
    zone: str | None = None
    hosted_zone_id: str | None = None
    ttl: int = 300


class DeploymentInstanceSpec(_Model):
    domain: str
    description: str = ""
    apps: tuple[str, ...] = ()
    provider: ProviderSpec
    ssh: SshSpec
    source: SourceSpec = Field(default_factory=SourceSpec)
    tls: TlsSpec
    build: BuildSpec = Field(default_factory=BuildSpec)
    dns: DnsSpec = Field(default_factory=DnsSpec)
    database: DatabaseSpec = Field(default_factory=DatabaseSpec)
    env: tuple[SecretRef, ...] = ()
    post_install: Annotated[tuple[PostInstallStep, ...], AfterValidator(unique_step_names)] = Field(
        default=(), max_length=32)
    api_port: int = 3001
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE
    paused: bool = False


# ---- status -----------------------------------------------------------------


class Condition(_Model):
    type: str
    status: ConditionStatus
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int = 0


class StageStatus(_Model):
    name: str
    state: StageState = StageState.PENDING
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    message: str = ""
    reason: str | None = None
    inputs_hash: str | None = None
    secrets_version: str | None = None
    observed_generation: int = 0
    next_retry_at: str | None = None


class ServerStatus(_Model):
    name: str | None = None
    ip_address: str | None = None
    ip_addresses: tuple[str, ...] = ()
    """Every address an existing host's name resolved to (``ip_address`` is the first); empty for Lightsail."""
    static_ip_name: str | None = None
    key_pair_name: str | None = None
    region: str | None = None
    host_key_fingerprint: str | None = None
    host_key_fingerprints: tuple[str, ...] = ()
    """Every fingerprint the pin accepts (Lightsail reports one per host key algorithm)."""
    host_key_source: HostKeySource | None = None
    create_pending: bool = False
    created: bool = False


class SourceStatus(_Model):
    repository: str | None = None
    revision: str | None = None
    commit: str | None = None

    def pinned_commit(self, source: SourceSpec) -> str | None:
        """The recorded commit while ``source`` still names what it was resolved from, else None.

        A changed repository or revision must be resolved afresh, never served from the old commit.
        """
        if self.repository == source.repository and self.revision == source.revision:
            return self.commit
        return None


class CertificateStatus(_Model):
    not_after: str | None = None
    issuer: str | None = None
    """The certificate's issuer DN, as openssl prints it."""
    server: str | None = None
    """The ACME server that issued it (``spec.tls.server`` when the tls stage last succeeded)."""


class DatabaseStatus(_Model):
    """How the database was born (``spec.database.bootstrap``), recorded once by the configure stage."""

    bootstrapped_at: str | None = None
    bootstrap: str | None = None
    """``migrate`` or ``command``."""
    bootstrap_commit: str | None = None
    backups: tuple[BackupRecord, ...] = ()
    """The newest backups, newest first (``models_database.BACKUPS_KEPT_IN_STATUS`` at most)."""
    backup_request: BackupRequestStatus | None = None
    restore: RestoreStatus | None = None
    bootstrap_source: str | None = None
    """A clone's source (bootstrap mode restore): ``<namespace>/<name> backup <id>`` or ``template <key>``."""
    backup_schedule: str | None = None
    """The schedule ``next_scheduled_backup`` was computed from (a changed schedule recomputes it)."""
    next_scheduled_backup: str | None = None
    last_scheduled_backup: ScheduledBackupStatus | None = None


class DriftFinding(_Model):
    """What a drift check found lost while the instance was stalled: reported, repaired once the stall clears."""

    stage: str
    reason: str
    message: str = ""


class DeploymentInstanceStatus(_Model):
    phase: Phase = Phase.PENDING
    observed_generation: int = 0
    stage_progress: str | None = None
    """``<current>/<all>`` stages, set by the pipeline whenever it summarises; None until then."""
    conditions: tuple[Condition, ...] = ()
    stages: tuple[StageStatus, ...] = ()
    server: ServerStatus = Field(default_factory=ServerStatus)
    source: SourceStatus = Field(default_factory=SourceStatus)
    certificate: CertificateStatus = Field(default_factory=CertificateStatus)
    database: DatabaseStatus = Field(default_factory=DatabaseStatus)
    installed_apps: tuple[str, ...] = ()
    inventory: tuple[InventoryItem, ...] = ()
    """Everything external made or adopted (:mod:`o4o_operator.models_inventory`); teardown reads only this."""
    held_secrets: tuple[str, ...] = ()
    """Secrets carrying this instance's finalizer (:func:`secret_finalizer`) until teardown is done."""
    log_tail: tuple[str, ...] = ()
    last_check_time: str | None = None
    drift_findings: tuple[DriftFinding, ...] = ()
    """What the last drift check found lost while stalled (a check of a settled instance turns its stages
    back to Failed instead); each stays until its stage runs again."""

    def condition(self, condition_type: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == condition_type), None)

    def stage(self, name: str) -> StageStatus | None:
        return next((s for s in self.stages if s.name == name), None)


def secret_finalizer(uid: str) -> str:
    """The finalizer instance ``uid`` puts on a Secret its teardown reads (one per instance, never shared)."""
    return SECRET_FINALIZER_PREFIX + uid


class InstanceRef(_Model):
    """Who an instance is: enough to name cloud resources and tag them."""

    namespace: str
    name: str
    uid: str
    generation: int = 1
