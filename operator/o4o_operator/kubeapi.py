"""The operator's own small Kubernetes client, for what Kopf does not write for us.

Owns: reading referenced Secrets (and setting the operator's own finalizers on
them, never their data), creating, extending and deleting the one Secret the
operator owns per instance (only ever its own, by the ownership test below),
merge-patching the status subresource (with retries on 409/429/5xx that never
lose the patch), posting Events, and writing
and deleting the per-instance log ConfigMap, only ever one that the operator
made for that instance (a JSON-patch ``test`` of our label and owner first).
Releasing both for ``deletionPolicy: Retain`` (our ownerReference removed, so no
garbage collector takes them) and adopting a released one again, for an
instance of the same name (:meth:`KubeApi.release_owned`, :meth:`KubeApi.adopt_released`).
Built on :mod:`o4o_operator.kubeapi_transport` (aiohttp, which Kopf already uses),
so the heavy ``kubernetes`` client is never imported at runtime.
Must not decide anything, and must never log a Secret's data.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from o4o_operator.errors import InvalidSpecError, TransientError
from o4o_operator.kubeapi_transport import RETRYABLE, ApiError, Credentials, KubeTransport, api_path, path_segment
from o4o_operator.models import GROUP, KIND, PLURAL, VERSION

__all__ = ["FIELD_MANAGER", "MANAGED_BY_LABEL", "RETAINED_FROM_ANNOTATION", "ApiError", "Credentials", "KubeApi",
           "OwnedKind", "SecretData", "api_path", "path_segment"]

FIELD_MANAGER = "o4o-operator"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
"""With value ``FIELD_MANAGER``: set on every object the operator creates, and checked before it touches one."""
RETAINED_FROM_ANNOTATION = f"{GROUP}/retained-from"
"""Set, with the old instance's uid, on an object released for ``deletionPolicy: Retain``; removed on adoption."""
_JSON_PATCH = "application/json-patch+json"
OwnedKind = Literal["secrets", "configmaps"]
"""The kinds of object the operator makes per instance: the Secret ``<name>-database``, the ConfigMap ``<name>-log``."""
_CONTENDED: dict[OwnedKind, str] = {"secrets": "SecretContended", "configmaps": "ConfigMapContended"}
"""The reason for an object of each kind the operator owns that kept changing under a guarded write."""
_RETRYABLE = RETRYABLE


@dataclasses.dataclass(frozen=True)
class SecretData:
    name: str
    resource_version: str
    data: Mapping[str, str] = dataclasses.field(repr=False)
    finalizers: tuple[str, ...] = ()
    deleting: bool = False
    """The Secret has a deletionTimestamp: it stays readable only while a finalizer holds it."""
    managed_by: str | None = None
    """Its ``app.kubernetes.io/managed-by`` label."""
    controller_uid: str | None = None
    """The uid of its first ownerReference (what the ownership test looks at)."""


