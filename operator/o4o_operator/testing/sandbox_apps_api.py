"""The sandbox's stand-in for an O4O instance's own API (auth login, admin apps) and for ``npx``.

Owns: what a sandbox host's API listener (:mod:`o4o_operator.testing.sandbox_api_listener`, where the
operator's SSH tunnels lead) answers for ``/api/v1/auth/login`` and
``/api/v1/admin/apps[/market|/install|/activate|/deactivate|/uninstall]`` (any other path: 404),
shaped as O4O answers them
(login: ``{"success": true, "data": {"tokens": {"accessToken": ...}}}`` with ``includeLegacyTokens``; the
market ``{"apps": [{"appId": ...}]}``; a refused install ``500 {"ok": false, "error": "INSTALL_FAILED",
"message": "No manifest found for app: ..."}``), and ``npx tsx src/scripts/create-admin-user.ts
--email=E --password=P``, which records the admin the login then accepts. State lives in
``$O4O_ROOT/.shim-apps.json``: the admins, one per instance sharing the host (passwords only as
digests), the apps and their status, and every API call made (method, path, appId), for tests to read.

Must not: touch anything outside ``$O4O_ROOT``, or import beyond the standard library (the shim runs as a
standalone script and imports this file as its sibling).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MARKET = ("forum-core", "signage")
"""The ids the stand-in lists, as O4O's catalog does (two of its ids; the fixture repository lists the same)."""
REFUSED = {"signage": "No manifest found for app: signage"}
"""Listed but refused on install, with O4O's words at HEAD (its manifest registry is empty)."""
_ROUTES = re.compile(r"^/api/v1/(auth/login|admin/apps(/(market|install|activate|deactivate|uninstall))?)$")


def _state_path(root: Path | None = None) -> Path:
    return (root or Path(os.environ.get("O4O_ROOT", "/nonexistent-o4o-root"))) / ".shim-apps.json"


def load_state(root: Path | None = None) -> dict[str, Any]:
    path = _state_path(root)
    return json.loads(path.read_text()) if path.exists() else {"apps": {}, "calls": []}


def _save(state: dict[str, Any], root: Path | None = None) -> None:
    path = _state_path(root)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=1, sort_keys=True))
    temporary.replace(path)


@contextlib.contextmanager
def _locked(root: Path | None) -> Iterator[None]:
    """The state file is read, changed and written whole by the listener's threads and by npx shims of
    instances sharing the host: one at a time."""
    with _state_path(root).with_suffix(".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def answer_request(root: Path, method: str, path: str, authorization: str, raw: bytes) -> tuple[int, bytes]:
    """One HTTP request to the stand-in: its status and JSON body (the state file is read and written)."""
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {}
    with _locked(root):
        state = load_state(root)
        status, answer = _answer(state, method, path.split("?", 1)[0], authorization,
                                 body if isinstance(body, dict) else {})
        _save(state, root)
    return status, json.dumps(answer).encode()


def _answer(state: dict[str, Any], method: str, path: str, authorization: str,
            body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if not _ROUTES.match(path):
        return 404, {"success": False, "error": f"Cannot {method} {path}"}
    if path == "/api/v1/auth/login":
        # Instances sharing one host each have their own admin (their own database, in O4O).
        admins: dict[str, str] = state.get("admins") or {}
        if method != "POST" or admins.get(str(body.get("email"))) != _digest(str(body.get("password"))):
            return 401, {"success": False, "error": "INVALID_CREDENTIALS", "message": "Invalid credentials"}
        state["token"] = secrets.token_hex(16)
        state.setdefault("tokens", []).append(state["token"])
        tokens = {"accessToken": state["token"], "refreshToken": "r", "expiresIn": 900}
        return 200, {"success": True, "data": {"message": "Login successful",
                                               **({"tokens": tokens} if body.get("includeLegacyTokens") else {})}}
    if not any(authorization == f"Bearer {token}" for token in state.get("tokens", [])):
        return 401, {"success": False, "error": "Authentication required"}
    apps: dict[str, str] = state["apps"]
    action = path.removeprefix("/api/v1/admin/apps").lstrip("/")
    if method == "GET" and action == "market":
        return 200, {"apps": [{"appId": app, "name": app, "version": "1.0.0"} for app in MARKET]}
    if method == "GET" and action == "":
        return 200, {"apps": [{"appId": app, "status": status, "version": "1.0.0"}
                              for app, status in sorted(apps.items())]}
    app = body.get("appId")
    if method != "POST" or not isinstance(app, str):
        return 400, {"error": "appId is required"}
    state["calls"].append({"method": method, "path": path, "appId": app})
    if action == "install":
        if app in REFUSED or app not in MARKET:
            return 500, {"ok": False, "error": "INSTALL_FAILED",
                         "message": REFUSED.get(app, f"No manifest found for app: {app}")}
        apps[app] = "installed"
    elif action in ("activate", "deactivate") and app in apps:
        apps[app] = "active" if action == "activate" else "inactive"
    elif action == "uninstall" and app in apps:
        del apps[app]
    else:
        return 500, {"success": False, "error": {"message": f"App {app} is not installed"}}
    return 200, {"ok": True, "message": f"App {app} {action}ed successfully"}


def npx(args: list[str]) -> int:
    """``npx tsx src/scripts/create-admin-user.ts --email=E --password=P``: record that admin (idempotent for
    an existing email, as O4O's script is). Anything else is a program this sandbox does not have."""
    if "src/scripts/create-admin-user.ts" not in args:
        print(f"npx: could not determine executable to run: {' '.join(args[:2])}", file=sys.stderr)
        return 127
    options = dict(arg[2:].split("=", 1) for arg in args if arg.startswith("--") and "=" in arg)
    with _locked(None):
        state = load_state()
        admins = state.setdefault("admins", {})
        email = str(options.get("email"))
        if email in admins:
            print("User already exists")
        else:
            admins[email] = _digest(options.get("password", ""))
            state["admin"] = {"email": email, "password_sha256": admins[email]}  # the latest, for tests to read
            print("User created successfully")
        _save(state)
    return 0
