"""The operator's Prometheus metrics, defined once.

Owns: metric names, help texts and label sets. Labels are bounded vocabularies
(stage names, CamelCase reasons, operation names, outcomes); only the
certificate expiry and the backup gauges are per instance, and the fleet gauges per fleet. Must not hold free
text or secrets.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from o4o_operator.errors import reason_label

REGISTRY = CollectorRegistry(auto_describe=True)

INSTANCES = Gauge("o4o_instances", "DeploymentInstances by phase.", ["phase"], registry=REGISTRY)
STAGE_DURATION = Histogram(
    "o4o_stage_duration_seconds",
    "Time one attempt of a stage took.",
    ["stage", "outcome"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600),
    registry=REGISTRY,
)
STAGE_FAILURES = Counter(
    "o4o_stage_failures_total", "Failed stage attempts by reason.", ["stage", "reason"], registry=REGISTRY
)


def count_stage_failure(stage: str, reason: str) -> None:
    """One failed attempt; a reason outside the known vocabulary counts as ``Other``."""
    STAGE_FAILURES.labels(stage=stage, reason=reason_label(reason)).inc()


RECONCILES = Counter(
    "o4o_reconcile_total", "Reconcile passes by result: success, error, stalled, paused or requeued.", ["result"],
    registry=REGISTRY,
)
CLOUD_REQUESTS = Counter(
    "o4o_cloud_requests_total", "Cloud API calls by operation and outcome.", ["operation", "outcome"],
    registry=REGISTRY,
)
SSH_COMMANDS = Counter("o4o_ssh_commands_total", "Remote commands by outcome.", ["outcome"], registry=REGISTRY)
PIPELINES_IN_FLIGHT = Gauge("o4o_pipelines_in_flight", "Pipelines running right now.", registry=REGISTRY)
CERTIFICATE_EXPIRY = Gauge(
    "o4o_certificate_expiry_timestamp_seconds",
    "When each instance's TLS certificate expires (Unix time).",
    ["namespace", "name"],
    registry=REGISTRY,
)
BACKUP_LAST_SUCCESS = Gauge(
    "o4o_backup_last_success_timestamp_seconds",
    "When each instance's newest successful database backup was made (Unix time).",
    ["namespace", "name"],
    registry=REGISTRY,
)
BACKUP_SIZE = Gauge(
    "o4o_backup_size_bytes", "The size of each instance's newest backup: its database dump and its uploads archive.",
    ["namespace", "name"],
    registry=REGISTRY,
)
BACKUP_DURATION = Gauge(
    "o4o_backup_duration_seconds", "How long each instance's newest database backup took (dump and upload).",
    ["namespace", "name"], registry=REGISTRY,
)
FLEET_MEMBERS = Gauge(
    "o4o_fleet_members",
    "A DeploymentFleet's members on its current target, by state: updated, rolling, failed, pending.",
    ["namespace", "fleet", "state"],
    registry=REGISTRY,
)
FLEET_HALTED = Gauge(
    "o4o_fleet_rollout_halted", "1 while a DeploymentFleet's rollout is halted (failureThreshold reached).",
    ["namespace", "fleet"], registry=REGISTRY,
)


def record_fleet(namespace: str, fleet: str, updated: int, failed: int, pending: int, total: int,
                 halted: bool) -> None:
    """Set one fleet's gauges from the status its last pass wrote."""
    rolling = max(0, total - updated - failed - pending)
    for state, value in (("updated", updated), ("rolling", rolling), ("failed", failed), ("pending", pending)):
        FLEET_MEMBERS.labels(namespace=namespace, fleet=fleet, state=state).set(value)
    FLEET_HALTED.labels(namespace=namespace, fleet=fleet).set(1 if halted else 0)
