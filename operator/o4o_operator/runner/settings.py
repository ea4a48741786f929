"""Operator-wide settings, read once from flags and the environment.

Owns: every tunable with its default and its ``O4O_*`` environment variable.
Must not read anything else from the environment.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping


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

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if environ is None else environ
        defaults = cls()

        def number(name: str, default: float) -> float:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = float(raw)
            except ValueError as error:
                raise ValueError(f"{name} must be a number, got {raw!r}") from error
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {raw!r}")
            return value

        return cls(
            max_pipelines=int(number("O4O_MAX_PIPELINES", defaults.max_pipelines)),
            max_ssh_sessions=int(number("O4O_MAX_SSH_SESSIONS", defaults.max_ssh_sessions)),
            drift_interval_seconds=number("O4O_DRIFT_INTERVAL_SECONDS", defaults.drift_interval_seconds),
            stall_recheck_seconds=number("O4O_STALL_RECHECK_SECONDS", defaults.stall_recheck_seconds),
            lightsail_endpoint_url=env.get("O4O_LIGHTSAIL_ENDPOINT_URL") or None,
            route53_endpoint_url=env.get("O4O_ROUTE53_ENDPOINT_URL") or None,
            aws_max_attempts=int(number("O4O_AWS_MAX_ATTEMPTS", defaults.aws_max_attempts)),
            ssh_connect_timeout=number("O4O_SSH_CONNECT_TIMEOUT", defaults.ssh_connect_timeout),
            cloud_poll_interval=number("O4O_CLOUD_POLL_INTERVAL", defaults.cloud_poll_interval),
        )
