"""What the fleet e2e modules share: a recorded watch of the members, and waits on the fleet.

:class:`MemberWatch` is ``kubectl get di -w`` in a namespace: every state of every member the API held, in
the API's order, so that a test can check a rollout's rule on each recorded transition (not on a snapshot
taken after a sleep). :func:`order_violations` is that rule: when a member of a wave is first seen pinned
to the target, every member of every earlier wave is updated to it (pinned, serving the target commit,
its status about its current generation, Ready).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import Any

from o4o_operator.testing.world import LocalWorld

FLEET = "shops"
FIELDS = ('{.metadata.name}|{.spec.source.revision}|{.status.source.commit}|{.metadata.generation}|'
          '{.status.observedGeneration}|{.status.conditions[?(@.type=="Ready")].status}|'
          '{.status.conditions[?(@.type=="Ready")].reason}{"\\n"}')
KEYS = ("name", "revision", "commit", "generation", "observed", "ready", "reason")


def updated_to(state: dict[str, str], commit: str) -> bool:
    """The fleet's rule for a member done with ``commit``, on one recorded state."""
    return (state.get("revision") == commit and state.get("commit") == commit
            and state.get("generation") == state.get("observed") and state.get("ready") == "True")


def ready_only(state: dict[str, str], commit: str) -> bool:
    """A status-only check (argo-cd #29410): Ready, whatever it serves and whichever generation it is about."""
    return state.get("ready") == "True"


class MemberWatch:
    """``kubectl get di -w`` in the namespace: every state of every member, in the API's order."""

    def __init__(self, world: LocalWorld, namespace: str) -> None:
        plane = world.control_plane
        self._process = subprocess.Popen(
            [str(plane.assets / "kubectl"), f"--kubeconfig={plane.kubeconfig}", "get", "di", "-n", namespace,
             "-w", "-o", f"jsonpath={FIELDS}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.states: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            parts = line.rstrip("\n").split("|")
            if len(parts) == len(KEYS):
                with self._lock:
                    self.states.append(dict(zip(KEYS, parts, strict=True)))

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)
        self._reader.join(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def snapshot(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self.states)

    def pinned(self, commit: str) -> list[str]:
        """The members seen pinned to ``commit``, in the order they were first seen so."""
        return list(dict.fromkeys(state["name"] for state in self.snapshot() if state["revision"] == commit))

    def seen(self, name: str) -> list[dict[str, str]]:
        return [state for state in self.snapshot() if state["name"] == name]


def order_violations(states: Sequence[dict[str, str]], target: str, waves: Sequence[Sequence[str]],
                     done: Callable[[dict[str, str], str], bool] = updated_to) -> list[str]:
    """Each member of a wave first seen pinned to ``target`` while a member of an earlier wave was not
    ``done`` with it (by default :func:`updated_to`), in the states as recorded."""
    wave_of = {name: index for index, wave in enumerate(waves) for name in wave}
    latest: dict[str, dict[str, str]] = {}
    started: set[str] = set()
    found = []
    for state in states:
        name = state["name"]
        latest[name] = state
        if state["revision"] != target or name in started or name not in wave_of:
            continue
        started.add(name)
        earlier = [member for wave in waves[:wave_of[name]] for member in wave]
        behind = [member for member in earlier if not (member in latest and done(latest[member], target))]
        if behind:
            found.append(f"{name} (wave {wave_of[name]}) pinned to {target[:8]} while {len(behind)} member(s) of "
                         f"earlier waves were not updated, e.g. {latest.get(behind[0], behind[0])}")
    return found


def fleet_status(world: LocalWorld, namespace: str) -> dict[str, Any]:
    current = world.control_plane.kubectl("get", "dfleet", FLEET, "-n", namespace, "-o", "json")
    return json.loads(current.stdout)  # type: ignore[no-any-return]


def members(world: LocalWorld, namespace: str) -> dict[str, dict[str, Any]]:
    listing = json.loads(world.control_plane.kubectl("get", "di", "-n", namespace, "-o", "json").stdout)
    return {item["metadata"]["name"]: item for item in listing["items"]}


def wait_fleet(world: LocalWorld, namespace: str, condition: str, timeout: int = 150) -> dict[str, Any]:
    """``kubectl wait`` on the fleet; on a timeout, the fleet's status, its members and the operator's log."""
    result = world.control_plane.kubectl("wait", f"--for={condition}", f"dfleet/{FLEET}", "-n", namespace,
                                         f"--timeout={timeout}s", check=False, timeout=timeout + 30)
    current = world.control_plane.kubectl("get", "dfleet", FLEET, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        log = "\n".join(line for line in (world.operator.output() if world.operator else "").splitlines()
                        if "Timer 'roll_fleet' succeeded" not in line)[-5000:]
        status = json.loads(current.stdout).get("status") if current.returncode == 0 else current.stderr
        seen = {name: (m["spec"]["source"]["revision"][:8], m.get("status", {}).get("phase"),
                       [(c["type"], c["status"], c["reason"]) for c in m.get("status", {}).get("conditions", [])
                        if c["type"] in ("Ready", "Stalled")])
                for name, m in members(world, namespace).items()}
        raise AssertionError(f"{condition}: {result.stderr}\nfleet status: {json.dumps(status, indent=1)}\n"
                             f"members: {seen}\noperator log:\n{log}")
    return json.loads(current.stdout)  # type: ignore[no-any-return]


def condition(fleet: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in fleet["status"]["conditions"] if c["type"] == type_)
