"""Typed views of a DeploymentFleet: one template rolled across many DeploymentInstances in waves.

Owns: the pydantic models that mirror ``crds/deploymentfleets.deploy.o4o.io.yaml`` (spec and status),
the fleet's names (kind, plural, annotations), and :func:`member_spec`, the pure merge of the template
with one member's domain and overrides into a DeploymentInstance spec. Purely computational: no I/O,
no Kopf, no clients. What to roll when is decided in :mod:`o4o_operator.pipeline.fleet_rollout`.
"""

from __future__ import annotations

import copy
import enum
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from o4o_operator.models import GROUP, Condition, SecretRef

FLEET_KIND = "DeploymentFleet"
FLEET_PLURAL = "deploymentfleets"
PROMOTE_ANNOTATION = f"{GROUP}/promote"
"""Set on the fleet to the name of a wave whose ``maxUnavailable: 0`` gate is released (for the current target)."""
FLEET_LABEL = f"{GROUP}/fleet"
"""On every member DI: the name of the fleet that owns it (for people and selectors; ownership is the
ownerReference)."""
MEMBER_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LABEL_KEY_PATTERN = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                     r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
DEFAULT_DEADLINE_SECONDS = 3600


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    def to_body(self) -> dict[str, Any]:
        """The camelCase dict for the Kubernetes API, without unset optionals."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _labels(value: Mapping[str, str]) -> Mapping[str, str]:
    for key, label in value.items():
        if len(key) > 253 or not re.fullmatch(LABEL_KEY_PATTERN, key) or len(key.rsplit("/", 1)[-1]) > 63:
            raise ValueError(f"label key {key[:64]!r} is not a Kubernetes label key")
        if len(label) > 63 or not re.fullmatch(LABEL_VALUE_PATTERN, label):
            raise ValueError(f"label {key!r} has a value that is not a Kubernetes label value")
    return value


Labels = Annotated[dict[str, str], AfterValidator(_labels)]


class MemberOverrides(_Model):
    """What one member changes of the template; None keeps the template's."""

    apps: tuple[str, ...] | None = None
    bundle_id: str | None = Field(default=None, max_length=64)
    """The Lightsail bundle (the server's size); only for a template whose provider is Lightsail."""
    env: tuple[SecretRef, ...] | None = None
    api_port: int | None = Field(default=None, ge=1024, le=65535)
    """The port the member's API listens on (``spec.apiPort``): members sharing one existing host need one each."""


class FleetMember(_Model):
    name: str = Field(pattern=MEMBER_NAME_PATTERN, max_length=63)
    domain: str = Field(min_length=1, max_length=253)
    labels: Labels = Field(default_factory=dict)
    overrides: MemberOverrides = Field(default_factory=MemberOverrides)


class LabelSelector(_Model):
    match_labels: Labels = Field(default_factory=dict, min_length=1)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.match_labels.items())


class WaveSpec(_Model):
    """One step of a rollout: which members (exactly one of selector, count, percentage) and how."""

    name: str = Field(pattern=MEMBER_NAME_PATTERN, max_length=63)
    selector: LabelSelector | None = None
    count: int | None = Field(default=None, ge=1)
    percentage: int | None = Field(default=None, ge=1, le=100)
    max_unavailable: int = Field(default=1, ge=0)
    """Members of the wave rolling at once; 0 is a manual gate released by :data:`PROMOTE_ANNOTATION`."""
    bake_seconds: int = Field(default=0, ge=0)
    """How long the wave stays updated and Ready before the next wave starts."""
    deadline_seconds: int = Field(default=DEFAULT_DEADLINE_SECONDS, ge=1)
    """From the wave's start: a member not updated by then has failed (``DeadlineExceeded``)."""

    @model_validator(mode="after")
    def _one_choice(self) -> WaveSpec:
        chosen = [self.selector is not None, self.count is not None, self.percentage is not None]
        if sum(chosen) != 1:
            raise ValueError("a wave chooses its members by exactly one of selector, count and percentage")
        return self


def _unique_waves(waves: tuple[WaveSpec, ...]) -> tuple[WaveSpec, ...]:
    names = [wave.name for wave in waves]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"wave names must be unique: {', '.join(duplicates)}")
    return waves