class KubeApi(KubeTransport):
    """The requests the operator makes, each a typed method over :meth:`KubeTransport.request`."""

    # ---- typed helpers -------------------------------------------------------

    @staticmethod
    def instance_path(namespace: str, name: str) -> str:
        return api_path(f"/apis/{GROUP}/{VERSION}", "namespaces", namespace, PLURAL, name)

    async def get_instance(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request("GET", self.instance_path(namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return result

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch the status subresource. Lists (conditions, stages) are always whole."""
        try:
            await self.request("PATCH", self.instance_path(namespace, name) + "/status",
                               body={"status": status}, content_type="application/merge-patch+json")
        except ApiError as error:
            if error.status != 404:  # the object is gone: nothing left to report on
                raise

    async def read_secret(self, namespace: str, name: str, field: str) -> SecretData:
        """A Secret's decoded data. Missing Secret is a permanent error naming ``field``."""
        try:
            path = api_path("/api/v1", "namespaces", namespace, "secrets", name)
        except ValueError as error:
            raise InvalidSpecError(field, f"{name!r} is not a Secret name", reason="InvalidSecretName") from error
        try:
            raw = await self.request("GET", path)
        except ApiError as error:
            if error.status == 404:
                raise InvalidSpecError(field, f"Secret {name!r} not found in namespace {namespace!r}",
                                       reason="SecretNotFound") from error
            if error.status == 403:
                raise InvalidSpecError(field, f"the operator may not read Secret {name!r}",
                                       reason="SecretForbidden") from error
            if error.status == 400:
                raise InvalidSpecError(field, f"{name!r} is not a Secret name", reason="InvalidSecretName") \
                    from error
            raise
        decoded = {key: base64.b64decode(value).decode(errors="replace")
                   for key, value in (raw.get("data") or {}).items()}
        meta = raw["metadata"]
        owners = meta.get("ownerReferences") or [{}]
        return SecretData(name, meta["resourceVersion"], decoded, tuple(meta.get("finalizers") or ()),
                          bool(meta.get("deletionTimestamp")), (meta.get("labels") or {}).get(MANAGED_BY_LABEL),
                          owners[0].get("uid"))

    async def set_secret_finalizer(self, namespace: str, name: str, finalizer: str, *, present: bool) -> bool:
        """Add (``present``) or remove one finalizer of a Secret; say whether the Secret now is as asked.

        A merge patch of the whole list with the resourceVersion read, so another controller's
        finalizer is never lost (a conflict reads again). A missing Secret has nothing to remove;
        a Secret being deleted can get no new finalizer (the apiserver refuses it): both answer False
        for an add. Secret data is neither logged nor returned.
        """
        path = api_path("/api/v1", "namespaces", namespace, "secrets", name)
        for _ in range(5):
            try:
                meta = (await self.request("GET", path))["metadata"]
            except ApiError as error:
                if error.status == 404:
                    return not present
                raise
            finalizers = list(meta.get("finalizers") or [])
            if (finalizer in finalizers) is present:
                return True
            if present and meta.get("deletionTimestamp"):
                return False
            wanted = [*finalizers, finalizer] if present else [f for f in finalizers if f != finalizer]
            patch = {"metadata": {"resourceVersion": meta["resourceVersion"], "finalizers": wanted or None}}
            try:
                await self.request("PATCH", path, body=patch, content_type="application/merge-patch+json",
                                   retry_on=_RETRYABLE - {409})
                return True
            except ApiError as error:
                if error.status == 404:
                    return not present
                if error.status == 422 and present:  # deleted since we read it: no new finalizers
                    return False
                if error.status != 409:
                    raise
        raise TransientError("SecretContended", f"Secret {name!r} kept changing while its finalizer was set")

    async def create_secret(self, namespace: str, name: str, data: Mapping[str, str], owner: Mapping[str, Any],
                            labels: Mapping[str, str]) -> bool:
        """Create a Secret owned by ``owner`` (our ``managed-by`` label, ``owner`` its controller); False when
        one of that name exists already (whoever made it). Its data is neither logged nor returned."""
        meta = owner["metadata"]
        body = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": {**labels, MANAGED_BY_LABEL: FIELD_MANAGER},
                         "ownerReferences": [_owner_reference(meta)]},
            "data": _encoded(data),
        }
        try:
            await self.request("POST", api_path("/api/v1", "namespaces", namespace, "secrets"), body=body,
                               params={"fieldManager": FIELD_MANAGER}, retry_on=_RETRYABLE - {409})
        except ApiError as error:
            if error.status == 409:
                return False
            raise
        return True

    async def add_secret_data(self, namespace: str, name: str, data: Mapping[str, str], owner_uid: str) -> bool:
        """Add keys to a Secret this operator made for ``owner_uid`` (the ownership test and the write are one
        JSON patch); False, touching nothing, when it is not ours."""
        path = api_path("/api/v1", "namespaces", namespace, "secrets", name)
        write = [*_ownership_tests(owner_uid),
                 *({"op": "add", "path": "/data/" + key.replace("~", "~0").replace("/", "~1"), "value": value}
                   for key, value in _encoded(data).items())]
        try:
            await self.request("PATCH", path, body=write, content_type="application/json-patch+json",
                               params={"fieldManager": FIELD_MANAGER})
        except ApiError as error:
            if error.status == 422:
                return False
            raise
        return True

    async def delete_secret(self, namespace: str, name: str, owner_uid: str) -> bool:
        """Delete the Secret if this operator made it for ``owner_uid``; False (touching nothing) if not ours."""
        return await self._delete_owned(api_path("/api/v1", "namespaces", namespace, "secrets", name), owner_uid)

    async def post_event(self, instance: Mapping[str, Any], reason: str, message: str, *,
                         warning: bool = False) -> None:
        meta = instance["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "reason": reason, "message": message[:1024], "type": "Warning" if warning else "Normal",
            "source": {"component": FIELD_MANAGER}, "firstTimestamp": now[:19] + "Z", "lastTimestamp": now[:19] + "Z",
            "count": 1,
        }
        with contextlib.suppress(ApiError, TransientError):  # events are best-effort; status carries the truth
            await self.request("POST", api_path("/api/v1", "namespaces", meta["namespace"], "events"), body=event)

    async def apply_configmap(self, namespace: str, name: str, data: Mapping[str, str],
                              owner: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
        """Create a ConfigMap owned by ``owner``, or replace the data of the one it already owns.

        Returns False, touching nothing, when a ConfigMap of that name exists and is not ours: one
        without our ``managed-by`` label and ``owner`` as its first ownerReference. The ownership
        test and the write are one JSON patch, so nothing foreign is overwritten even in a race.
        """
        meta = owner["metadata"]
        path = api_path("/api/v1", "namespaces", namespace, "configmaps", name)
        write = [*_ownership_tests(meta["uid"]), {"op": "add", "path": "/data", "value": dict(data)}]
        for _ in range(2):  # a ConfigMap created or deleted by someone else between our two calls
            try:
                await self.request("PATCH", path, body=write, content_type="application/json-patch+json",
                                   params={"fieldManager": FIELD_MANAGER})
                return True
            except ApiError as error:
                if error.status not in (404, 422):
                    raise
                if error.status == 422:
                    owned = await self._owned(path, meta["uid"])
                    if owned is False:
                        return False
                    if owned:
                        raise  # ours, yet refused: a real error
            body = {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": {**labels, MANAGED_BY_LABEL: FIELD_MANAGER},
                             "ownerReferences": [_owner_reference(meta)]},
                "data": dict(data),
            }
            try:
                await self.request("POST", api_path("/api/v1", "namespaces", namespace, "configmaps"), body=body,
                                   params={"fieldManager": FIELD_MANAGER}, retry_on=_RETRYABLE - {409})
                return True
            except ApiError as error:
                if error.status != 409:
                    raise
        raise TransientError("ConfigMapContended", f"ConfigMap {name!r} kept changing while it was written")

    async def delete_configmap(self, namespace: str, name: str, owner_uid: str) -> bool:
        """Delete the ConfigMap if it is ours (as :meth:`apply_configmap` decides); False if it is not."""
        return await self._delete_owned(api_path("/api/v1", "namespaces", namespace, "configmaps", name),
                                        owner_uid)

    async def _delete_owned(self, path: str, owner_uid: str) -> bool:
        try:
            current = await self.request("PATCH", path, body=_ownership_tests(owner_uid),
                                         content_type="application/json-patch+json")
        except ApiError as error:
            if error.status == 404:
                return True
            if error.status == 422:
                return False
            raise
        # Preconditions: exactly the object the ownership test passed on, not one made since.
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {
            "uid": current["metadata"]["uid"], "resourceVersion": current["metadata"]["resourceVersion"]}}
        try:
            await self.request("DELETE", path, body=options, retry_on=_RETRYABLE - {409})
        except ApiError as error:
            if error.status != 404:
                raise
        return True

    async def release_owned(self, kind: OwnedKind, namespace: str, name: str, owner_uid: str) -> bool:
        """Release our Secret or ConfigMap (``kind``: ``secrets``, ``configmaps``) for ``deletionPolicy: Retain``.

        Only one that passes the ownership test for ``owner_uid``: its ownerReference to that instance is
        removed (others stay) and :data:`RETAINED_FROM_ANNOTATION` names the uid; labels and data stay.
        False, touching nothing, when there is nothing of ours to release (gone, foreign, released already).
        """
        path = api_path("/api/v1", "namespaces", namespace, kind, name)
        for _ in range(3):  # changed between the ownership test and the write: test again
            try:
                current = await self.request("PATCH", path, body=_ownership_tests(owner_uid), content_type=_JSON_PATCH)
            except ApiError as error:
                if error.status in (404, 422):
                    return False
                raise
            meta = current["metadata"]
            others = [ref for ref in meta["ownerReferences"] if ref.get("uid") != owner_uid]
            write = [{"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                     {"op": "add", "path": "/metadata/annotations",
                      "value": {**(meta.get("annotations") or {}), RETAINED_FROM_ANNOTATION: owner_uid}},
                     {"op": "add", "path": "/metadata/ownerReferences", "value": others} if others
                     else {"op": "remove", "path": "/metadata/ownerReferences"}]
            if await self._write_unchanged(path, write):
                return True
        raise TransientError(_CONTENDED[kind], f"{kind} {name!r} kept changing while it was released")

    async def read_owned_configmap(self, namespace: str, name: str, owner_uid: str) -> dict[str, str] | None:
        """The data of ConfigMap ``name`` if this operator made it for ``owner_uid`` (the same test as
        :func:`_ownership_tests`, by a GET: no write); None when it is gone or not ours."""
        try:
            current = await self.request("GET", api_path("/api/v1", "namespaces", namespace, "configmaps", name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        meta = current.get("metadata") or {}
        references = meta.get("ownerReferences") or []
        if (meta.get("labels") or {}).get(MANAGED_BY_LABEL) != FIELD_MANAGER or not references \
                or references[0].get("uid") != owner_uid:
            return None
        return {str(key): str(value) for key, value in (current.get("data") or {}).items()}

    async def adopt_released(self, kind: OwnedKind, namespace: str, name: str, owner: Mapping[str, Any],
                             labels: Mapping[str, str]) -> dict[str, Any] | None:
        """Adopt a Secret or ConfigMap the operator made and released (or lost its controller), for ``owner``.

        Only one with our ``managed-by`` label and all of ``labels`` (the instance label names the instance)
        and no controller: ``owner`` becomes its controller (its first ownerReference, so the ownership
        test passes), :data:`RETAINED_FROM_ANNOTATION` goes, labels and data stay. Returns the adopted
        object's ``data`` (as stored: a Secret's base64); None, touching nothing, when it is not adoptable
        (gone, foreign, another instance's, or controlled by anyone).
        """
        path = api_path("/api/v1", "namespaces", namespace, kind, name)
        reference = _owner_reference(owner["metadata"])
        for _ in range(3):
            try:
                current = await self.request("PATCH", path, body=_ownership_tests(None), content_type=_JSON_PATCH)
            except ApiError as error:
                if error.status in (404, 422):
                    return None
                raise
            meta = current["metadata"]
            present = meta.get("labels") or {}
            references = meta.get("ownerReferences") or []
            if any(present.get(key) != value for key, value in labels.items()) or \
                    any(ref.get("controller") for ref in references):
                return None
            annotations = {key: value for key, value in (meta.get("annotations") or {}).items()
                           if key != RETAINED_FROM_ANNOTATION}
            write = [{"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                     {"op": "add", "path": "/metadata/ownerReferences", "value": [reference, *references]},
                     {"op": "add", "path": "/metadata/annotations", "value": annotations}]
            if await self._write_unchanged(path, write):
                return dict(current.get("data") or {})
        raise TransientError(_CONTENDED[kind], f"{kind} {name!r} kept changing while it was adopted")

    async def _write_unchanged(self, path: str, write: list[dict[str, Any]]) -> bool:
        """Apply a JSON patch whose first operation tests the resourceVersion; False if the object changed."""
        try:
            await self.request("PATCH", path, body=write, content_type=_JSON_PATCH,
                               params={"fieldManager": FIELD_MANAGER})
        except ApiError as error:
            if error.status in (404, 409, 422):
                return False
            raise
        return True

    async def _owned(self, path: str, owner_uid: str) -> bool | None:
        """Whether the object at ``path`` passes the ownership test (None: it is gone)."""
        try:
            await self.request("PATCH", path, body=_ownership_tests(owner_uid),
                               content_type="application/json-patch+json")
        except ApiError as error:
            if error.status == 404:
                return None
            if error.status == 422:
                return False
            raise
        return True


def _ownership_tests(owner_uid: str | None) -> list[dict[str, str]]:
    """JSON-patch ``test`` operations that pass only on an object this operator made for ``owner_uid``
    (None: made by this operator, for whichever instance)."""
    made = {"op": "test", "path": "/metadata/labels/" + MANAGED_BY_LABEL.replace("~", "~0").replace("/", "~1"),
            "value": FIELD_MANAGER}
    if owner_uid is None:
        return [made]
    return [made, {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": owner_uid}]


def _owner_reference(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta``'s instance as the controller of an object the operator makes (no blocking of its deletion)."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": False}


def _encoded(data: Mapping[str, str]) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
