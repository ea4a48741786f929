"""What grows with the number of instances, kept from growing worse than it must (bench P1 at 500).

The ``o4o_instances{phase}`` gauge is tallied per watch event without scanning every instance: every status
write comes back as a watch event, and a scan per event made N deployments cost O(N^2) of the operator's one
event loop. The Kubernetes client's connections grow with the pipelines.
"""

from __future__ import annotations

from typing import NoReturn

from o4o_operator import metrics
from o4o_operator.kubeapi import Credentials
from o4o_operator.models import Phase
from o4o_operator.providers import aws
from o4o_operator.runner.runtime import OperatorState, build_runtime
from o4o_operator.runner.settings import OperatorSettings


def _gauge() -> dict[str, float]:
    return {phase.value: metrics.INSTANCES.labels(phase=phase.value)._value.get() for phase in Phase}


def test_the_gauge_follows_instances_through_their_phases_and_deletion() -> None:
    state = OperatorState(OperatorSettings())
    state.saw_phase("a", Phase.PENDING.value)
    state.saw_phase("b", Phase.PENDING.value)
    state.saw_phase("a", Phase.PROVISIONING.value)
    state.saw_phase("a", Phase.PROVISIONING.value)  # a status write that kept the phase
    state.saw_phase("c", Phase.READY.value)
    state.saw_phase("c", None)  # deleted
    state.saw_phase("c", None)  # a second DELETED event (a relist) changes nothing
    state.saw_phase("zz", None)  # never seen

    gauge = _gauge()
    assert gauge[Phase.PENDING.value] == 1
    assert gauge[Phase.PROVISIONING.value] == 1
    assert gauge[Phase.READY.value] == 0
    assert sum(gauge.values()) == 2


class _NoScans(dict[str, str]):
    """The per-instance phases, refusing to be walked: one event must not look at every instance."""

    def values(self) -> NoReturn:
        raise AssertionError("saw_phase scanned every instance")

    def items(self) -> NoReturn:
        raise AssertionError("saw_phase scanned every instance")

    def __iter__(self) -> NoReturn:
        raise AssertionError("saw_phase scanned every instance")


def test_one_event_does_not_scan_every_instance() -> None:
    state = OperatorState(OperatorSettings())
    state._phases = _NoScans({f"uid-{index}": Phase.READY.value for index in range(1000)})
    state.saw_phase("uid-1", Phase.INSTALLING.value)
    state.saw_phase("uid-2", None)
    state.saw_phase("new", Phase.PENDING.value)


def test_the_kubernetes_client_has_more_connections_for_more_pipelines() -> None:
    """Each pipeline waits on at most one Kubernetes call at a time: with 20 connections for 500 pipelines,
    the calls queued for a connection, and the API server's latency times 25 was every stage boundary's."""
    credentials = Credentials(server="https://127.0.0.1:6443")
    try:
        few = build_runtime(OperatorSettings(), credentials, honour_sandbox_root=False)
        many = build_runtime(OperatorSettings(max_pipelines=500), credentials, honour_sandbox_root=False)
    finally:
        aws.configure_pool(aws.DEFAULT_POOL_SIZE)  # build_runtime sized the process-wide AWS pool
    assert few.kube._connections == 20
    assert many.kube._connections >= 100
