"""The sandbox's stand-in for the commands that undo what the stages did (``teardown-host.sh``).

Owns: ``userdel``, ``pm2 delete``, ``certbot delete`` and ``systemctl stop|disable`` against the shim
state (``users``, ``pm2``, ``active``, ``enabled``) and the sandbox's files, as ``sandbox_shim`` calls them
(after logging the call and serving planned failures, as for every shim).

Must not: touch anything outside ``$O4O_ROOT``, or import anything beyond the standard library
(``sandbox_shim`` runs it as a sibling file).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

State = dict[str, Any]
UpdateState = Callable[[Callable[[State], None]], None]


def userdel(args: list[str], state: State, update_state: UpdateState) -> int:
    user = args[-1] if args else ""
    if user not in state.get("users", []):
        print(f"userdel: user '{user}' does not exist", file=sys.stderr)
        return 6

    def change(s: State) -> None:
        s["users"] = [name for name in s.get("users", []) if name != user]
        s.get("pm2", {}).pop(user, None)  # its PM2 daemon could not outlive it

    update_state(change)
    return 0


def pm2_delete(name: str, as_user: str, state: State, update_state: UpdateState) -> int:
    """``pm2 delete <name>`` in ``as_user``'s process list; pm2 exits 1 for a name it does not know."""
    if name not in state.get("pm2", {}).get(as_user, {}):
        print(f"[PM2][ERROR] Process or Namespace {name} not found", file=sys.stderr)
        return 1
    update_state(lambda s: s["pm2"][as_user].pop(name, None))
    print(f"[PM2] Applying action deleteProcessId on app [{name}]")
    return 0


def systemctl_stop(verb: str, args: list[str], units: list[str], s: State) -> None:
    """What ``stop`` and ``disable`` (``--now``: and stop) change in the shim state ``s``."""
    if verb == "disable":
        s["enabled"] = sorted(set(s.get("enabled", [])) - set(units))
    if verb == "stop" or (verb == "disable" and "--now" in args):
        s["active"] = sorted(set(s.get("active", [])) - set(units))


def certbot_delete(name: str, config_dir: Path) -> int:
    live = config_dir / "live" / name
    if not live.exists():
        print(f"No certificate found with name {name} (expected {config_dir}/renewal/{name}.conf).",
              file=sys.stderr)
        return 1
    for path in (live, config_dir / "archive" / name):
        shutil.rmtree(path, ignore_errors=True)
    (config_dir / "renewal" / f"{name}.conf").unlink(missing_ok=True)
    print(f"Deleted all files relating to certificate {name}.")
    return 0
