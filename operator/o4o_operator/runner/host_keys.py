"""The host-key policy: which SSH host keys a server must present, and where to reach it.

Owns: :func:`host_key_pins` (the spec's pin; else on Lightsail what Lightsail reported; else on an existing
host the key trusted on first use, or nothing yet when the spec allows trusting one), :func:`trusts_first_use`,
:func:`ssh_target`, and :func:`with_field`, which turns a permanent SSH failure into an error naming the
field to fix. Purely computational (spec and status in, pins out): it opens no connection and trusts nothing
itself (:mod:`o4o_operator.runner.host_session` does, as this policy allows).
"""

from __future__ import annotations

from o4o_operator.errors import InvalidSpecError, StageError
from o4o_operator.models import DeploymentInstanceSpec, DeploymentInstanceStatus, HostKeySource
from o4o_operator.providers.ssh import normalise_fingerprint

KEY_FIELD = "spec.ssh.privateKeySecretRef"
PIN_FIELD = "spec.ssh.hostKeyFingerprint"


def with_field(spec: DeploymentInstanceSpec, error: StageError) -> StageError:
    """A permanent SSH failure as an InvalidSpecError naming the field to fix; anything else unchanged."""
    if error.transient:
        return error
    if error.reason == "HostKeyMismatch":
        field = PIN_FIELD if spec.ssh.host_key_fingerprint else "status.server.hostKeyFingerprints"
    elif error.reason in ("InvalidSshKey", "SshAuthenticationFailed"):
        field = KEY_FIELD
    else:
        return error
    return InvalidSpecError(field, error.message, reason=error.reason)


def trusts_first_use(spec: DeploymentInstanceSpec) -> bool:
    """An existing host without a pinned key whose spec asks for trust on first use."""
    ssh = spec.ssh
    return spec.provider.existing is not None and not ssh.host_key_fingerprint and ssh.trust_on_first_use


def host_key_pins(spec: DeploymentInstanceSpec, status: DeploymentInstanceStatus) -> tuple[str, ...]:
    """The fingerprints a host key must match. Empty only when trusting on first use (existing hosts).

    Lightsail: the spec's pin, else what Lightsail reported (provision waits for it). Existing hosts: the
    spec's pin, else (``trustOnFirstUse``) the key trusted on first use. Otherwise stall naming the field.
    """
    ssh, server = spec.ssh, status.server
    if ssh.host_key_fingerprint:
        return (normalise_fingerprint(ssh.host_key_fingerprint),)
    existing = spec.provider.existing
    if existing is not None and not ssh.trust_on_first_use:
        raise InvalidSpecError(PIN_FIELD, f"the SSH host key of {existing.host}:{existing.port} is not "
                               "pinned; set it (ssh-keygen -lf on the host's key, or ssh-keyscan), or set "
                               "spec.ssh.trustOnFirstUse: true to trust the first key seen",
                               reason="HostKeyNotPinned")
    if existing is not None and (server.host_key_source is not HostKeySource.TRUSTED_ON_FIRST_USE
                                 or server.name != existing.host):
        return ()  # trust on first use, and nothing trusted yet on this host
    pins = server.host_key_fingerprints or ((server.host_key_fingerprint,) if server.host_key_fingerprint else ())
    if not pins and existing is None:
        raise InvalidSpecError(PIN_FIELD, "no SSH host key is known for the server: Lightsail reported none",
                               reason="HostKeyNotPinned")
    return tuple(pins)


def ssh_target(spec: DeploymentInstanceSpec, status: DeploymentInstanceStatus) -> tuple[str, int]:
    existing = spec.provider.existing
    if existing is not None:
        return existing.host, existing.port
    if not status.server.ip_address:
        raise InvalidSpecError("status.server.ipAddress", "the server has no address yet",
                               reason="ServerNotProvisioned")
    return status.server.ip_address, 22
