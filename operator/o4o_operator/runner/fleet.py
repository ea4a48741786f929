"""One pass of a DeploymentFleet's controller: read, decide (pipeline/fleet_rollout.py), act, report.

Owns: turning the watch cache's member summaries (:func:`summarize_member`, what the Kopf index keeps per
DeploymentInstance) into the planner's :class:`MemberState`, resolving the template's revision once per
change (runner/fleet_source.py; the target is kept in status and reused while the template names the same
repository and revision), carrying out the plan (create, pin, delete; kubeapi_fleet.py writes only what
the fleet owns), writing the fleet's status when it changed, and then taking away a promote annotation
that released its wave. A member the DeploymentInstance schema refuses stalls the fleet
(``MemberRefused``, in the apiserver's words). Reads no list from the API.
Must not decide the rollout itself.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic

from o4o_operator import kubeapi_fleet, metrics
from o4o_operator.errors import StageError
from o4o_operator.kubeapi_transport import ApiError, KubeTransport
from o4o_operator.models import SourceSpec, merge_patch
from o4o_operator.models_fleet import (
    FLEET_LABEL,
    PROMOTE_ANNOTATION,
    DeploymentFleetSpec,
    DeploymentFleetStatus,
    FleetTarget,
    member_spec,
    refusal_message,
)
from o4o_operator.pipeline.fleet_rollout import MemberState, plan, stalled
from o4o_operator.runner.fleet_source import resolve_revision

SecretReader = Any
"""``KubeApi.read_secret``'s shape: ``(namespace, name, field) -> SecretData``."""


def summarize_member(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the watch cache keeps of a DeploymentInstance for fleets: small, and never a Secret's value."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or () if isinstance(c, Mapping)}
    ready, stall = conditions.get("Ready") or {}, conditions.get("Stalled") or {}
    owners = meta.get("ownerReferences") or ()
    controller: Mapping[str, Any] = next((ref for ref in owners if ref.get("controller")), {})
    return {"name": meta.get("name"), "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion"),
            "controllerUid": controller.get("uid"), "generation": meta.get("generation", 1),
            "revision": ((body.get("spec") or {}).get("source") or {}).get("revision"),
            "commit": (status.get("source") or {}).get("commit"),
            "observedGeneration": status.get("observedGeneration", 0),
            "ready": ready.get("status") == "True", "stalled": stall.get("status") == "True",
            "reason": (stall if stall.get("status") == "True" else ready).get("reason", ""),
            "message": (stall if stall.get("status") == "True" else ready).get("message", "")}


def member_states(summaries: Iterable[Mapping[str, Any]], fleet_uid: str,
                  listed: set[str]) -> dict[str, MemberState]:
    """The members the fleet owns, and any DeploymentInstance holding a listed member's name (not owned)."""
    states: dict[str, MemberState] = {}
    for summary in summaries:
        owned = summary.get("controllerUid") == fleet_uid
        name = str(summary.get("name"))
        if owned or name in listed:
            states[name] = MemberState(
                name, owned=owned, pinned_revision=summary.get("revision"), commit=summary.get("commit"),
                generation=int(summary.get("generation") or 1),
                observed_generation=int(summary.get("observedGeneration") or 0), ready=bool(summary.get("ready")),
                stalled=bool(summary.get("stalled")), reason=str(summary.get("reason") or ""),
                message=str(summary.get("message") or ""))
    return states


async def _target(spec: DeploymentFleetSpec, old: DeploymentFleetStatus, namespace: str,
                  read_secret: SecretReader) -> FleetTarget:
    source = SourceSpec.model_validate(spec.template.get("source") or {})
    if old.target is not None and (old.target.repository, old.target.revision) == (source.repository,
                                                                                    source.revision):
        return old.target
    token = None
    if source.credentials_secret_ref is not None:
        field = "spec.template.source.credentialsSecretRef"
        secret = await read_secret(namespace, source.credentials_secret_ref.name, field)
        token = secret.data.get(source.credentials_secret_ref.key)
    commit = await resolve_revision(source.repository, source.revision, token)
    return FleetTarget(repository=source.repository, revision=source.revision, commit=commit)


async def reconcile_fleet(api: KubeTransport, read_secret: SecretReader, body: Mapping[str, Any],
                          summaries: Iterable[Mapping[str, Any]], now: datetime.datetime) -> float | None:
    """One pass; returns when to look again without a change (None: at the next change)."""
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], int(meta.get("generation") or 1)
    written = body.get("status") or {}
    old = DeploymentFleetStatus.model_validate(written)
    try:
        spec = DeploymentFleetSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        await _write(api, namespace, name, written, stalled(old, generation, "InvalidSpec",
                                                            refusal_message(error), now))
        return None
    try:
        target = await _target(spec, old, namespace, read_secret)
    except StageError as error:
        await _write(api, namespace, name, written, stalled(old, generation, error.reason, error.message, now))
        return None
    listed = {member.name for member in spec.members}
    states = member_states(summaries, meta["uid"], listed)
    by_name = {str(summary.get("name")): summary for summary in summaries}
    promoted = (meta.get("annotations") or {}).get(PROMOTE_ANNOTATION)
    decision = plan(spec, generation, target, states, old, promoted, now)
    members = {member.name: member for member in spec.members}
    owner = kubeapi_fleet.owner_reference(body)
    for member_name, commit in decision.create:
        member = members[member_name]
        labels = {**member.labels, FLEET_LABEL: name}
        try:
            await kubeapi_fleet.create_member(api, namespace, member_name, labels, owner,
                                              member_spec(spec.template, member, commit))
        except ApiError as error:
            if error.status != 422:
                raise
            # The DeploymentInstance schema (with its defaults) is the judge of the template: the apiserver
            # names the member's field, which is the template's unless the member overrides it.
            message = f"spec.template (member {member_name}, as the DeploymentInstance schema says): {error}"
            await _write(api, namespace, name, written, stalled(old, generation, "MemberRefused", message, now))
            return None
    for member_name in decision.pin:
        await kubeapi_fleet.pin_member(api, namespace, member_name, str(by_name[member_name]["resourceVersion"]),
                                       target.commit)
    for member_name in decision.delete:
        await kubeapi_fleet.delete_member(api, namespace, member_name, str(by_name[member_name]["uid"]))
    await _write(api, namespace, name, written, decision.status)
    if decision.release_promotion is not None:  # after the status: its startedAt keeps the wave released
        await kubeapi_fleet.take_promotion(api, namespace, name, PROMOTE_ANNOTATION, decision.release_promotion)
    waves = decision.status.waves
    halted = decision.status.condition("Stalled")
    metrics.record_fleet(namespace, name, updated=sum(w.updated for w in waves), failed=sum(w.failed for w in waves),
                         pending=sum(w.pending for w in waves), total=decision.status.members,
                         halted=halted is not None and halted.reason == "RolloutHalted" and halted.status == "True")
    return decision.recheck_seconds


async def _write(api: KubeTransport, namespace: str, name: str, written: Mapping[str, Any],
                 status: DeploymentFleetStatus) -> None:
    """Patch the status only when it differs from what the API holds (a quiet pass writes nothing)."""
    body = status.to_body()
    if body != dict(written):
        await kubeapi_fleet.patch_fleet_status(api, namespace, name, merge_patch(written, body))