def _unique_members(members: tuple[FleetMember, ...]) -> tuple[FleetMember, ...]:
    for attribute in ("name", "domain"):
        values = [getattr(member, attribute) for member in members]
        duplicates = sorted({value for value in values if values.count(value) > 1})
        if duplicates:
            raise ValueError(f"member {attribute}s must be unique: {', '.join(duplicates)}")
    return members


def _template(value: dict[str, Any]) -> dict[str, Any]:
    if value.get("domain"):
        raise ValueError("domain is not set in the template; each member has its own")
    return value


CANARY = WaveSpec(name="canary", count=1)
REST = WaveSpec(name="rest", percentage=100)


class RolloutStrategy(_Model):
    waves: Annotated[tuple[WaveSpec, ...], AfterValidator(_unique_waves)] = Field(default=(CANARY, REST),
                                                                                max_length=32)
    """In order. Members no wave takes roll last, in an implicit wave named ``rest``."""


class DeploymentFleetSpec(_Model):
    template: Annotated[dict[str, Any], AfterValidator(_template)]
    """A DeploymentInstance spec without ``domain``: each member's DI is this, with its domain and overrides."""
    members: Annotated[tuple[FleetMember, ...], AfterValidator(_unique_members)] = Field(default=(),
                                                                                        max_length=500)
    strategy: RolloutStrategy = Field(default_factory=RolloutStrategy)
    failure_threshold: int = Field(default=1, ge=1)
    """Failed members (for the current target) at which the rollout halts; 1 halts on the first."""
    paused: bool = False
    """Start nothing new (members already rolling finish)."""


def member_spec(template: Mapping[str, Any], member: FleetMember, revision: str) -> dict[str, Any]:
    """The DeploymentInstance spec (camelCase body) of ``member``: the template, its domain, its overrides,
    and ``spec.source.revision`` pinned to ``revision``. Not validated here (see the runner)."""
    spec = copy.deepcopy(dict(template))
    spec["domain"] = member.domain
    overrides = member.overrides
    if overrides.apps is not None:
        spec["apps"] = list(overrides.apps)
    if overrides.env is not None:
        spec["env"] = [ref.to_body() for ref in overrides.env]
    if overrides.api_port is not None:
        spec["apiPort"] = overrides.api_port
    if overrides.bundle_id is not None:
        spec.setdefault("provider", {}).setdefault("lightsail", {})["bundleId"] = overrides.bundle_id
    spec.setdefault("source", {})["revision"] = revision
    return spec


# ---- status -----------------------------------------------------------------


class WaveState(enum.StrEnum):
    PENDING = "Pending"
    ROLLING = "Rolling"
    WAITING_FOR_PROMOTION = "WaitingForPromotion"
    BAKING = "Baking"
    DONE = "Done"
    HALTED = "Halted"
    PAUSED = "Paused"


class WaveStatus(_Model):
    name: str
    state: WaveState = WaveState.PENDING
    members: int = 0
    updated: int = 0
    failed: int = 0
    pending: int = 0
    started_at: str | None = None
    updated_at: str | None = None
    """When every member of the wave was first seen updated (bake time counts from here)."""


class MemberFailure(_Model):
    member: str
    wave: str
    reason: str
    message: str = ""


class FleetTarget(_Model):
    """The commit every member is pinned to, and what it was resolved from."""

    repository: str
    revision: str
    commit: str


class DeploymentFleetStatus(_Model):
    observed_generation: int = 0
    target: FleetTarget | None = None
    conditions: tuple[Condition, ...] = ()
    waves: tuple[WaveStatus, ...] = ()
    current_wave: str | None = None
    members: int = 0
    updated: int = 0
    ready: int = 0
    failures: tuple[MemberFailure, ...] = ()
    stable_commit: str | None = None
    """The last target every member was updated to: the commit a member added later starts from."""

    def condition(self, condition_type: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == condition_type), None)

    def wave(self, name: str) -> WaveStatus | None:
        return next((w for w in self.waves if w.name == name), None)


def refusal_message(error: ValidationError) -> str:
    """The models' refusal of a fleet spec, its field first (``spec.members.2.name: ...``), as status states it."""
    first = error.errors()[0]
    field = ".".join(["spec", *(str(part) for part in first["loc"])])
    return f"{field}: {first['msg']}"
