"""A record of every state a namespace's DeploymentInstances went through, for checking a fleet's wave order.

Owns: :class:`MemberWatch`, ``kubectl get di -w`` in one namespace (every state the API held, in its order,
with when this process saw it), and the rollout rule checked on that record (:func:`order_violations`): when
a member of a wave is first seen pinned to the target, every member of every earlier wave is updated to it
(pinned, serving the target as ``status.source.commit``, its current generation observed, and Ready). Used by
the sandbox and booted-host fleet tests; knows nothing of how the members got there, nor of the fleet object.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Collection, Sequence

from o4o_operator.testing.controlplane import ControlPlane

FIELDS = ('{.metadata.name}|{.spec.source.revision}|{.status.source.commit}|{.metadata.generation}|'
          '{.status.observedGeneration}|{.status.conditions[?(@.type=="Ready")].status}|'
          '{.status.conditions[?(@.type=="Ready")].reason}{"\\n"}')
KEYS = ("name", "revision", "commit", "generation", "observed", "ready", "reason")


def updated_to(state: dict[str, str], target: str) -> bool:
    """The fleet's rule for a member counted as updated, on one recorded state."""
    return (state.get("revision") == target and state.get("commit") == target
            and state.get("generation") == state.get("observed") and state.get("ready") == "True")


def ready_only(state: dict[str, str], target: str) -> bool:
    """A status-only check (argo-cd #29410): Ready, whatever it serves and whichever generation it is about."""
    return state.get("ready") == "True"


class MemberWatch:
    """``kubectl get di -w`` in ``namespace``: every state of every DI, in the API's order; :meth:`stop` it."""

    def __init__(self, control_plane: ControlPlane, namespace: str) -> None:
        self._process = subprocess.Popen(
            [str(control_plane.assets / "kubectl"), f"--kubeconfig={control_plane.kubeconfig}", "get", "di",
             "-n", namespace, "-w", "-o", f"jsonpath={FIELDS}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._states: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._began = time.monotonic()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            parts = line.rstrip("\n").split("|")
            if len(parts) == len(KEYS):
                state = dict(zip(KEYS, parts, strict=True))
                state["seen"] = f"{time.monotonic() - self._began:.1f}"  # seconds since the watch began
                with self._lock:
                    self._states.append(state)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)
        self._reader.join(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def snapshot(self) -> list[dict[str, str]]:
        """Each state recorded so far, with ``seen``."""
        with self._lock:
            return list(self._states)

    def seen(self, name: str) -> list[dict[str, str]]:
        return [state for state in self.snapshot() if state["name"] == name]

    def pinned(self, commit: str) -> list[str]:
        """The members seen pinned to ``commit``, in the order they were first seen so."""
        return list(dict.fromkeys(state["name"] for state in self.snapshot() if state["revision"] == commit))

    def first_seen(self, name: str, target: str, *, updated: bool) -> float | None:
        """When ``name`` was first seen updated to ``target`` (``updated``) or pinned to it; None: never."""
        for state in self.seen(name):
            if updated_to(state, target) if updated else state["revision"] == target:
                return float(state["seen"])
        return None

    def violations(self, target: str, first: str, later: Collection[str]) -> list[str]:
        """:func:`order_violations` of what was recorded so far, for a first wave of one and a second wave."""
        return order_violations(self.snapshot(), target, [[first], list(later)])


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
            found.append(f"{name} (wave {wave_of[name]}) pinned to {target[:8]} at {state.get('seen', '?')} s "
                         f"while {len(behind)} member(s) of earlier waves were not updated, e.g. "
                         f"{latest.get(behind[0], behind[0])}")
    return found
