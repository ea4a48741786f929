"""Operator-wide settings, read once from flags and the environment.

Owns: every tunable with its default and its ``O4O_*`` environment variable.
Must not read anything else from the environment.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from o4o_operator.pipeline.ambient_grants import AmbientGrants


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    max_pipelines: int = 20
    """How many instances may run a stage at once (each may hold one SSH session)."""
    max_ssh_sessions: int = 50
    drift_interval_seconds: float = 600.0
    stall_recheck_seconds: float = 60.0
    """How often a stalled instance looks again at its Secrets (a missing one may appear)."""
    lightsail_endpoint_url: str | None = None
    route53_endpoint_url: str | None = None
    aws_max_attempts: int = 8
    log_configmap_max_bytes: int = 256 * 1024
    certificate_warning_days: float = 14.0
    ssh_connect_timeout: float = 300.0
    cloud_poll_interval: float = 5.0
    node_mirror: str = "https://nodejs.org/dist"
    """Where servers download Node.js release tarballs and SHASUMS256.txt (a mirror shaped like nodejs.org/dist)."""
    ambient_grants: AmbientGrants = dataclasses.field(default_factory=AmbientGrants)
    """``O4O_AMBIENT_GRANTS``: the namespaces that may use the operator's own cloud identity, and the DNS zones
    each may write with it (see :mod:`o4o_operator.pipeline.ambient_grants`); none by default."""
    leader_election: bool = True
    """``O4O_LEADER_ELECTION``: run the operator only while holding the Lease (active/standby replicas, and
    the host fence's epoch). ``false`` for exactly one replica (``make dev`` and the test worlds)."""
    lease_name: str = "o4o-operator"
    lease_namespace: str = ""
    """Empty: ``POD_NAMESPACE`` (the downward API), else the pod's service account's namespace."""
    lease_duration_seconds: float = 15.0
    """How long a standby waits, after it last saw the Lease renewed, before it takes over (client-go's 15 s)."""
    renew_deadline_seconds: float = 10.0
    """How long the leader keeps acting without a successful renewal; then it stops all work (client-go's 10 s)."""
    retry_period_seconds: float = 2.0
    """Between tries to acquire or renew the Lease (client-go's 2 s)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_mirror", self.node_mirror.rstrip("/"))

    @classmethod
    def environment_variable(cls, field_name: str) -> str:
        """The ``O4O_*`` variable that sets a field: ``O4O_`` plus the field's name in capitals."""
        return f"O4O_{field_name.upper()}"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """Every field from its ``O4O_*`` variable; unset or empty keeps the default."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        defaults = cls()
        for field in dataclasses.fields(cls):
            name = cls.environment_variable(field.name)
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            values[field.name] = _parse(name, raw, getattr(defaults, field.name))
        return cls(**values)  # type: ignore[arg-type]


def _parse(name: str, raw: str, default: object) -> object:
    """A variable's value in the type of its field's default (a number must be positive)."""
    if default is None or isinstance(default, str):
        return raw
    if isinstance(default, bool):
        if raw.lower() in ("true", "1", "yes", "on"):
            return True
        if raw.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{name} must be true or false, got {raw!r}")
    if isinstance(default, AmbientGrants):
        return AmbientGrants.parse(raw, name)
    try:
        value = float(raw)
    except ValueError as error:
        raise ValueError(f"{name} must be a number, got {raw!r}") from error
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    if isinstance(default, int):
        if not value.is_integer():
            raise ValueError(f"{name} must be a whole number, got {raw!r}")
        return int(value)
    return value
