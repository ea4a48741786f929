"""The test side of the shims' fork server: building its client and running one server per sandbox.

Owns: compiling ``shim_client.c`` once per machine into ``~/.cache/o4o/shim-client-<source hash>`` (with the
machine's C compiler; none found means the shims stay plain Python scripts, which work the same, slower), and
:class:`ShimServer`, which starts ``shim_server.py`` on a socket, waits for its ``ready`` and stops it. Must
not: act out commands (``sandbox_shim``) or speak the protocol (``shim_server`` and its client).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from o4o_operator.testing.processes import stop_process

HERE = Path(__file__).resolve().parent
CLIENT_SOURCE = HERE / "shim_client.c"
SERVER_SCRIPT = HERE / "shim_server.py"
_START_TIMEOUT = 30.0
_SOCKET_PATH_LIMIT = 100
"""sockaddr_un holds 108 bytes; a longer sandbox path keeps the Python shims."""


def cache_directory() -> Path:
    return Path(os.environ.get("O4O_CACHE", Path.home() / ".cache" / "o4o"))


def client_binary() -> Path | None:
    """The compiled client, built now if missing; None without a C compiler or when the build fails."""
    source = CLIENT_SOURCE.read_bytes()
    binary = cache_directory() / f"shim-client-{hashlib.sha256(source).hexdigest()[:16]}"
    if binary.exists():
        return binary
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=binary.parent) as work:
        built = Path(work) / "shim-client"
        result = subprocess.run([compiler, "-O2", "-Wall", "-Werror", "-o", str(built), str(CLIENT_SOURCE)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(f"shim client not built, the shims stay Python scripts:\n{result.stderr}", file=sys.stderr)
            return None
        built.replace(binary)  # atomic: concurrent workers each build, one rename wins
    return binary


class ShimServer:
    """``shim_server.py`` on ``socket_path``, for one sandbox; ``start`` returns once it accepts."""

    def __init__(self, socket_path: Path, log_path: Path) -> None:
        self.socket_path = socket_path
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def usable(socket_path: Path) -> bool:
        return len(str(socket_path)) < _SOCKET_PATH_LIMIT and client_binary() is not None

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self.socket_path.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            process = subprocess.Popen([sys.executable, "-I", "-S", str(SERVER_SCRIPT), str(self.socket_path)],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                       start_new_session=True)
        assert process.stdout is not None
        ready = process.stdout.readline()  # bounded: the server prints it or exits (EOF)
        process.stdout.close()
        if ready.strip() != b"ready":
            stop_process(process)
            raise RuntimeError(f"the shim server did not start: {self.log_path.read_text(errors='replace')}")
        self._process = process

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)
        self.socket_path.unlink(missing_ok=True)
