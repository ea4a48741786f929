"""Thin Kopf glue for DeploymentFleets: the members' watch cache and the fleet's periodic pass.

Owns: the Kopf index of DeploymentInstances (a small summary per instance, keyed by namespace, so the
fleet's controller reads its members from the watch cache and never lists them), and the timer that runs
one pass of :func:`o4o_operator.runner.fleet.reconcile_fleet` per fleet, turning runner errors into Kopf's
retries. Registered on import, like :mod:`o4o_operator.handlers` (whose operator-wide state it shares).
"""

from __future__ import annotations

import datetime
from typing import Any

import kopf

from o4o_operator.errors import StageError
from o4o_operator.handlers import RESOURCE, operator_runtime
from o4o_operator.kubeapi_transport import ApiError
from o4o_operator.models import GROUP, VERSION
from o4o_operator.models_fleet import FLEET_PLURAL
from o4o_operator.runner.fleet import reconcile_fleet, summarize_member

FLEET_RESOURCE = (GROUP, VERSION, FLEET_PLURAL)
FLEET_PASS_SECONDS = 2.0
"""How often a fleet looks at its members' cached state (a pass that changes nothing writes nothing)."""


@kopf.index(*RESOURCE)
def fleet_members(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """Every DeploymentInstance's summary, by namespace (what fleets read instead of listing)."""
    return {namespace or "": summarize_member(body)}


@kopf.timer(*FLEET_RESOURCE, interval=FLEET_PASS_SECONDS, initial_delay=0.5)
async def roll_fleet(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    fleet_members: kopf.Index[str, dict[str, Any]] = kwargs["fleet_members"]
    runtime = operator_runtime(memo)
    namespace = body.get("metadata", {}).get("namespace", "")
    try:
        await reconcile_fleet(runtime.kube, runtime.kube.read_secret, body, list(fleet_members.get(namespace, [])),
                              datetime.datetime.now(datetime.UTC))
    except StageError as error:
        raise kopf.TemporaryError(f"{error.reason}: {error}", delay=5) from error
    except ApiError as error:
        raise kopf.TemporaryError(f"Kubernetes API answered {error.status}", delay=5) from error
