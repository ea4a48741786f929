"""The sandbox's stand-in for the account commands: useradd, id, chown, sudo and runuser.

Owns: the sandbox-only users in the shim state (``users``; ``useradd`` adds one, ``id`` answers for them
with uid ``2000 + index`` and passes other names to the real ``id``), ``chown`` (the real one, except that
it pretends to succeed for a sandbox-only owner), ``sudo`` (drops its options, resets the environment as
``env_reset`` does and becomes the command) and ``runuser -u U -- ...`` (runs it as the sandbox's one real
user with ``O4O_SHIM_USER=U``, so that the shims below record whom they stand for). ``sandbox_shim`` calls
these after logging the call and serving planned failures, as for every shim (``userdel`` is
``sandbox_teardown``'s).

Must not: touch anything outside ``$O4O_ROOT``, change a real account, or import anything beyond the
standard library (``sandbox_shim`` runs it as a sibling file).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

State = dict[str, Any]
UpdateState = Callable[[Callable[[State], None]], None]
Real = Callable[[str], str | None]
"""The real program of a name on PATH, skipping the shim directory (``sandbox_shim.real``)."""


def useradd(args: list[str], state: State, update_state: UpdateState) -> int:
    user = args[-1]
    if user in state.get("users", []):
        print(f"useradd: user '{user}' already exists", file=sys.stderr)
        return 9
    update_state(lambda s: s.__setitem__("users", sorted(set(s.get("users", [])) | {user})))
    return 0


def id_(args: list[str], state: State, passthrough: Callable[[list[str]], int]) -> int:
    names = [a for a in args if not a.startswith("-")]
    users = state.get("users", [])
    if names and names[0] in users:
        uid = 2000 + users.index(names[0])
        print(uid if "-u" in args else f"uid={uid}({names[0]}) gid={uid}({names[0]})")
        return 0
    return passthrough(["id", *args])


def chown(args: list[str], state: State, real: Real) -> int:
    program = real("chown") or "/bin/chown"
    result = subprocess.run([program, *args], capture_output=True, text=True, check=False)
    owner = next((a for a in args if not a.startswith("-")), "")
    if result.returncode != 0 and owner.split(":")[0] in state.get("users", []):
        return 0  # a sandbox-only user: pretend the files now belong to it
    sys.stderr.write(result.stderr)
    return result.returncode


SUDO_KEEPS = ("PATH", "HOME", "LOGNAME", "USER", "SHELL", "TERM", "LANG", "O4O_ROOT")
"""What sudo's ``env_reset`` leaves of the caller's environment (PATH stands in for ``secure_path``;
``O4O_ROOT`` stays because the shims keep their log and state under it)."""


def sudo(args: list[str]) -> int:
    """The sandbox already runs as its only user: drop sudo's options, reset the environment as
    sudo's default ``env_reset`` does, and become the command."""
    index = 0
    while index < len(args) and args[index].startswith("-"):
        index += 1
        if args[index - 1] == "--":
            break
    kept = {name: os.environ[name] for name in SUDO_KEEPS if name in os.environ}
    os.execvpe(args[index], args[index:], kept)  # noqa: S606 - a stand-in for sudo must exec the command


def runuser(args: list[str], state: State, real: Real, option: Callable[..., str | None]) -> int:
    user = option(args, "-u")
    command = args[args.index("--") + 1:] if "--" in args else []
    if user not in state.get("users", []) and real("id") and subprocess.call(
            [str(real("id")), "-u", str(user)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        print(f"runuser: user {user} does not exist", file=sys.stderr)
        return 1
    # As the sandbox's own user; the shims below learn whom they stand for.
    return subprocess.call(command, env={**os.environ, "O4O_SHIM_USER": str(user)})
