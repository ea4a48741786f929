"""The error vocabulary shared by every layer.

Owns: the split between transient failures (retry with backoff) and permanent
ones (Stalled, with a CamelCase reason naming the cause), the bound on every
reason (the one place errors are made, so nothing a script prints can make a
Condition the apiserver refuses), and the fixed vocabulary of reasons metrics
may use as a label. Purely computational: no I/O, no framework imports.
Messages must already be free of secret values.
"""

from __future__ import annotations

import re

REASON_MAX_LENGTH = 128
"""``status.stages[].reason`` allows 128 characters; a Condition's reason must match :data:`REASON_PATTERN`."""
REASON_PATTERN = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")
"""metav1.Condition's reason pattern (used with ``fullmatch``)."""
UNRECOGNISED_REASON = "UnrecognisedReason"
"""What a reason that is not CamelCase becomes (the original, bounded, goes into the message)."""
OTHER_REASON_LABEL = "Other"
"""The metric label for a reason outside :data:`KNOWN_REASONS`."""

KNOWN_REASONS: frozenset[str] = frozenset({
    # the operator's own
    "AlreadyExists", "ApiUnavailable", "CloudCallsInFlight", "ConfigMapContended", "HostNotResolving",
    "InvalidSecretName",
    "SecretContended", "CloudCredentialsRejected", "CloudRequestFailed", "CloudRequestInvalid",
    "CloudThrottled", "CloudUnavailable", "CommandFailed", "CommandTimedOut", "ConnectionFailed", "ConnectionLost",
    "DnsChangePending", "DnsNotResolving", "DnsZoneNotFound", "EnvValueUnquotable", "HostKeyMismatch",
    "HostKeyNotPinned", "HostKeyUnavailable", "HostUnreachable", "InternalError", "InvalidSpec", "InvalidSshKey",
    "NoCommit", "SecretForbidden", "SecretKeyMissing", "SecretNotFound", "ServerNotProvisioned",
    "ServerNotRunning", "SshAuthenticationFailed", "StageTimedOut", "StaticIpInUse", "StaticIpNotVisible",
    "TagLimitExceeded", "BundleTooSmall", "UnknownApp", "UnknownAvailabilityZone", "UnknownBlueprint", "UnknownBundle",
    "UnknownRegion", "UploadFailed", UNRECOGNISED_REASON,
    # the leader's fence on a host (templates/scripts/_fence.sh)
    "FenceBusy",
    # ownership (providers/ownership.py): what another tenant or a person owns
    "AdoptionMismatch", "DomainOwnedElsewhere", "KeyPairMismatch", "KeyPairNotFound", "KeyPairNotVisible",
    "KeyPairOwnedElsewhere", "ServerOwnedElsewhere",
    # the apps stage's (templates/scripts/apps*.sh; runner/apps_step.py for what the instance's API answers)
    "AdminCreateFailed", "AdminCredentialsMissing", "AdminLoginFailed", "AppRefused", "AppsApiUnavailable",
    "NoAppsReport", "PostInstallFailed",
    # the host scripts' (templates/scripts, ::o4o::permanent|transient reason=...)
    "AcmeChallengeFailed", "AcmeDnsNotResolving", "AcmeRateLimited", "AcmeRequestFailed", "AcmeServerMismatch",
    "AcmeServerUntrusted",
    "BackupFailed", "BuildFailed", "BuildOutputMissing", "ConfigMissing",
    "HealthCheckFailed", "HostTeardownFailed", "LockfileMissing", "MigrationFailed", "NginxConfigInvalid",
    "NodeChecksumMismatch", "NodeDownloadFailed",
    "NodeReleaseNotFound", "NodeTarballInvalid", "ReleaseNotActive", "ReleaseNotBuilt", "RevisionNotFound",
    "RolledBack", "RuntimeNotReady", "SourceAccessDenied", "SourceMissing", "SourceUnavailable",
    "UnsupportedArchitecture",
    # the build's toolchain and contract (templates/scripts/_toolchain.sh, _build.sh)
    "BuildToolFailed", "NodeMissing", "NodeRequirementUnreadable", "NodeVersionUnsupported", "PackageNotFound",
    "PnpmInstallFailed", "PnpmNotPinned", "PnpmVersionMismatch", "PnpmVersionUnavailable", "ScriptNotFound",
    # the database (runner/generated_secret.py, rendering/environment.py, templates/scripts/setup-database.sh)
    "SecretNameTaken", "DatabaseNameChanged", "DatabaseSecretIncomplete", "DatabasePasswordMissing",
    "DatabaseSetupFailed", "DatabaseUnavailable", "DatabaseCaMissing", "DatabaseCaInvalid",
    # the operator's own identity (pipeline/ambient_grants.py)
    "AmbientIdentityNotGranted", "ZoneNotGranted",
    # the database's bootstrap (pipeline/bootstrap.py, templates/scripts/_bootstrap.sh)
    "DatabaseBootstrapFailed", "DatabaseNotEmpty",
    # restores and clones (pipeline/restore.py, runner/restore_step.py, templates/scripts/_restore.sh)
    "BackupChecksumMismatch", "BackupNotFound", "CloneNotGranted", "CloneSourceNotFound", "PostgresVersionMismatch",
    "RestoreFailed", "RestoreUnavailable",
    # a Lightsail bucket as the backup target (runner/backup_bucket.py)
    "BucketNotOurs", "BucketUnreachable",
    # a DeploymentFleet's rollout (pipeline/fleet_rollout.py, pipeline/fleet_waves.py, runner/fleet.py)
    "DeadlineExceeded", "DuplicateDomain", "MemberNameTaken", "OverlappingSelectors", "RolloutHalted",
    "WaveMatchesNothing", "TemplateInvalid", "MemberRefused",
})
"""Every reason the operator and its scripts use; ``tests/runner/test_errors.py`` keeps it complete."""


def bounded_reason(reason: str) -> str:
    """``reason`` if a Condition accepts it; else cut to 128 characters, or :data:`UNRECOGNISED_REASON`."""
    if not REASON_PATTERN.fullmatch(reason):
        return UNRECOGNISED_REASON
    if len(reason) <= REASON_MAX_LENGTH:
        return reason
    return reason[:REASON_MAX_LENGTH].rstrip(",:")


def reason_label(reason: str) -> str:
    """The metric label for a reason: one of :data:`KNOWN_REASONS`, else :data:`OTHER_REASON_LABEL`."""
    return reason if reason in KNOWN_REASONS else OTHER_REASON_LABEL


class StageError(Exception):
    """A stage could not finish. ``reason`` is CamelCase (always bounded), ``message`` is for humans."""

    transient: bool = True

    def __init__(self, reason: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        bounded = bounded_reason(reason)
        if bounded == UNRECOGNISED_REASON and reason != UNRECOGNISED_REASON:
            message = f"{message} (reported reason {reason[:64]!r} is not CamelCase)"
        self._reason = bounded
        self.message = message
        self.field = field

    @property
    def reason(self) -> str:
        return self._reason

    @reason.setter
    def reason(self, value: str) -> None:
        self._reason = bounded_reason(value)

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class TransientError(StageError):
    """Worth retrying: throttling, timeouts, a host still booting, a dropped connection."""

    transient = True


class PermanentError(StageError):
    """Retrying cannot help until the spec or the world changes: the instance stalls."""

    transient = False


class InvalidSpecError(PermanentError):
    """A spec value the CRD schema could not catch (unknown bundle, unknown app, ...)."""

    def __init__(self, field: str, message: str, *, reason: str = "InvalidSpec") -> None:
        super().__init__(reason, f"{field}: {message}", field=field)
