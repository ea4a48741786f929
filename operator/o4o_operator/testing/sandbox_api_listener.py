"""A sandbox host's HTTP listener for its instances' own API: where the operator's SSH tunnels lead.

Owns: one threaded ``http.server`` per :class:`~o4o_operator.testing.sandbox.SandboxHost`, bound to the
host's address on a free port (sshd's ``SetEnv O4O_SANDBOX_API`` tells the test-peer connector where), that
answers the login and apps routes with :func:`o4o_operator.testing.sandbox_apps_api.answer_request` over
the host's ``$O4O_ROOT/.shim-apps.json`` (an unknown ``/api/v1/`` route: 404), a GET of any other path
(the health path) as the curl shim answers it
(:func:`planned_answer`: the host's HTTP plan, ``SandboxHost.set_http_response``, else
:data:`~o4o_operator.testing.sandbox_shim.HEALTHY_BODY`), and the faults tests plan for it
(:meth:`ApiListener.fail_next`).
On a real server the API listens on 127.0.0.1:<spec.apiPort>; sandbox hosts share one machine, so each
serves all its instances on one port of its own.

Must not: follow or issue redirects, or touch anything outside the sandbox root.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
from pathlib import Path
from typing import Any

from o4o_operator.testing import sandbox_apps_api
from o4o_operator.testing.file_lock import exclusive
from o4o_operator.testing.sandbox_shim import HEALTHY_BODY


def planned_answer(root: Path, path: str) -> tuple[int, bytes]:
    """What the curl shim would answer for ``http://127.0.0.1<path>`` on this host: the newest matching rule
    of its HTTP plan (for the release PM2 runs, when the rule names one), else O4O's healthy body."""
    url = f"http://127.0.0.1{path}"
    with exclusive(root / ".shim-lock"):
        plan_path, state_path = root / ".shim-plan.json", root / ".shim-state.json"
        plan = json.loads(plan_path.read_text()) if plan_path.exists() else {}
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
    live = state.get("live_release")
    for rule in reversed(plan.get("http", [])):
        if rule["url_contains"] in url and rule.get("live_release") in (None, live):
            return int(rule["status"]), str(rule["body"]).encode()
    return 200, HEALTHY_BODY.encode()


@dataclasses.dataclass
class PlannedFault:
    """The next ``times`` requests whose path contains ``path_contains`` get this answer (``close``: none)."""

    path_contains: str
    status: int = 503
    body: str = ""
    close: bool = False
    times: int = 1


class ApiListener:
    """``start``/``stop`` serve and stop serving; ``address`` is ``host:port``."""

    def __init__(self, host: str, root: Path) -> None:
        self.root = root
        self.faults: list[PlannedFault] = []
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.address = f"{host}:{self._server.server_address[1]}"

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                fault = listener.take_fault(self.path)
                if fault is not None and fault.close:
                    self.close_connection = True
                    return
                if fault is not None:
                    status, body = fault.status, fault.body.encode()
                elif self.command == "GET" and not self.path.startswith("/api/v1/"):
                    status, body = planned_answer(listener.root, self.path)
                else:
                    with listener._lock:
                        status, body = sandbox_apps_api.answer_request(
                            listener.root, self.command, self.path, self.headers.get("Authorization") or "", raw)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler

    def take_fault(self, path: str) -> PlannedFault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path_contains in path and fault.times != 0:
                    fault.times -= 1
                    return fault
        return None

    def fail_next(self, path_contains: str, *, status: int = 503, body: Any = None, close: bool = False,
                  times: int = 1) -> None:
        """Answer the next ``times`` (-1: every) matching requests with ``status`` and ``body`` (JSON-encoded
        unless a str), or with a closed connection."""
        text = body if isinstance(body, str) else json.dumps(body if body is not None else {"message": "planned"})
        with self._lock:
            self.faults.append(PlannedFault(path_contains, status, text, close, times))

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                            name=f"sandbox-api-{self.address}")
            self._thread.start()

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()
