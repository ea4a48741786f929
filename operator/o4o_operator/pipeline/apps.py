"""What the apps stage does to the instance's apps, decided from what the instance and the host report.

Owns: :func:`plan_apps`: every wanted id must be one the instance lists (else ``UnknownApp`` naming
``spec.apps[i]``, before anything changes); apps this operator recorded as installed that are no longer
wanted are deactivated (when active) and uninstalled (when present), then forgotten; wanted apps that are
not active are installed (when absent) and activated. Apps installed by other hands are left alone.
Purely computational: no I/O; the runner carries the plan out (``runner/apps_step.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from o4o_operator.errors import PermanentError

LISTED_LIMIT = 300
"""How much of the instance's list an ``UnknownApp`` message quotes."""
ACTIVE = "active"


@dataclasses.dataclass(frozen=True)
class AppChange:
    field: str
    """``spec.apps[i]``, or ``spec.apps (removed <id>)`` for an app no longer wanted."""
    app_id: str
    actions: tuple[str, ...]
    """In order, each one of ``install``, ``activate``, ``deactivate``, ``uninstall``; empty: nothing to do."""


@dataclasses.dataclass(frozen=True)
class AppsPlan:
    removals: tuple[AppChange, ...]
    """Apps this operator installed that are no longer wanted: each is forgotten once its actions succeed."""
    wanted: tuple[AppChange, ...]
    """Every wanted app, in spec order: each is recorded as this operator's once its actions succeed."""


def plan_apps(wanted: tuple[str, ...], market: tuple[str, ...], installed: Mapping[str, str],
              recorded: tuple[str, ...]) -> AppsPlan:
    """``installed``: app id -> the status the instance reports; ``recorded``: the ids root's record says this
    operator installed."""
    listed = ", ".join(market)[:LISTED_LIMIT] or "nothing"
    for index, app in enumerate(wanted):
        if app not in market:
            raise PermanentError("UnknownApp", f"spec.apps[{index}]: the instance lists no app named {app}; "
                                 f"it lists: {listed}")
    removals = []
    for app in sorted(set(recorded) - set(wanted)):
        state = installed.get(app)
        actions = (("deactivate",) if state == ACTIVE else ()) + (("uninstall",) if state is not None else ())
        removals.append(AppChange(f"spec.apps (removed {app})", app, actions))
    changes = []
    for index, app in enumerate(wanted):
        state = installed.get(app)
        actions = () if state == ACTIVE else (("install",) if state is None else ()) + ("activate",)
        changes.append(AppChange(f"spec.apps[{index}]", app, actions))
    return AppsPlan(tuple(removals), tuple(changes))
