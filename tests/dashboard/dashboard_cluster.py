"""Helpers that put DeploymentInstances into the real control plane the way users and the operator do:
``kubectl apply`` for the spec, ``kubectl patch --subresource=status`` for the status.

The kubectl helpers block, so async tests call them through :func:`asyncio.to_thread` (see ``run``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from dashboard_samples import STATES, manifest

from o4o_dashboard.cache import InstanceCache
from o4o_dashboard.credentials import ApiCredentials, from_kubeconfig
from o4o_dashboard.reflector import Backoff
from o4o_dashboard.service import Dashboard, DashboardConfig
from o4o_operator.testing import ControlPlane

FAST_BACKOFF = Backoff(initial=0.05, maximum=0.5)
SYNC_SECONDS = 30.0


def apply_spec(plane: ControlPlane, namespace: str, name: str, spec_body: Mapping[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", input=manifest(name, namespace, dict(spec_body)))


def patch_status(plane: ControlPlane, namespace: str, name: str, status: Mapping[str, Any]) -> None:
    plane.kubectl("patch", "deploymentinstance", name, "-n", namespace, "--subresource=status",
                  "--type=merge", "-p", json.dumps({"status": status}))


def create_states(plane: ControlPlane, namespace: str, names: tuple[str, ...] = tuple(STATES),
                  states: Mapping[str, tuple[dict[str, Any], dict[str, Any] | None]] = STATES) -> None:
    """One instance per sample state (by default pending, building, ready, failed and paused)."""
    documents = [json.loads(manifest(name, namespace, states[name][0])) for name in names]
    listing = {"apiVersion": "v1", "kind": "List", "items": documents}
    plane.kubectl("apply", "-f", "-", input=json.dumps(listing))
    for name in names:
        status = states[name][1]
        if status is not None:
            patch_status(plane, namespace, name, status)


def post_event(plane: ControlPlane, namespace: str, instance: str, reason: str, message: str) -> None:
    uid = plane.kubectl("get", "deploymentinstance", instance, "-n", namespace, "-o",
                        "jsonpath={.metadata.uid}").stdout.strip()
    plane.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{instance}.", "namespace": namespace},
        "involvedObject": {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance",
                           "name": instance, "namespace": namespace, "uid": uid},
        "reason": reason, "message": message, "type": "Normal", "count": 1,
        "firstTimestamp": "2025-03-01T10:00:00Z", "lastTimestamp": "2025-03-01T10:00:00Z",
        "source": {"component": "o4o-operator"},
    }))


async def run(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking kubectl helper without stalling the dashboard sharing this event loop."""
    return await asyncio.to_thread(function, *args, **kwargs)


def phases(cache: InstanceCache) -> dict[str, str]:
    return {row.name: row.phase for row in cache.rows()}


async def until(cache: InstanceCache, predicate: Callable[[InstanceCache], bool]) -> None:
    await asyncio.wait_for(cache.wait_until(predicate), SYNC_SECONDS)


@asynccontextmanager
async def running_dashboard(credentials: ApiCredentials | None, plane: ControlPlane, namespace: str | None,
                            **config: Any) -> AsyncIterator[Dashboard]:
    """A dashboard on an ephemeral loopback port, synced with the control plane."""
    dashboard = Dashboard(credentials or from_kubeconfig(plane.kubeconfig),
                          DashboardConfig(namespace=namespace, port=0, backoff=FAST_BACKOFF, **config))
    async with dashboard:
        await asyncio.wait_for(dashboard.wait_synced(), SYNC_SECONDS)
        yield dashboard
