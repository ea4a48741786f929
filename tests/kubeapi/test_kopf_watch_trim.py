"""What Kopf keeps of each object it lists and watches: no ``managedFields``, strings shared, and of a
DeploymentInstance's status only what the handlers read (real apiserver)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from kopf._cogs.clients import auth, fetching, watching
from kopf._cogs.structs import credentials, references

from o4o_operator import handlers, kopf_watch_trim
from o4o_operator.models import GROUP, PLURAL, VERSION
from o4o_operator.models_fleet import FLEET_PLURAL
from o4o_operator.runner.fleet import summarize_member
from o4o_operator.testing import ControlPlane

CONFIGMAPS = references.Resource(group="", version="v1", plural="configmaps", namespaced=True)
INSTANCES = references.Resource(group=GROUP, version=VERSION, plural=PLURAL, namespaced=True)
FLEETS = references.Resource(group=GROUP, version=VERSION, plural=FLEET_PLURAL, namespaced=True)
READY_STATUS: dict[str, Any] = {
    "phase": "Ready", "observedGeneration": 2, "lastCheckTime": "2026-12-07T04:00:00Z",
    "conditions": [
        {"type": "Ready", "status": "True", "reason": "AllStagesSucceeded", "message": "All 9 stages succeeded",
         "lastTransitionTime": "2026-12-07T04:00:00Z", "observedGeneration": 2},
        {"type": "Reconciling", "status": "False", "reason": "Idle", "message": "Nothing to do",
         "lastTransitionTime": "2026-12-07T04:00:00Z", "observedGeneration": 2},
        {"type": "Stalled", "status": "False", "reason": "NotStalled", "message": "",
         "lastTransitionTime": "2026-12-07T04:00:00Z", "observedGeneration": 2}],
    "source": {"commit": "0123456789abcdef0123456789abcdef01234567", "repository": "https://example.com/o4o.git"},
    "server": {"name": "shop-host.test", "ipAddress": "198.51.100.5"},
    "stages": [{"name": "provision", "state": "Succeeded", "message": "Provisioned", "attempts": 1}],
    "logTail": ["04:00:00 [provision] a line of the log"] * 3,
}


@pytest.fixture
async def kopf_logged_in(control_plane: ControlPlane) -> AsyncIterator[None]:
    """Kopf's API calls authenticated as the admin, as after its login handler."""
    assert control_plane.pki is not None
    vault = credentials.Vault()
    await vault.populate({"admin": credentials.ConnectionInfo(
        server=control_plane.server, ca_path=str(control_plane.pki.ca_cert),
        certificate_path=str(control_plane.pki.admin_cert), private_key_path=str(control_plane.pki.admin_key))})
    token = auth.vault_var.set(vault)
    yield
    auth.vault_var.reset(token)
    await vault.close()


def _create_configmap(plane: ControlPlane, namespace: str, name: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"key": "value"}}
    plane.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(body))


