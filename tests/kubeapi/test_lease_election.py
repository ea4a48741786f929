"""Leader election and the write guard against the real kube-apiserver: a coordination.k8s.io/v1 Lease."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import AsyncIterator

import pytest

from o4o_operator.fencing import Deposed
from o4o_operator.kubeapi import Credentials, KubeApi
from o4o_operator.kubeapi_lease import LeaseApi
from o4o_operator.kubeapi_transport import KubeTransport
from o4o_operator.pipeline.election import ElectionTimings, lost_reason, renewed
from o4o_operator.runner.leader import LeaderElector
from o4o_operator.testing import ControlPlane

TIMINGS = ElectionTimings(lease_duration=2.0, renew_deadline=1.5, retry_period=0.1)
"""A Lease holds whole seconds. Two, and a renew deadline of 1.5 s: a leader on a loaded 2-core machine (the whole
suite running beside it) renews in time; with one second and 0.6 s it missed a renewal and deposed itself."""



def _credentials(plane: ControlPlane) -> Credentials:
    assert plane.pki is not None
    return Credentials(server=plane.server, ca_path=str(plane.pki.ca_cert),
                       certificate_path=str(plane.pki.admin_cert), private_key_path=str(plane.pki.admin_key))


@pytest.fixture
async def transports(control_plane: ControlPlane) -> AsyncIterator[tuple[KubeTransport, KubeTransport]]:
    first, second = (KubeTransport(_credentials(control_plane), attempts=1) for _ in range(2))
    yield first, second
    await first.close()
    await second.close()


def _lease(plane: ControlPlane, namespace: str) -> dict[str, object]:
    return json.loads(plane.kubectl("get", "lease", "o4o-operator", "-n", namespace, "-o", "json").stdout)  # type: ignore[no-any-return]


async def test_one_elector_acquires_the_other_waits_and_takes_over_within_a_lease_once_renewals_stop(
        control_plane: ControlPlane, namespace: str, transports: tuple[KubeTransport, KubeTransport]) -> None:
    a = LeaderElector(LeaseApi(transports[0], namespace, "o4o-operator"), "replica-a", TIMINGS)
    b = LeaderElector(LeaseApi(transports[1], namespace, "o4o-operator"), "replica-b", TIMINGS)
    term_a = await a.acquire()
    assert term_a.epoch.transitions == 0
    spec = _lease(control_plane, namespace)["spec"]
    assert isinstance(spec, dict)
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"], spec["leaseTransitions"]) == ("replica-a", 2, 0)
    holding = asyncio.create_task(a.hold(term_a))
    standing_by = asyncio.create_task(b.acquire())
    seen: set[str | None] = set()
    async with asyncio.timeout(20):
        while len(seen) < 8:  # renewals, each a new resourceVersion: well past a lease duration of them
            assert not standing_by.done(), "the standby took a Lease that was being renewed"
            current = await b.api.read()  # never block the loop (kubectl would): the electors share it
            assert current is not None and current.holder == "replica-a"
            seen.add(current.resource_version)
            await asyncio.sleep(0.05)  # polling the apiserver for renewals
    holding.cancel()  # a stops renewing (as if it froze)
    loop = asyncio.get_running_loop()
    stopped = loop.time()
    term_b = await asyncio.wait_for(standing_by, timeout=5)
    print(f"took over {loop.time() - stopped:.2f} s after renewals stopped (lease {TIMINGS.lease_duration} s)")
    assert term_b.epoch.transitions == 1 and term_a.epoch < term_b.epoch
    assert _lease(control_plane, namespace)["spec"]["holderIdentity"] == "replica-b"  # type: ignore[index]
    # what the old leader's next renewal reads: b's Lease, so it is deposed at once. (Its term ran out by its
    # own clock before b could take over, as it must: that renewal gets 10 ms, which a loaded machine may not
    # give it, and then the deadline deposes it; either way it is over.)
    assert lost_reason(await a.api.read(), "replica-a", term_a.epoch) == \
        "the Lease is held by replica-b (leaseTransitions 1)"
    await a.renew(term_a)
    assert term_a.deposed is not None


async def test_a_lease_deleted_and_made_again_gives_the_next_leader_a_newer_epoch(
        control_plane: ControlPlane, namespace: str, transports: tuple[KubeTransport, KubeTransport]) -> None:
    """``kubectl delete lease`` (or a re-install of the manifests): leaseTransitions starts again at 0 in the Lease
    made anew, while the epoch, the apiserver's revision of the winning write first, still rises."""
    a = LeaderElector(LeaseApi(transports[0], namespace, "o4o-operator"), "replica-a", TIMINGS)
    b = LeaderElector(LeaseApi(transports[1], namespace, "o4o-operator"), "replica-b", TIMINGS)
    first = await a.acquire()
    await a.release(first)  # a clean stop, so that b takes the Lease at once, in its second transition
    second = await b.acquire()
    assert (first.epoch.transitions, second.epoch.transitions) == (0, 1) and first.epoch < second.epoch
    assert second.epoch.revision == int(_lease(control_plane, namespace)["metadata"]["resourceVersion"])  # type: ignore[index]

    control_plane.kubectl("delete", "lease", "o4o-operator", "-n", namespace)
    third = await a.acquire()  # a makes the Lease again
    spec = _lease(control_plane, namespace)["spec"]
    assert isinstance(spec, dict) and (spec["holderIdentity"], spec["leaseTransitions"]) == ("replica-a", 0)
    print(f"epochs {first.epoch} < {second.epoch} < {third.epoch} (the Lease deleted after the second)")
    assert third.epoch.transitions < second.epoch.transitions  # what the epoch was alone, and went back
    assert second.epoch < third.epoch
    await b.renew(second)  # the deposed leader finds the Lease made anew, held by a: deposed at once
    assert second.deposed == "the Lease is held by replica-a (leaseTransitions 0)"


