"""The leader's term as every writer sees it: its epoch, and whether it may still act.

Owns: :class:`Term` (the epoch of one leadership term, the monotonic moment of the last renewal, and the
deposition) and :class:`Deposed` (what any write or host command raises once the term is over); the host
fence's refusal marker is in :mod:`o4o_operator.markers`. The Kubernetes clients (ours and Kopf's,
:mod:`o4o_operator.kopf_fence`) and the SSH sessions ask :meth:`Term.check` before every write and every
command, so a replica that was paused past its lease (SIGSTOP, a long GC, a frozen VM) and wakes up refuses on
its own clock before it reaches the API or a server. Purely in-process: no I/O; the elector
(:mod:`o4o_operator.runner.leader`) renews the term and deposes it. Must not decide who leads.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from o4o_operator.pipeline.epoch import Epoch


class Deposed(BaseException):
    """This replica no longer leads: stop everything, write nothing.

    A ``BaseException`` (like ``asyncio.CancelledError``) so that no ``except Exception`` on the way records it
    as a stage failure: a deposed leader must not write a Stalled condition or retry a stage.
    """


class Term:
    """One leadership term: epoch ``epoch``, valid while renewed within ``renew_deadline`` seconds."""

    def __init__(self, epoch: Epoch, holder: str, renew_deadline: float, *, renewed_at: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.epoch = epoch
        self.holder = holder
        self._renew_deadline = renew_deadline
        self._renewed_at = renewed_at
        self._clock = clock
        self._deposed: str | None = None
        self._on_deposed: list[Callable[[str], None]] = []

    def renewed(self, started_at: float) -> None:
        """The Lease was renewed by a request that started at ``started_at`` (monotonic, so conservative)."""
        self._renewed_at = max(self._renewed_at, started_at)

    @property
    def valid_until(self) -> float:
        """The monotonic moment after which this replica stops acting unless it renewed again."""
        return self._renewed_at + self._renew_deadline

    @property
    def deposed(self) -> str | None:
        """Why this term ended (None while it lasts)."""
        if self._deposed is None and self._clock() >= self.valid_until:
            self.depose(f"the Lease was not renewed for {self._renew_deadline:g} s (epoch {self.epoch})")
        return self._deposed

    def on_deposed(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` once, when this term ends (at once if it already has)."""
        if self._deposed is not None:
            callback(self._deposed)
        else:
            self._on_deposed.append(callback)

    def depose(self, reason: str) -> None:
        """End the term (idempotent): from now on :meth:`check` raises, and the callbacks run once."""
        if self._deposed is not None:
            return
        self._deposed = reason
        callbacks, self._on_deposed = self._on_deposed, []
        for callback in callbacks:
            callback(reason)

    def check(self, what: str) -> None:
        """Raise :class:`Deposed` unless this term still lasts; ``what`` names the refused action."""
        reason = self.deposed
        if reason is not None:
            raise Deposed(f"Refused to {what}: this replica no longer leads ({reason})")

