"""Status fields that become empty are cleared in the stored object, not just left out of the patch."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from stage_fakes import (
    FINGERPRINT,
    FakeKube,
    RecordingConnector,
    RecordingSession,
    make_runtime,
    spec_body,
    static_resolver,
)

from o4o_operator import kopf_watch_trim
from o4o_operator.kubeapi import Credentials, KubeApi
from o4o_operator.models import DeploymentInstanceStatus, ServerStatus, merge_patch
from o4o_operator.runner.worker import InstanceWorker
from o4o_operator.testing import ControlPlane

PINNED = DeploymentInstanceStatus(server=ServerStatus(name="old-host.test", ip_address="198.51.100.1",
                                                      host_key_fingerprint=FINGERPRINT),
                                  last_check_time="2026-01-01T00:00:00Z")
CLEARED = DeploymentInstanceStatus(server=ServerStatus(name="old-host.test", ip_address="198.51.100.1"))


def test_merge_patch_nulls_what_vanished_and_keeps_lists_whole() -> None:
    before = {"a": 1, "gone": "x", "nested": {"keep": 1, "gone": 2}, "list": [1, 2], "dropped": {"x": 1}}
    after = {"a": 2, "nested": {"keep": 1}, "list": [1], "new": True}

    assert merge_patch(before, after) == {"a": 2, "gone": None, "nested": {"keep": 1, "gone": None},
                                          "list": [1], "new": True, "dropped": None}
    assert merge_patch(None, after) == after


@pytest.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[KubeApi]:
    assert control_plane.pki is not None
    api = KubeApi(Credentials(server=control_plane.server, ca_path=str(control_plane.pki.ca_cert),
                              certificate_path=str(control_plane.pki.admin_cert),
                              private_key_path=str(control_plane.pki.admin_key)))
    yield api
    await api.close()


def _create(plane: ControlPlane, namespace: str, host: str) -> dict[str, Any]:
    manifest = {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance",
                "metadata": {"name": "shop", "namespace": namespace},
                "spec": spec_body(provider={"existing": {"host": host}})}
    plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    return _get(plane, namespace)


def _get(plane: ControlPlane, namespace: str) -> dict[str, Any]:
    return json.loads(plane.kubectl("get", "di", "shop", "-n", namespace, "-o", "json").stdout)  # type: ignore[no-any-return]


class _Holder:
    """The worker's view of the object, as Kopf would keep it current."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def __call__(self) -> dict[str, Any]:
        return self.body


async def test_a_field_set_then_cleared_is_gone_from_the_stored_object(
        control_plane: ControlPlane, namespace: str, kube: KubeApi) -> None:
    holder = _Holder(_create(control_plane, namespace, "old-host.test"))
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), static_resolver({}))
    runtime.kube = kube
    worker = await InstanceWorker.resumed(runtime, holder)
    assert worker is not None

    assert await worker.write_status(PINNED)
    stored = _get(control_plane, namespace)["status"]
    assert stored["server"]["hostKeyFingerprint"] == FINGERPRINT and stored["lastCheckTime"]

    assert await worker.write_status(CLEARED)
    stored = _get(control_plane, namespace)["status"]
    assert "hostKeyFingerprint" not in stored["server"]
    assert "lastCheckTime" not in stored
    assert stored["server"]["name"] == "old-host.test"

    writes = kube.writes
    assert not await worker.write_status(CLEARED)  # nothing changed: nothing written
    assert kube.writes == writes


async def test_a_worker_started_on_a_stored_status_clears_what_it_read(
        control_plane: ControlPlane, namespace: str, kube: KubeApi) -> None:
    """After a restart, the worker's baseline is what the API held (read from the API: Kopf's copy holds only a
    summary of the status), so its first write can still clear."""
    _create(control_plane, namespace, "old-host.test")
    await kube.patch_status(namespace, "shop", PINNED.to_body())
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), static_resolver({}))
    runtime.kube = kube
    as_kopf_keeps = kopf_watch_trim.compacted({"type": None, "object": _get(control_plane, namespace)},
                                              summarize_status=True)["object"]
    assert "server" not in as_kopf_keeps["status"]
    worker = await InstanceWorker.resumed(runtime, _Holder(as_kopf_keeps))
    assert worker is not None

    assert await worker.write_status(CLEARED)

    assert "hostKeyFingerprint" not in _get(control_plane, namespace)["status"]["server"]


async def test_changing_the_existing_host_clears_the_old_hosts_fingerprint(
        control_plane: ControlPlane, namespace: str, kube: KubeApi) -> None:
    holder = _Holder(_create(control_plane, namespace, "old-host.test"))
    resolver = static_resolver({"old-host.test": ["198.51.100.1"], "new-host.test": ["198.51.100.2"]})
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), resolver)
    runtime.kube = kube
    worker = await InstanceWorker.resumed(runtime, holder)
    assert worker is not None
    assert await worker.step(holder.body) is None  # provision on the old host
    # The first SSH session pins the old host's key, as InstanceContext.session() records it.
    server = worker.status.server.model_copy(update={"host_key_fingerprint": FINGERPRINT})
    await worker.write_status(worker.status.model_copy(update={"server": server}))
    assert _get(control_plane, namespace)["status"]["server"]["hostKeyFingerprint"] == FINGERPRINT

    control_plane.kubectl("patch", "di", "shop", "-n", namespace, "--type=merge",
                          "-p", json.dumps({"spec": {"provider": {"existing": {"host": "new-host.test"}}}}))
    holder.body = _get(control_plane, namespace)
    assert await worker.step(holder.body) is None  # provision again, on the new host

    stored = _get(control_plane, namespace)["status"]
    assert stored["stages"][0]["name"] == "provision" and stored["stages"][0]["state"] == "Succeeded"
    assert stored["server"]["name"] == "new-host.test"
    assert stored["server"]["ipAddress"] == "198.51.100.2"
    assert "hostKeyFingerprint" not in stored["server"]