async def test_a_replace_behind_a_stale_resource_version_is_a_conflict_and_the_elector_reads_again(
        control_plane: ControlPlane, namespace: str, transports: tuple[KubeTransport, KubeTransport]) -> None:
    api = LeaseApi(transports[0], namespace, "o4o-operator")
    elector = LeaderElector(api, "replica-a", TIMINGS)
    term = await elector.acquire()
    stale = await api.read()
    assert stale is not None
    control_plane.kubectl("label", "lease", "o4o-operator", "-n", namespace, "touched=yes")
    assert await api.replace(renewed(stale, datetime.datetime.now(datetime.UTC))) is None
    await elector.renew(term)  # its own record is stale too: conflict, read again, renew
    assert term.deposed is None
    assert _lease(control_plane, namespace)["metadata"]["resourceVersion"] != stale.resource_version  # type: ignore[index]
    assert await api.create(stale) is None  # a second create finds the Lease: no error, no overwrite


async def test_a_deposed_leader_writes_no_status(control_plane: ControlPlane, namespace: str,
                                                 transports: tuple[KubeTransport, KubeTransport]) -> None:
    term = await LeaderElector(LeaseApi(transports[0], namespace, "o4o-operator"), "replica-a", TIMINGS).acquire()
    kube = KubeApi(_credentials(control_plane), write_guard=term.check)
    control_plane.kubectl("create", "configmap", "witness", "-n", namespace)
    try:
        await kube.post_event({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "witness", "namespace": namespace, "uid": "u"}},
                              "Leading", "written while leading")
        assert kube.writes == 1
        term.depose("the Lease is held by replica-b (leaseTransitions 1)")
        with pytest.raises(Deposed, match=r"Refused to (POST|PATCH) .*no longer leads"):
            await kube.patch_status(namespace, "witness", {"phase": "Ready"})
        with pytest.raises(Deposed):
            await kube.post_event({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "witness", "namespace": namespace, "uid": "u"}},
                                  "Deposed", "never written")
        assert kube.writes == 1
        events = json.loads(control_plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
        assert [event["reason"] for event in events["items"]] == ["Leading"]
    finally:
        await kube.close()


@pytest.mark.parametrize("reuse", [True, False], ids=["reused-connection", "new-connection"])
async def test_a_write_whose_term_ends_while_it_connects_is_never_sent(
        control_plane: ControlPlane, namespace: str, reuse: bool) -> None:
    """The guard is asked again once the connection is ready, after which nothing awaits before the bytes go
    out: a term that ran out while the write waited for its connection refuses it there."""
    asked: dict[str, int] = {}
    refuse_at = 3  # our own check before the attempt, the trace's at the start, then the one once connected

    def guard(what: str) -> None:
        asked[what] = asked.get(what, 0) + 1
        if what.endswith("/late") and asked[what] == refuse_at:
            raise Deposed(f"Refused to {what}: this replica no longer leads (the Lease was not renewed)")

    transport = KubeTransport(_credentials(control_plane), attempts=1, write_guard=guard)
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    try:
        await transport.request("POST", path, body={"metadata": {"name": "early"}})
        if not reuse:
            await transport.close()  # the next write makes its connection anew
        with pytest.raises(Deposed, match="no longer leads"):
            await transport.request("PUT", f"{path}/late", body={"metadata": {"name": "late"}})
    finally:
        await transport.close()
    assert asked == {f"POST {path}": 3, f"PUT {path}/late": 3}
    names = control_plane.kubectl("get", "configmaps", "-n", namespace, "-o", "name").stdout.split()
    assert "configmap/early" in names and "configmap/late" not in names
