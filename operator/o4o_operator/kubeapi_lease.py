"""The Kubernetes requests of leader election: read, create and replace one ``coordination.k8s.io/v1`` Lease.

Owns: the Lease's paths and the compare-and-swap: a replace carries the resourceVersion that was read, and a
conflict (409, someone else wrote it first) is reported as ``False``, never retried with the same body;
likewise a create that finds the Lease already made. Each call is one attempt (the elector retries on its own
period and deadline). Must not decide anything (:mod:`o4o_operator.pipeline.election` does).
"""

from __future__ import annotations

import dataclasses

from o4o_operator.kubeapi_transport import ApiError, KubeTransport, api_path
from o4o_operator.pipeline.election import LeaseRecord

_PREFIX = "/apis/coordination.k8s.io/v1"
_NO_RETRY: frozenset[int] = frozenset()
"""One attempt per call: the elector's retry period paces the next one."""


class LeaseApi:
    """The Lease ``namespace/name``, through a transport of its own (no write guard: it is what renews)."""

    def __init__(self, transport: KubeTransport, namespace: str, name: str) -> None:
        self.transport = transport
        self.namespace = namespace
        self.name = name

    async def read(self) -> LeaseRecord | None:
        """The Lease, or None if there is none."""
        try:
            body = await self.transport.request("GET", api_path(_PREFIX, "namespaces", self.namespace, "leases",
                                                                self.name), retry_on=_NO_RETRY)
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return LeaseRecord.from_body(body)

    async def create(self, record: LeaseRecord) -> LeaseRecord | None:
        """Create the Lease as ``record`` (any resourceVersion dropped: the apiserver refuses one on a create);
        None when one was made meanwhile (409)."""
        try:
            body = await self.transport.request("POST", api_path(_PREFIX, "namespaces", self.namespace, "leases"),
                                                body=dataclasses.replace(record, resource_version=None).to_body(
                                                    self.namespace, self.name), retry_on=_NO_RETRY)
        except ApiError as error:
            if error.status == 409:
                return None
            raise
        return LeaseRecord.from_body(body)

    async def replace(self, record: LeaseRecord) -> LeaseRecord | None:
        """Replace the Lease with ``record`` if its resourceVersion is still ``record``'s; None on a conflict."""
        try:
            body = await self.transport.request(
                "PUT", api_path(_PREFIX, "namespaces", self.namespace, "leases", self.name),
                body=record.to_body(self.namespace, self.name), retry_on=_NO_RETRY)
        except ApiError as error:
            if error.status in (409, 404):
                return None
            raise
        return LeaseRecord.from_body(body)
