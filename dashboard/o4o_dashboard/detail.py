"""View models for one instance: spec summary, conditions, stage timeline, log, events, backups.

Owns: turning a DeploymentInstance body (plus the Events about it) into an
:class:`InstanceDetail`, and an Event body into an :class:`EventView`. The
spec summary is an allow-list of known fields (the backups panel is
:mod:`o4o_dashboard.backups`'s): Secrets appear only as
references (name and key), never as values. Purely computational: no I/O, no
clock (callers pass ``now``).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from o4o_dashboard import bodies
from o4o_dashboard.backups import BackupsView, backups_view
from o4o_dashboard.views import InstanceRow, format_duration, instance_row, iso
from o4o_operator.models import StageState
from o4o_operator.pipeline.stages import STAGES

EVENTS_SHOWN = 20


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    label: str
    value: str


@dataclasses.dataclass(frozen=True, slots=True)
class FieldGroup:
    title: str
    fields: tuple[Field, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ConditionView:
    type: str
    status: str
    reason: str
    message: str
    last_transition: datetime.datetime | None
    observed_generation: int


@dataclasses.dataclass(frozen=True, slots=True)
class StageView:
    name: str
    title: str
    state: str
    attempts: int
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    duration: str
    next_retry_at: datetime.datetime | None
    reason: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class EventView:
    """An Event about an instance, reduced to what the detail page shows."""

    key: str
    involved_namespace: str
    involved_name: str
    involved_uid: str
    type: str
    reason: str
    message: str
    count: int
    last_seen: datetime.datetime | None
    source: str


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceDetail:
    row: InstanceRow
    generation: int
    observed_generation: int
    spec: tuple[FieldGroup, ...]
    status: tuple[FieldGroup, ...]
    conditions: tuple[ConditionView, ...]
    stages: tuple[StageView, ...]
    log_tail: tuple[str, ...]
    events: tuple[EventView, ...]
    backups: BackupsView = dataclasses.field(default_factory=lambda: backups_view({}))

    def to_json(self, now: datetime.datetime) -> dict[str, Any]:
        return {
            **self.row.to_json(now),
            "generation": self.generation,
            "observedGeneration": self.observed_generation,
            "spec": {group.title: {f.label: f.value for f in group.fields} for group in self.spec},
            "status": {group.title: {f.label: f.value for f in group.fields} for group in self.status},
            "conditions": [
                {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message,
                 "lastTransitionTime": iso(c.last_transition), "observedGeneration": c.observed_generation}
                for c in self.conditions
            ],
            "stages": [
                {"name": s.name, "title": s.title, "state": s.state, "attempts": s.attempts,
                 "startedAt": iso(s.started_at), "finishedAt": iso(s.finished_at), "duration": s.duration,
                 "nextRetryAt": iso(s.next_retry_at), "reason": s.reason, "message": s.message}
                for s in self.stages
            ],
            "logTail": list(self.log_tail),
            "events": [
                {"type": e.type, "reason": e.reason, "message": e.message, "count": e.count,
                 "lastSeen": iso(e.last_seen), "source": e.source}
                for e in self.events
            ],
            "backups": self.backups.to_json(),
        }


def event_view(body: Mapping[str, Any]) -> EventView:
    """An Event (core/v1 shape, which also carries events.k8s.io events) for the detail page."""
    last_seen = (bodies.timestamp(body, "lastTimestamp") or bodies.timestamp(body, "eventTime")
                 or bodies.timestamp(body, "series", "lastObservedTime")
                 or bodies.timestamp(body, "metadata", "creationTimestamp"))
    namespace, name = bodies.object_key(body)
    return EventView(
        key=f"{namespace}/{name}",
        involved_namespace=bodies.text(body, "involvedObject", "namespace") or namespace,
        involved_name=bodies.text(body, "involvedObject", "name"),
        involved_uid=bodies.text(body, "involvedObject", "uid"),
        type=bodies.text(body, "type"),
        reason=bodies.text(body, "reason"),
        message=bodies.text(body, "message"),
        count=max(1, bodies.integer(body, "count", default=1), bodies.integer(body, "series", "count")),
        last_seen=last_seen,
        source=bodies.text(body, "source", "component") or bodies.text(body, "reportingComponent"),
    )


def _group(title: str, *fields: tuple[str, str]) -> FieldGroup | None:
    shown = tuple(Field(label, value) for label, value in fields if value)
    return FieldGroup(title, shown) if shown else None


def _secret_ref(ref: Mapping[str, Any], default_key: str = "") -> str:
    """A Secret reference as text: its name and key only."""
    name = bodies.text(ref, "name")
    if not name:
        return ""
    key = bodies.text(ref, "key") or default_key
    return f"Secret {name}" + (f" (key {key})" if key else "")


def spec_groups(spec: Mapping[str, Any]) -> tuple[FieldGroup, ...]:
    """An allow-listed summary of the spec. Secrets are shown as references only."""
    lightsail = bodies.mapping(spec, "provider", "lightsail")
    existing = bodies.mapping(spec, "provider", "existing")
    aws_ref = bodies.mapping(lightsail, "credentialsSecretRef")
    aws_keys = ""
    if aws_ref:
        aws_keys = (f"Secret {bodies.text(aws_ref, 'name')} (keys "
                    f"{bodies.text(aws_ref, 'accessKeyIdKey') or 'aws_access_key_id'}, "
                    f"{bodies.text(aws_ref, 'secretAccessKeyKey') or 'aws_secret_access_key'})")
    groups = [
        _group("Site", ("Domain", bodies.text(spec, "domain")),
               ("Description", bodies.text(spec, "description")),
               ("Apps", ", ".join(bodies.strings(spec, "apps"))),
               ("API port", bodies.text(spec, "apiPort")),
               ("Deletion policy", bodies.text(spec, "deletionPolicy")),
               ("Paused", "yes" if bodies.flag(spec, "paused") else "")),
        _group("Provider", ("Kind", "Lightsail" if lightsail else "Existing host" if existing else ""),
               ("Region", bodies.text(lightsail, "region")),
               ("Availability zone", bodies.text(lightsail, "availabilityZone")),
               ("Bundle", bodies.text(lightsail, "bundleId")),
               ("Blueprint", bodies.text(lightsail, "blueprintId")),
               ("AWS credentials", aws_keys),
               ("Key pair", bodies.text(lightsail, "keyPairName")),
               ("SSH allowed from", ", ".join(bodies.strings(lightsail, "sshAllowedCidrs"))),
               ("Host", bodies.text(existing, "host")),
               ("Port", bodies.text(existing, "port"))),
        _group("SSH", ("User", bodies.text(spec, "ssh", "user")),
               ("Private key", _secret_ref(bodies.mapping(spec, "ssh", "privateKeySecretRef"),
                                           "ssh-privatekey")),
               ("Host key fingerprint", bodies.text(spec, "ssh", "hostKeyFingerprint"))),
        _group("Source", ("Repository", bodies.text(spec, "source", "repository")),
               ("Revision", bodies.text(spec, "source", "revision")),
               ("Credentials", _secret_ref(bodies.mapping(spec, "source", "credentialsSecretRef"), "token"))),
        _group("TLS and DNS", ("ACME email", bodies.text(spec, "tls", "email")),
               ("ACME server", bodies.text(spec, "tls", "server")),
               ("DNS provider", bodies.text(spec, "dns", "provider")),
               ("DNS zone", bodies.text(spec, "dns", "zone")),
               ("Hosted zone", bodies.text(spec, "dns", "hostedZoneId")),
               ("TTL", bodies.text(spec, "dns", "ttl"))),
        _group("Environment", ("Secrets", ", ".join(
            f"Secret {name}" for name in (bodies.text(ref, "name") for ref in bodies.mappings(spec, "env"))
            if name))),
    ]
    return tuple(group for group in groups if group is not None)


def status_groups(status: Mapping[str, Any]) -> tuple[FieldGroup, ...]:
    groups = [
        _group("Server", ("Name", bodies.text(status, "server", "name")),
               ("IP address", bodies.text(status, "server", "ipAddress")),
               ("Static IP", bodies.text(status, "server", "staticIpName")),
               ("Region", bodies.text(status, "server", "region")),
               ("Host key", bodies.text(status, "server", "hostKeyFingerprint"))),
        _group("Deployed", ("Revision", bodies.text(status, "source", "revision")),
               ("Commit", bodies.text(status, "source", "commit")),
               ("Installed apps", ", ".join(bodies.strings(status, "installedApps"))),
               ("Certificate issuer", bodies.text(status, "certificate", "issuer")),
               ("Certificate expires", bodies.text(status, "certificate", "notAfter")),
               ("Last drift check", bodies.text(status, "lastCheckTime"))),
    ]
    return tuple(group for group in groups if group is not None)


def stage_views(status: Mapping[str, Any], now: datetime.datetime) -> tuple[StageView, ...]:
    """All nine stages in pipeline order, with the recorded progress of each."""
    recorded = {bodies.text(stage, "name"): stage for stage in bodies.mappings(status, "stages")}
    views = []
    for stage in STAGES:
        entry = recorded.get(stage.name.value, {})
        state = bodies.text(entry, "state") or StageState.PENDING.value
        started = bodies.timestamp(entry, "startedAt")
        finished = bodies.timestamp(entry, "finishedAt")
        seconds: float | None = None
        if started is not None:
            end = finished if finished is not None and finished >= started else None
            if end is None and state == StageState.RUNNING.value:
                end = now
            seconds = (end - started).total_seconds() if end is not None else None
        views.append(StageView(
            name=stage.name.value, title=stage.title, state=state,
            attempts=bodies.integer(entry, "attempts"), started_at=started, finished_at=finished,
            duration=format_duration(seconds) if seconds is not None else "",
            next_retry_at=bodies.timestamp(entry, "nextRetryAt"),
            reason=bodies.text(entry, "reason"), message=bodies.text(entry, "message"),
        ))
    return tuple(views)


def condition_views(status: Mapping[str, Any]) -> tuple[ConditionView, ...]:
    return tuple(
        ConditionView(type=bodies.text(c, "type"), status=bodies.text(c, "status"),
                      reason=bodies.text(c, "reason"), message=bodies.text(c, "message"),
                      last_transition=bodies.timestamp(c, "lastTransitionTime"),
                      observed_generation=bodies.integer(c, "observedGeneration"))
        for c in bodies.mappings(status, "conditions")
    )


def recent_events(events: Iterable[EventView], uid: str, limit: int = EVENTS_SHOWN) -> tuple[EventView, ...]:
    """Newest first; Events about an earlier object of the same name are left out."""
    own = [event for event in events if not event.involved_uid or not uid or event.involved_uid == uid]
    oldest = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    own.sort(key=lambda event: event.last_seen or oldest, reverse=True)
    return tuple(own[:limit])


def instance_detail(body: Mapping[str, Any], events: Iterable[EventView],
                    now: datetime.datetime) -> InstanceDetail:
    status = bodies.mapping(body, "status")
    row = instance_row(body)
    return InstanceDetail(
        row=row,
        generation=bodies.integer(body, "metadata", "generation"),
        observed_generation=bodies.integer(status, "observedGeneration"),
        spec=spec_groups(bodies.mapping(body, "spec")),
        status=status_groups(status),
        conditions=condition_views(status),
        stages=stage_views(status, now),
        log_tail=tuple(bodies.strings(status, "logTail")),
        events=recent_events(events, row.uid),
        backups=backups_view(status),
    )
