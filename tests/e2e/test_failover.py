"""Two operator replicas on one Lease, end to end: failover mid-build, and a frozen leader that wakes up deposed.

Each test starts two real operator processes (leader election on, a short lease so the module stays quick)
against the sandbox world, holds the build's ``pnpm run build`` on the server (the shim waits on a gate file)
so that the leader is caught mid-build, and then kills or freezes the leader.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import module_namespaces, status_writes, wait_for

from o4o_operator.pipeline.epoch import Epoch
from o4o_operator.providers.ownership import server_name
from o4o_operator.runner.leader import LOST_EXIT_STATUS
from o4o_operator.testing import ControlPlane, SandboxHost
from o4o_operator.testing.operator_process import OperatorProcess
from o4o_operator.testing.world import LocalWorld

LEASE_SECONDS, RENEW_DEADLINE_SECONDS, RETRY_SECONDS = 6, 4, 1
_leases = itertools.count(1)


@pytest.fixture(scope="module")
def world(control_plane: ControlPlane) -> Iterator[LocalWorld]:
    """The world without its single operator: each test starts its own two replicas."""
    local = LocalWorld(control_plane, namespaces=module_namespaces(__name__))
    local.start(with_operator=False)
    try:
        yield local
    finally:
        local.stop()


class Replicas:
    """Replicas ``a`` and ``b`` (their ``POD_NAME``) on the Lease ``<namespace>/<lease>``."""

    def __init__(self, world: LocalWorld, namespace: str) -> None:
        self.world = world
        self.namespace = namespace
        self.lease = f"failover-{next(_leases)}"
        self.processes: dict[str, OperatorProcess] = {}

    def start(self, name: str) -> OperatorProcess:
        env = {**self.world.operator_environment(), "POD_NAME": name, "O4O_LEADER_ELECTION": "true",
               "O4O_LEASE_NAMESPACE": self.namespace, "O4O_LEASE_NAME": self.lease,
               "O4O_LEASE_DURATION_SECONDS": str(LEASE_SECONDS),
               "O4O_RENEW_DEADLINE_SECONDS": str(RENEW_DEADLINE_SECONDS),
               "O4O_RETRY_PERIOD_SECONDS": str(RETRY_SECONDS)}
        process = OperatorProcess(self.world.control_plane.kubeconfig,
                                  self.world.directory / f"{self.lease}-{name}.log", env=env,
                                  namespaces=self.world.namespaces)
        process.start()  # live (the standby answers its probe too)
        self.processes[name] = process
        return process

    def lease_spec(self) -> dict[str, Any]:
        result = self.world.control_plane.kubectl("get", "lease", self.lease, "-n", self.namespace, "-o", "json",
                                                  check=False)
        return dict(json.loads(result.stdout)["spec"]) if result.returncode == 0 else {}

    def wait_for_holder(self, name: str, timeout: float) -> float:
        """Seconds until ``name`` holds the Lease (polling the apiserver, bounded by ``timeout``)."""
        started = time.monotonic()
        while self.lease_spec().get("holderIdentity") != name:
            assert time.monotonic() - started < timeout, (
                f"{name} does not hold the Lease after {timeout} s: {self.lease_spec()}\n"
                + "\n".join(f"--- {n}:\n{p.output()[-3000:]}" for n, p in self.processes.items()))
            time.sleep(0.2)
        return time.monotonic() - started

    def stop(self) -> None:
        for process in self.processes.values():
            if process.process is not None and process.process.poll() is None:
                process.process.send_signal(signal.SIGCONT)
            process.stop()


@pytest.fixture
def replicas(world: LocalWorld, namespace: str) -> Iterator[Replicas]:
    made = Replicas(world, namespace)
    yield made
    made.stop()


def held_build(world: LocalWorld, namespace: str, name: str) -> tuple[SandboxHost, Path]:
    """The instance's server (made before the cloud asks for it) with its site build held at a gate."""
    host = world.fleet.host_for(server_name(namespace, name))
    return host, host.hold_command("pnpm", args_contain="run build")


