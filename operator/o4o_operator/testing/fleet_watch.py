"""A record of every state a namespace's DeploymentInstances went through, for checking a fleet's wave order.

Owns: :class:`MemberWatch`, ``kubectl get di -w`` in one namespace (every state the API held, in its order,
with when this process saw it), and the rollout rule checked on that record: no member of a later wave is
pinned to the target before the first wave's member is updated to it (pinned, serving the target as
``status.source.commit``, its current generation observed, and Ready). Used by the sandbox and booted-host
fleet tests; knows nothing of how the members got there.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Collection

from o4o_operator.testing.controlplane import ControlPlane

FIELDS = ('{.metadata.name}|{.spec.source.revision}|{.status.source.commit}|{.metadata.generation}|'
          '{.status.observedGeneration}|{.status.conditions[?(@.type=="Ready")].status}{"\\n"}')
KEYS = ("name", "revision", "commit", "generation", "observed", "ready")


def updated_to(state: dict[str, str], target: str) -> bool:
    """The fleet's rule for a member counted as updated, on one recorded state."""
    return (state.get("revision") == target and state.get("commit") == target
            and state.get("generation") == state.get("observed") and state.get("ready") == "True")


class MemberWatch:
    """``kubectl get di -w`` in ``namespace``: every state of every DI, in the API's order; :meth:`stop` it."""

    def __init__(self, control_plane: ControlPlane, namespace: str) -> None:
        self._process = subprocess.Popen(
            [str(control_plane.assets / "kubectl"), f"--kubeconfig={control_plane.kubeconfig}", "get", "di",
             "-n", namespace, "-w", "-o", f"jsonpath={FIELDS}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.states: list[dict[str, str]] = []
        """Each state seen, with ``seen``: seconds since the watch began, as text."""
        self._began = time.monotonic()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            parts = line.rstrip("\n").split("|")
            if len(parts) == len(KEYS):
                state = dict(zip(KEYS, parts, strict=True))
                state["seen"] = f"{time.monotonic() - self._began:.1f}"
                self.states.append(state)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)
        self._reader.join(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def pinned(self, commit: str) -> list[str]:
        """The members seen pinned to ``commit``, in the order they were first seen so."""
        return list(dict.fromkeys(state["name"] for state in self.states if state["revision"] == commit))

    def first_seen(self, name: str, target: str, *, updated: bool) -> float | None:
        """When ``name`` was first seen updated to ``target`` (``updated``) or pinned to it; None: never."""
        for state in self.states:
            if state["name"] == name and (updated_to(state, target) if updated else state["revision"] == target):
                return float(state["seen"])
        return None

    def violations(self, target: str, first: str, later: Collection[str]) -> list[str]:
        """:func:`wave_order_violations` of what was recorded so far."""
        return wave_order_violations(list(self.states), target, first, later)


def wave_order_violations(states: list[dict[str, str]], target: str, first: str, later: Collection[str]) -> list[str]:
    """Each member of ``later`` first seen pinned to ``target`` while ``first`` was not (yet) updated to it, with
    the state ``first`` was in at that moment."""
    latest: dict[str, dict[str, str]] = {}
    started: set[str] = set()
    found = []
    for state in states:
        latest[state["name"]] = state
        name = state["name"]
        if name in later and name not in started and state["revision"] == target:
            started.add(name)
            leader = latest.get(first, {})
            if not updated_to(leader, target):
                found.append(f"{name} pinned to {target[:8]} at {state.get('seen')} s while {first} was {leader}")
    return found
