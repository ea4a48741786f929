"""Bare git repositories served read-only over smart HTTP, as a git host would serve them to a server.

Owns: a threaded stdlib HTTP server that runs ``git http-backend`` as a CGI for every
request under a root directory of bare repositories (``http://<host>:<port>/<name>.git``),
de-chunking request bodies (git sends big negotiations chunked), and refusing pushes
(``git-receive-pack``) with 403.

Must not: be imported by shipped code, accept writes, or serve paths outside the root.
"""

from __future__ import annotations

import http.server
import io
import os
import shutil
import ssl
import subprocess
import threading
import urllib.parse
from pathlib import Path
from types import TracebackType

BACKEND_TIMEOUT = 300


def _read_chunked(stream: io.BufferedIOBase) -> bytes:
    read_line, read = stream.readline, stream.read
    body = bytearray()
    while True:
        size = int(read_line().split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while read_line().strip():  # trailers, then the blank line
                pass
            return bytes(body)
        body += read(size)
        read(2)  # CRLF after each chunk


def _handler_for(root: Path, git: str) -> type[http.server.BaseHTTPRequestHandler]:
    class GitHandler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._backend(b"")

        def do_POST(self) -> None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = _read_chunked(self.rfile)
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._backend(body)

        def _backend(self, body: bytes) -> None:
            path, _, query = self.path.partition("?")
            if "git-receive-pack" in path or "service=git-receive-pack" in query:
                self._answer(403, b"This server is read-only.\n")
                return
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                "REQUEST_METHOD": self.command, "PATH_INFO": urllib.parse.unquote(path), "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": self.client_address[0], "SERVER_PROTOCOL": self.request_version,
                "GATEWAY_INTERFACE": "CGI/1.1",
            }
            for header, variable in (("Git-Protocol", "GIT_PROTOCOL"), ("Content-Encoding", "HTTP_CONTENT_ENCODING")):
                if self.headers.get(header):
                    env[variable] = self.headers[header]
            result = subprocess.run([git, "http-backend"], input=body, env=env, capture_output=True,
                                    timeout=BACKEND_TIMEOUT, check=False)
            head, _, payload = result.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = result.stdout.partition(b"\n\n")
            status, headers = 200, []
            for line in head.decode("latin-1").splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name.strip(), value.strip()))
            if result.returncode != 0 and not head:
                self._answer(500, result.stderr[-2000:])
                return
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _answer(self, status: int, text: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    return GitHandler


class GitHttpServer:
    """Serves every bare repository under ``root``; ``url_for("fixture.git")`` is its clone URL."""

    def __init__(self, root: Path, *, listen_host: str = "127.0.0.1", port: int = 0,
                 certificate: Path | None = None, private_key: Path | None = None) -> None:
        """With ``certificate`` and ``private_key`` (PEM files) it serves HTTPS, as a git host does."""
        self.root = root
        self.listen_host = listen_host
        self.port = port
        self.certificate, self.private_key = certificate, private_key
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("GitHttpServer is not started")
        scheme = "https" if self.certificate else "http"
        return f"{scheme}://{self.listen_host}:{self._server.server_address[1]}"

    def url_for(self, repository: str) -> str:
        return f"{self.url}/{repository}"

    def start(self) -> GitHttpServer:
        git = shutil.which("git")
        if git is None:
            raise RuntimeError("GitHttpServer needs git on PATH")
        server = http.server.ThreadingHTTPServer((self.listen_host, self.port), _handler_for(self.root, git))
        server.daemon_threads = True
        if self.certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certificate, self.private_key)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="git-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> GitHttpServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def publish_bare(source: Path, root: Path, name: str) -> Path:
    """A bare clone of ``source`` at ``root/name`` (what a git host holds); returns its path."""
    target = root / name
    subprocess.run(["git", "clone", "--quiet", "--bare", str(source), str(target)], check=True,
                   env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    return target
