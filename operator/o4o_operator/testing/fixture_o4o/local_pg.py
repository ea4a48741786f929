"""A throwaway PostgreSQL cluster on this machine, for running the ``o4o`` fixture's API against a real database.

Owns: finding the server binaries (``pg_config --bindir``, else ``/usr/lib/postgresql/<n>/bin``), a cluster in
its own temporary directory listening on 127.0.0.1 only, with TLS on (a self-signed certificate, as Debian's package
ships one) so that the API's forced TLS under ``NODE_ENV=production`` is exercised; one role and database per
call; and ``psql`` queries. As root the server runs as the ``postgres`` user (PostgreSQL refuses root).
``pg_ctl -w`` waits for the server to accept connections, so no polling is needed.

Must not: be imported by shipped code; touch any cluster but its own, or anything outside its directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

SUPERUSER_PASSWORD = "fixture-superuser"  # noqa: S105 (a throwaway cluster on 127.0.0.1, removed with its directory)


def server_bindir() -> Path | None:
    config = shutil.which("pg_config")
    if config:
        found = Path(subprocess.run([config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip())
        if (found / "initdb").exists():
            return found
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    return candidates[-1].parent if candidates else None


def _run_as() -> list[str] | None:
    """The prefix that runs the server as a non-root user; None when that is impossible here."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return [runuser, "-u", "postgres", "--"] if runuser else None


def available() -> str | None:
    """None when a cluster can be made here, else why not."""
    if server_bindir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl)"
    if _run_as() is None:
        return "running as root without a postgres user or runuser"
    if shutil.which("openssl") is None or shutil.which("psql") is None:
        return "openssl or psql is missing"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalPostgres:
    """``with LocalPostgres() as pg:`` a running cluster; ``pg.port``; stopped (and its directory removed) on exit.

    The directory is a fresh one under the system's temporary directory, which the ``postgres`` user can reach
    (pytest's ``tmp_path`` is private to root).
    """

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="o4o-fixture-pg-"))
        self.data = self.directory / "data"
        self.port = _free_port()
        bindir, prefix = server_bindir(), _run_as()
        if bindir is None or prefix is None:
            raise RuntimeError(available() or "PostgreSQL is unavailable")
        self._bindir, self._prefix = bindir, prefix

    def _server(self, tool: str, *args: str) -> None:
        subprocess.run([*self._prefix, str(self._bindir / tool), *args], check=True, capture_output=True, text=True,
                       cwd=self.directory)

    def __enter__(self) -> LocalPostgres:
        password_file = self.directory / "superuser-password"
        password_file.write_text(SUPERUSER_PASSWORD + "\n")
        if self._prefix:
            shutil.chown(self.directory, user="postgres")
            shutil.chown(password_file, user="postgres")
        self._server("initdb", "-D", str(self.data), "-U", "postgres", "-A", "scram-sha-256",
                     f"--pwfile={password_file}")
        subprocess.run(["openssl", "req", "-new", "-x509", "-days", "2", "-nodes", "-subj", "/CN=localhost",
                        "-keyout", str(self.data / "server.key"), "-out", str(self.data / "server.crt")],
                       check=True, capture_output=True)
        (self.data / "server.key").chmod(0o600)
        if self._prefix:
            for name in ("server.key", "server.crt"):
                shutil.chown(self.data / name, user="postgres")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.directory}'\nssl = on\n")
        self._server("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "server.log"), "-w", "start")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            self._server("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres", user: str = "postgres",
             password: str = SUPERUSER_PASSWORD) -> str:
        """Run ``sql`` (one statement) and return its rows, unaligned, without headers."""
        return self._psql(["-c", sql], database, user, password)

    def _psql(self, args: Sequence[str], database: str, user: str, password: str) -> str:
        result = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", database,
                                 "-v", "ON_ERROR_STOP=1", "-A", "-t", *args],
                                env={**os.environ, "PGPASSWORD": password}, capture_output=True, text=True, check=True)
        return result.stdout.strip()

    def create_database(self, name: str, user: str, password: str) -> None:
        """One role and one database it owns, as the operator makes per instance."""
        quoted = password.replace("'", "''")
        self.psql(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{quoted}'")
        self.psql(f'CREATE DATABASE "{name}" OWNER "{user}"')
