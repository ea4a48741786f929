"""R2: a throttling, failing cloud, SSH connections dropped mid-command and 409s from the API: every
instance still converges to Ready (and then deletes cleanly)."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from reliability_support import (
    SSH_STAGES,
    StatusWatch,
    WorldFactory,
    apply_all,
    is_ready,
    list_di,
    metric_samples,
    stage_started,
    wait_di,
    wait_gone,
)

from o4o_operator.testing import ControlPlane, SandboxHost
from o4o_operator.testing.faulty_apiserver import FaultyApiserver
from o4o_operator.testing.world import LocalWorld

pytestmark = pytest.mark.slow

SEED = 2002
INSTANCES = 6
THROTTLE_RATE = 0.30
SERVER_ERROR_RATE = 0.05
SSH_DROP_RATE = 0.10
MAX_SSH_DROPS = 12
MIN_SSH_DROPS = 3
CONFLICT_RATE = 0.10
OPERATOR_WRITES = r"/status$|/configmaps/"
"""The operator's own PATCHes (status, log ConfigMap). Kopf's patches of the object itself are left alone:
Kopf does not retry a 409 there, and waits for the object's next event (a deletion may never get one)."""


def _running_command(host: SandboxHost) -> bool | None:
    """Whether a command runs in one of the host's SSH sessions; None while a login shell starts up.

    Root's shell start-up may run ``pyenv rehash``, which holds a lock file in $HOME: killing it there
    would leave the lock behind and stall every later shell on this machine for a minute. Never drop then.
    """
    commands = []
    for pid in host.session_processes():
        with contextlib.suppress(OSError):
            commands.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    if any("pyenv" in command for command in commands):
        return None
    return any(command and not command.startswith("sshd") for command in commands)


class SshChaos:
    """Drops the SSH connection of an instance mid-command for a seeded share of its SSH stage runs.

    Driven by the status watch: when an SSH stage starts, with probability ``rate`` the host's sessions
    are killed (or, one time in four, its sshd restarted) after a short random delay, at the first moment
    a command runs there. Until ``minimum`` drops have happened or are pending, every SSH stage run is
    chosen, so the test's proof does not rest on luck. A choice that finds no command running within
    ``WATCH_SECONDS`` (the stage was quicker) counts as missed and is given back. Bounded by ``limit``.
    """

    WATCH_SECONDS = 3.0

    def __init__(self, world: LocalWorld, rate: float, limit: int, seed: int, minimum: int) -> None:
        self._world = world
        self._rate = rate
        self._limit = limit
        self._minimum = minimum
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self.stage_runs = 0
        self.chosen = 0
        self.killed_sessions = 0
        self.restarted_sshd = 0
        self.missed = 0

    def on_change(self, name: str, previous: dict[str, Any] | None, current: dict[str, Any]) -> None:
        server = ((current.get("status") or {}).get("server") or {}).get("name")
        for _ in (stage for stage in stage_started(previous, current) if stage in SSH_STAGES):
            with self._lock:
                self.stage_runs += 1
                owed = self.chosen < self._minimum
                if self.chosen >= self._limit or (self._rng.random() >= self._rate and not owed):
                    continue
                self.chosen += 1
                restart = self._rng.random() < 0.25
                delay = self._rng.uniform(0.05, 0.3)  # picks the moment within the command; not a wait
                timer = threading.Timer(delay, self._drop, args=(server, restart))
                self._timers.append(timer)
            timer.start()

    def _drop(self, server: str | None, restart: bool) -> None:
        host = self._world.fleet.hosts.get(server or "")
        deadline = time.monotonic() + self.WATCH_SECONDS
        busy = _running_command(host) if host is not None else False
        while host is not None and not busy and time.monotonic() < deadline:
            time.sleep(0.02)  # fault-injection timing only: looks for the moment a command runs
            busy = _running_command(host)
        if host is None or not busy:
            with self._lock:
                self.missed += 1
                self.chosen -= 1  # given back: a later stage run may be chosen instead
            return
        if restart:
            host.restart()
        else:
            host.kill_sessions()
        with self._lock:
            if restart:
                self.restarted_sshd += 1
            else:
                self.killed_sessions += 1

    @property
    def dropped(self) -> int:
        return self.killed_sessions + self.restarted_sshd

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
            if timer.is_alive():
                timer.join()


def test_everything_converges_to_ready_through_cloud_ssh_and_api_faults(
        control_plane: ControlPlane, worlds: WorldFactory, namespace: str) -> None:
    with FaultyApiserver(control_plane, conflict_rate=CONFLICT_RATE, seed=SEED,
                         path_pattern=OPERATOR_WRITES) as proxy:
        kubeconfig = proxy.write_kubeconfig(proxy.directory / "kubeconfig")
        world = worlds(namespace, seed=SEED, kubeconfig=kubeconfig)
        assert world.operator is not None
        world.lightsail.faults.throttle_rate = THROTTLE_RATE
        world.lightsail.faults.server_error_rate = SERVER_ERROR_RATE
        world.create_secrets(namespace)
        chaos = SshChaos(world, SSH_DROP_RATE, MAX_SSH_DROPS, SEED, minimum=MIN_SSH_DROPS)
        names = [f"fault-{number}" for number in range(INSTANCES)]
        try:
            with StatusWatch(control_plane, namespace, listeners=[chaos.on_change]):
                apply_all(world, [world.manifest(name, namespace) for name in names])
                wait_di(world, namespace, "--all", "condition=Ready", timeout=240)
        finally:
            chaos.stop()
        instances = list_di(world, namespace)
        ready = [obj for obj in instances if is_ready(obj)]
        cloud_calls = len(world.lightsail.request_log)
        throttled = sum(1 for exchange in world.lightsail.exchanges
                        if exchange.response.get("code") == "ThrottlingException")
        broken = sum(1 for exchange in world.lightsail.exchanges if exchange.status >= 500)
        failures = metric_samples(world.operator.metrics(), "o4o_stage_failures_total")
        uids = [obj["metadata"]["uid"] for obj in instances]

        world.control_plane.kubectl("delete", "di", "--all", "-n", namespace, "--wait=false")
        wait_gone(world, namespace, timeout=240)
        leaks = [left for uid in uids if (left := world.lightsail.resources_for_uid(uid))]
        stats = proxy.stats
        print(f"R2: {INSTANCES} DIs, {len(ready)}/{INSTANCES} Ready; cloud: {cloud_calls} calls, "
              f"{throttled} throttled ({THROTTLE_RATE:.0%} asked), {broken} answered 5xx "
              f"({SERVER_ERROR_RATE:.0%} asked); SSH: {chaos.dropped} of {chaos.stage_runs} SSH stage runs dropped "
              f"mid-command ({chaos.killed_sessions} killed sessions, {chaos.restarted_sshd} sshd restarts, "
              f"{chaos.missed} too late); API: {stats.conflicts} of {stats.writes} PATCH/PUT answered 409, "
              f"{stats.watches} watches through the proxy; stage failures {dict(sorted(failures.items()))}; "
              f"after deletion {len(leaks)} leaks, {len(list_di(world, namespace))} DIs left")
        assert len(ready) == INSTANCES
        assert throttled >= cloud_calls * THROTTLE_RATE / 2 and broken >= 1, (throttled, broken, cloud_calls)
        assert chaos.dropped >= 2, "too few SSH connections dropped mid-command to prove anything"
        assert stats.conflicts >= 5 and stats.watches >= 1, stats
        assert leaks == [] and list_di(world, namespace) == []