async def _listed_and_watched(plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    """The objects Kopf's watch-stream yields: the one listed, then the one created after the listing."""
    _create_configmap(plane, namespace, "listed")
    objects: list[dict[str, Any]] = []
    stream = watching.infinite_watch(settings=kopf.OperatorSettings(), resource=CONFIGMAPS, namespace=namespace,
                                     _iterations=1)
    async with asyncio.timeout(30):
        async for event in stream:
            if event is watching.Bookmark.LISTED:
                await asyncio.to_thread(_create_configmap, plane, namespace, "watched")
                continue
            assert isinstance(event, dict)
            if event["type"] in (None, "ADDED"):
                objects.append(event["object"])
            if len(objects) == 2:
                break
    await stream.aclose()
    return objects


async def test_kopf_alone_keeps_managed_fields(control_plane: ControlPlane, namespace: str,
                                               kopf_logged_in: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watching, "continuous_watch", kopf_watch_trim._KOPF_WATCH)
    objects = await _listed_and_watched(control_plane, namespace)
    assert [obj["metadata"]["name"] for obj in objects] == ["listed", "watched"]
    assert all(obj["metadata"].get("managedFields") for obj in objects)  # what this module exists to drop


async def test_installed_kopf_keeps_no_managed_fields(control_plane: ControlPlane, namespace: str,
                                                      kopf_logged_in: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watching, "continuous_watch", kopf_watch_trim._KOPF_WATCH)
    kopf_watch_trim.install()
    kopf_watch_trim.install()  # twice is once
    objects = await _listed_and_watched(control_plane, namespace)
    assert [obj["metadata"]["name"] for obj in objects] == ["listed", "watched"]
    assert all("managedFields" not in obj["metadata"] for obj in objects)
    assert all(obj["data"] == {"key": "value"} and obj["metadata"]["resourceVersion"] for obj in objects)


def test_kopf_keeps_of_an_instances_status_what_the_handlers_read_and_no_more() -> None:
    body = {"metadata": {"name": "shop", "namespace": "team", "uid": "uid-1", "generation": 2},
            "spec": {"source": {"revision": "main"}}, "status": READY_STATUS}
    full = json.loads(json.dumps(body))

    kept = kopf_watch_trim.compacted({"type": "MODIFIED", "object": body}, summarize_status=True)["object"]

    assert kept["status"] == {
        "phase": "Ready", "observedGeneration": 2, "source": {"commit": READY_STATUS["source"]["commit"]},
        "conditions": [{"type": "Ready", "status": "True", "reason": "AllStagesSucceeded",
                        "message": "All 9 stages succeeded"},
                       {"type": "Stalled", "status": "False", "reason": "NotStalled", "message": ""}]}
    assert summarize_member(kept) == summarize_member(full)  # the fleets' index reads the same
    assert kept["spec"] == full["spec"] and kept["metadata"] == full["metadata"]
    stalled = {**READY_STATUS, "phase": "Failed", "conditions": [
        {"type": "Stalled", "status": "True", "reason": "InvalidSpec", "message": "spec.dns.zone: bad"}]}
    kept = kopf_watch_trim.compacted({"type": "MODIFIED", "object": {**full, "status": stalled}},
                                     summarize_status=True)["object"]
    assert summarize_member(kept) == summarize_member({**full, "status": stalled})
    assert kept["status"]["phase"] == "Failed"


def test_other_objects_and_an_instance_without_a_status_keep_theirs() -> None:
    fleet = {"metadata": {"name": "fleet"}, "status": {"waves": [{"name": "canary", "updated": 1}]}}
    assert kopf_watch_trim.compacted({"type": "MODIFIED", "object": json.loads(json.dumps(fleet))})["object"] == fleet
    new = {"metadata": {"name": "shop"}, "spec": {}}
    assert kopf_watch_trim.compacted({"type": "ADDED", "object": dict(new)}, summarize_status=True)["object"] == new
    assert kopf_watch_trim.is_instance_resource(INSTANCES)
    assert not kopf_watch_trim.is_instance_resource(FLEETS) and not kopf_watch_trim.is_instance_resource(CONFIGMAPS)


async def test_installed_kopf_keeps_only_the_summary_of_an_instances_status(
        control_plane: ControlPlane, namespace: str, kopf_logged_in: None, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DeploymentInstance",
                "metadata": {"name": "shop", "namespace": namespace},
                "spec": {"domain": "shop.example.com", "provider": {"existing": {"host": "shop-host.test"}},
                         "ssh": {"privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}},
                         "source": {"repository": "https://example.com/o4o.git", "revision": "main"},
                         "tls": {"email": "ops@example.com"}}}
    control_plane.kubectl("create", "-f", "-", input=json.dumps(manifest))
    control_plane.kubectl("patch", "di", "shop", "-n", namespace, "--subresource=status", "--type=merge",
                          "-p", json.dumps({"status": READY_STATUS}))
    stored = json.loads(control_plane.kubectl("get", "di", "shop", "-n", namespace, "-o", "json").stdout)
    assert stored["status"]["logTail"] and stored["status"]["stages"]  # the schema keeps what was written
    monkeypatch.setattr(watching, "continuous_watch", kopf_watch_trim._KOPF_WATCH)
    kopf_watch_trim.install()

    stream = watching.infinite_watch(settings=kopf.OperatorSettings(), resource=INSTANCES, namespace=namespace,
                                     _iterations=1)
    async with asyncio.timeout(30):
        async for event in stream:
            if isinstance(event, dict) and event["type"] is None:
                listed = event["object"]
                break
    await stream.aclose()

    assert listed["status"] == kopf_watch_trim.status_summary(stored["status"])
    assert set(listed["status"]) == {"phase", "observedGeneration", "source", "conditions"}
    assert summarize_member(listed) == summarize_member(stored)


async def test_kopf_lists_the_instances_a_chunk_at_a_time(
        control_plane: ControlPlane, namespace: str, kopf_logged_in: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not all instances' whole bodies decoded at once as the operator starts (bench P4: the allocator kept that
    peak). The chunk is 2 here, so that 3 instances take two LISTs."""
    for name in ("one", "two", "three"):
        control_plane.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps({
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "DeploymentInstance", "metadata": {"name": name},
            "spec": {"domain": f"{name}.example.com", "provider": {"existing": {"host": "shop-host.test"}},
                     "ssh": {"privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}},
                     "source": {"repository": "https://example.com/o4o.git", "revision": "main"},
                     "tls": {"email": "ops@example.com"}}}))
    monkeypatch.setattr(handlers, "LIST_CHUNK_SIZE", 2)
    settings = kopf.OperatorSettings()
    handlers.configure_kopf(settings)

    chunks = [len(chunk) async for chunk, _ in fetching.fetch_objs(
        settings=settings, resource=INSTANCES, namespace=namespace, logger=logging.getLogger("test"))]

    assert chunks == [2, 1]


def test_bookmarks_and_errors_pass_unchanged() -> None:
    error = {"type": "ERROR", "object": {"code": 410}}
    assert kopf_watch_trim.compacted(watching.Bookmark.LISTED) is watching.Bookmark.LISTED
    assert kopf_watch_trim.compacted(error) == {"type": "ERROR", "object": {"code": 410}}


def test_objects_stay_equal_and_share_their_keys_and_short_strings() -> None:
    def decoded() -> dict[str, Any]:
        text = json.dumps({"metadata": {"name": "shop", "managedFields": [{"manager": "kopf"}]}, "status": {
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-07T04:00:00Z"}],
            "logTail": ["04:00:00 [configure] " + "a long line, unique to its instance " * 3]}})
        return dict(json.loads(text))

    first, second = (kopf_watch_trim.compacted({"type": "MODIFIED", "object": decoded()})["object"]
                     for _ in range(2))
    expected = decoded()
    del expected["metadata"]["managedFields"]
    assert first == second == expected
    one, other = first["status"]["conditions"][0], second["status"]["conditions"][0]
    assert all(a is b for a, b in zip(one, other, strict=True))  # the keys
    assert one["lastTransitionTime"] is other["lastTransitionTime"] and one["status"] is other["status"]
    assert first["status"]["logTail"][0] is not second["status"]["logTail"][0]  # long: left as decoded


def test_it_refuses_a_kopf_of_another_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    async def reshaped(**_: object) -> AsyncIterator[object]:
        """A future Kopf whose watch no longer lists the way the wrapper expects."""
        yield watching.Bookmark.LISTED

    monkeypatch.setattr(kopf_watch_trim, "_KOPF_WATCH", reshaped)
    monkeypatch.setattr(watching, "continuous_watch", reshaped)
    with pytest.raises(kopf_watch_trim.KopfWatchShapeChanged):
        kopf_watch_trim.install()
