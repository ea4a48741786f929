"""The Kubernetes requests of a DeploymentFleet's controller: its members and its own status.

Owns: creating a member DeploymentInstance (owned by the fleet: ownerReference with ``controller: true``),
pinning a member's ``spec.source.revision`` and deleting a member, each only behind the resourceVersion or
uid of the body in which the fleet was seen as the member's controller (so a DeploymentInstance the fleet
does not own is never written), taking the promote annotation away once it released its wave, and
merge-patching the fleet's status subresource. Never reads a list:
members come from the controller's watch cache. Must not decide anything (runner/fleet.py does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from o4o_operator.kubeapi_transport import ApiError, KubeTransport, api_path
from o4o_operator.models import GROUP, KIND, PLURAL, VERSION
from o4o_operator.models_fleet import FLEET_KIND, FLEET_PLURAL

_PREFIX = f"/apis/{GROUP}/{VERSION}"
_MERGE = "application/merge-patch+json"
NO_RETRY: frozenset[int] = frozenset({429, 500, 502, 503, 504})
"""A precondition failure (409) is not retried with the same body: the next pass decides again."""


def owner_reference(fleet: Mapping[str, Any]) -> dict[str, Any]:
    meta = fleet["metadata"]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": FLEET_KIND, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


async def create_member(api: KubeTransport, namespace: str, name: str, labels: Mapping[str, str],
                        owner: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    """Create the member; False when a DeploymentInstance of that name already exists (never replaced)."""
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels), "ownerReferences": [owner]},
            "spec": dict(spec)}
    try:
        await api.request("POST", api_path(_PREFIX, "namespaces", namespace, PLURAL), body=body, retry_on=NO_RETRY)
    except ApiError as error:
        if error.status == 409:
            return False
        raise
    return True


async def pin_member(api: KubeTransport, namespace: str, name: str, resource_version: str, commit: str) -> bool:
    """Set the member's ``spec.source.revision`` to ``commit``, only if it is still the version the fleet saw
    (in which the fleet is its controller); False when it changed or is gone (the next pass looks again)."""
    body = {"metadata": {"resourceVersion": resource_version}, "spec": {"source": {"revision": commit}}}
    try:
        await api.request("PATCH", api_path(_PREFIX, "namespaces", namespace, PLURAL, name), body=body,
                          content_type=_MERGE, retry_on=NO_RETRY)
    except ApiError as error:
        if error.status in (404, 409):
            return False
        raise
    return True


async def delete_member(api: KubeTransport, namespace: str, name: str, uid: str) -> None:
    """Delete the member of ``uid`` (a precondition: never another object of that name); its own finalizer
    applies its ``deletionPolicy``."""
    body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}}
    try:
        await api.request("DELETE", api_path(_PREFIX, "namespaces", namespace, PLURAL, name), body=body,
                          retry_on=NO_RETRY)
    except ApiError as error:
        if error.status not in (404, 409):
            raise


async def take_promotion(api: KubeTransport, namespace: str, name: str, annotation: str, wave: str) -> None:
    """Remove the fleet's ``annotation`` only while it still names ``wave`` (a JSON patch's test: a promotion
    of another wave set meanwhile stays); gone already, or changed, is fine (the next pass looks again)."""
    pointer = "/metadata/annotations/" + annotation.replace("~", "~0").replace("/", "~1")
    body = [{"op": "test", "path": pointer, "value": wave}, {"op": "remove", "path": pointer}]
    try:
        await api.request("PATCH", api_path(_PREFIX, "namespaces", namespace, FLEET_PLURAL, name), body=body,
                          content_type="application/json-patch+json", retry_on=NO_RETRY)
    except ApiError as error:
        if error.status not in (404, 409, 422):
            raise


async def patch_fleet_status(api: KubeTransport, namespace: str, name: str, status: Mapping[str, Any]) -> None:
    try:
        await api.request("PATCH", api_path(_PREFIX, "namespaces", namespace, FLEET_PLURAL, name) + "/status",
                          body={"status": dict(status)}, content_type=_MERGE)
    except ApiError as error:
        if error.status != 404:
            raise