def wait_until_held(host: SandboxHost, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not any("run build" in " ".join(call.argv) for call in host.commands("pnpm")):
        assert time.monotonic() < deadline, "the build never started"
        time.sleep(0.2)  # polling the shim log, bounded by the deadline


def epochs_run(host: SandboxHost) -> list[str]:
    """The epoch each shimmed command on the host ran under, in order."""
    return [call.env.get("O4O_EPOCH", "") for call in host.commands()]


def fence_file(host: SandboxHost, name: str) -> str:
    path = host.path(f"/var/lib/o4o/{name}")
    return path.read_text() if path.exists() else ""


def test_killing_the_leader_mid_build_hands_over_within_a_lease_and_gives_one_server(
        world: LocalWorld, namespace: str, replicas: Replicas) -> None:
    replicas.start("a")
    replicas.wait_for_holder("a", timeout=30)
    replicas.start("b")
    world.create_secrets(namespace)
    host, gate = held_build(world, namespace, "failover")
    try:
        world.apply(world.manifest("failover", namespace))
        wait_until_held(host)
        first_epochs = set(epochs_run(host))
        assert len(first_epochs) == 1  # everything so far ran under a's term
        (a_epoch,) = first_epochs
        assert Epoch.from_token(a_epoch).transitions == 0
        replicas.processes["a"].kill()  # SIGKILL mid-build
        took_over = replicas.wait_for_holder("b", timeout=LEASE_SECONDS + 10)
        print(f"standby held the Lease {took_over:.1f} s later (lease {LEASE_SECONDS} s)")  # a figure
        obj = wait_for(world, namespace, "failover", "condition=Ready")
    finally:
        gate.touch()
    servers = [s for s in world.lightsail.resources_for_uid(obj["metadata"]["uid"]) if s.startswith("Instance/")]
    assert len(servers) == 1, servers
    assert replicas.lease_spec()["leaseTransitions"] == 1
    b_epoch = fence_file(host, "fence-epoch").strip()
    assert Epoch.from_token(b_epoch).transitions == 1 and Epoch.from_token(a_epoch) < Epoch.from_token(b_epoch)
    ran = epochs_run(host)
    assert ran[-1] == b_epoch and a_epoch not in ran[ran.index(b_epoch):], ran  # nothing of a's after b's began
    for line in fence_file(host, "fence-refused").splitlines():  # a's held build, if still running, was stopped
        assert f"of epoch {a_epoch} for epoch {b_epoch}" in line, line


def test_a_leader_frozen_past_its_lease_does_nothing_more_when_it_wakes(
        world: LocalWorld, namespace: str, replicas: Replicas) -> None:
    a = replicas.start("a")
    replicas.wait_for_holder("a", timeout=30)
    replicas.start("b")
    world.create_secrets(namespace)
    host, gate = held_build(world, namespace, "frozen")
    try:
        world.apply(world.manifest("frozen", namespace))
        wait_until_held(host)
        (a_epoch,) = set(epochs_run(host))
        assert a.process is not None
        a.process.send_signal(signal.SIGSTOP)  # frozen mid-build, its SSH session open
        took_over = replicas.wait_for_holder("b", timeout=LEASE_SECONDS + 10)
        print(f"standby held the Lease {took_over:.1f} s later (lease {LEASE_SECONDS} s)")  # a figure
        wait_for(world, namespace, "frozen", "condition=Ready")
    finally:
        gate.touch()
    writes, commands, sessions = status_writes(world), len(host.commands()), host.sshd_log().count("Accepted")
    a.process.send_signal(signal.SIGCONT)
    try:
        exit_status = a.process.wait(timeout=RENEW_DEADLINE_SECONDS + 30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the woken leader did not stop:\n{a.output()[-4000:]}")
    assert exit_status == LOST_EXIT_STATUS, a.output()[-4000:]
    assert "Stopped leading" in a.output()
    assert status_writes(world) == writes, "the deposed leader wrote status"
    assert len(host.commands()) == commands, host.commands()[commands:]
    assert host.sshd_log().count("Accepted") == sessions, "the deposed leader opened an SSH session"
    assert wait_for(world, namespace, "frozen", "condition=Ready")["status"]["phase"] == "Ready"
    b_epoch = fence_file(host, "fence-epoch").strip()
    assert Epoch.from_token(a_epoch) < Epoch.from_token(b_epoch)
    for line in fence_file(host, "fence-refused").splitlines():  # if a's command reached the host, it was refused
        assert f"refused epoch {a_epoch}: epoch {b_epoch} is recorded" in line or \
            f"of epoch {a_epoch} for epoch {b_epoch}" in line, line


def test_a_rolling_restart_of_both_replicas_during_twenty_pipelines(
        world: LocalWorld, namespace: str, replicas: Replicas) -> None:
    """As the Deployment's RollingUpdate does it (maxSurge 1, maxUnavailable 0): a new replica starts, then an
    old one is stopped (SIGTERM: it releases the Lease), twice, while twenty instances are on their way."""
    replicas.start("a")
    replicas.wait_for_holder("a", timeout=30)
    replicas.start("b")
    world.create_secrets(namespace)
    names = [f"roll-{index}" for index in range(20)]
    for name in names:
        world.apply(world.manifest(name, namespace))
    deadline = time.monotonic() + 120
    while len([s for s in world.lightsail.servers() if namespace in s.name]) < 5:
        assert time.monotonic() < deadline, "the pipelines never got going"
        time.sleep(0.5)  # polling the local cloud, bounded by the deadline
    handovers = []
    for old, new in (("a", "c"), ("b", "d")):
        replicas.start(new)
        leader = replicas.lease_spec().get("holderIdentity")
        stopped = time.monotonic()
        replicas.processes[old].stop()
        if leader == old:
            while replicas.lease_spec().get("holderIdentity") in (old, ""):
                assert time.monotonic() - stopped < 60, replicas.lease_spec()
                time.sleep(0.2)  # polling the Lease, bounded
            handovers.append(time.monotonic() - stopped)
    objects = [wait_for(world, namespace, name, "condition=Ready", timeout=900) for name in names]
    for obj in objects:
        servers = [s for s in world.lightsail.resources_for_uid(obj["metadata"]["uid"]) if s.startswith("Instance/")]
        assert len(servers) == 1, (obj["metadata"]["name"], servers)
    world.control_plane.kubectl("delete", "di", "--all", "-n", namespace, "--wait=false")
    result = world.control_plane.kubectl("wait", "--for=delete", "di", "--all", "-n", namespace, "--timeout=600s",
                                         check=False, timeout=660)
    left = world.control_plane.kubectl("get", "di", "-n", namespace, "-o", "name").stdout.split()
    assert left == [], f"stuck finalizers: {left}\n{result.stderr}"
    assert [s.name for s in world.lightsail.servers() if namespace in s.name] == []
    assert len(handovers) >= 1 and all(seconds < LEASE_SECONDS + 20 for seconds in handovers), handovers
