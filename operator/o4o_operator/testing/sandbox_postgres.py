"""The sandbox's stand-in for PostgreSQL: psql, pg_lsclusters, pg_ctlcluster and what installing it does.

Owns: a small model of one Debian PostgreSQL host in the shim state (``state["postgres"]``: its clusters,
``ssl``, roles with a SHA-256 of their password, databases and their owners), made when ``apt-get install
postgresql`` runs (Debian creates and starts cluster ``14/main`` on port 5432 and the ``postgres`` user),
and the answers of ``psql`` to the statements ``setup-database.sh``, ``database-facts.sh``, the bootstrap and
``teardown-host.sh`` send (tables and their rows are ``sandbox_pg_tables``'s; ``DROP DATABASE`` drops them all),
and ``pg_dump``'s archive of a database's tables and rows: peer
authentication for the ``postgres`` user without ``-h``, password authentication over TCP against the stored
hash. A host other than the local one stands for an external database and answers ``SELECT 1``; as libpq,
``PGSSLMODE`` verify-ca and verify-full need a root certificate (``PGSSLROOTCERT``, else
``~/.postgresql/root.crt``) holding a PEM certificate. Planned failures (``SandboxHost.fail_command``) come
first, as for every shim.

Must not: keep a password (only its hash), start a daemon, or import anything beyond the standard library
(``sandbox_shim`` runs it as a sibling file).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

State = dict[str, Any]
PACKAGES = ("postgresql", "postgresql-14", "postgresql-client", "postgresql-client-14", "postgresql-common")
LOCAL_HOSTS = ("", "127.0.0.1", "localhost", "::1")
_ARG_OPTIONS = set("cdhpUfvF")


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def installed(names: list[str], update_state: Callable[[Callable[[State], None]], None]) -> list[str]:
    """What apt installs with ``names``: the metapackage's dependencies and, for the server, its cluster."""
    if "postgresql" not in names and "postgresql-client" not in names:
        return names

    def change(s: State) -> None:
        if "postgresql" in names:
            s.setdefault("postgres", {"clusters": [{"version": "14", "name": "main", "port": 5432,
                                                    "online": True}], "ssl": "on", "roles": {"postgres": ""},
                                      "databases": {"postgres": "postgres"}})
            s["users"] = sorted(set(s.get("users", [])) | {"postgres"})

    update_state(change)
    extra = PACKAGES if "postgresql" in names else ("postgresql-client", "postgresql-client-14")
    return sorted({*names, *extra})


LOCAL_VERSION_NUM = "140013"
"""``SHOW server_version_num`` of the sandbox's cluster 14/main (Debian's 14.13); an external one says 16.4."""
EXTERNAL_VERSION_NUM = "160004"
AVAILABLE_EXTENSIONS = frozenset({"uuid-ossp", "pgcrypto", "pg_trgm", "citext", "hstore", "unaccent"})
"""What Debian's postgresql package ships among the extensions an app commonly asks for."""


def pg_lsclusters(args: list[str], state: State) -> int:
    pg = state.get("postgres")
    if pg is None:
        print("bash: pg_lsclusters: command not found", file=sys.stderr)
        return 127
    if "--no-header" not in args and "-h" not in args:
        print("Ver Cluster Port Status Owner    Data directory              Log file")
    for c in pg["clusters"]:
        status = "online" if c["online"] else "down"
        print(f"{c['version']}  {c['name']}    {c['port']} {status} postgres /var/lib/postgresql/{c['version']}/"
              f"{c['name']} /var/log/postgresql/postgresql-{c['version']}-{c['name']}.log")
    return 0


def pg_ctlcluster(args: list[str], update_state: Callable[[Callable[[State], None]], None]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if len(words) < 3:
        print("Usage: pg_ctlcluster <version> <cluster> <action>", file=sys.stderr)
        return 1
    version, name, action = words[:3]

    def change(s: State) -> None:
        for c in s.get("postgres", {}).get("clusters", []):
            if (c["version"], c["name"]) == (version, name):
                c["online"] = action in ("start", "restart", "reload") or (c["online"] and action != "stop")

    update_state(change)
    return 0


def _options(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """psql's options (the last ``-c`` wins in ``c``; every ``-c`` is kept in order) and its plain words."""
    options: dict[str, str] = {}
    commands: list[str] = []
    words: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if not arg.startswith("-") or arg == "-":
            words.append(arg)
            continue
        if arg.startswith("--"):
            continue
        for position, letter in enumerate(arg[1:], start=1):
            if letter in _ARG_OPTIONS:
                value = arg[position + 1:] or (args[index] if index < len(args) else "")
                if not arg[position + 1:]:
                    index += 1
                if letter == "c":
                    commands.append(value)
                else:
                    options[letter] = value
                break
    options["commands"] = "\0".join(commands)
    return options, words


def _fail(message: str) -> int:
    print(f"psql: error: {message}", file=sys.stderr)
    return 2


def _root_certificate_problem(host: str, port: int) -> str | None:
    """What libpq says when ``PGSSLMODE`` verifies and the root certificate file is missing or holds none."""
    if os.environ.get("PGSSLMODE") not in ("verify-ca", "verify-full"):
        return None
    path = os.environ.get("PGSSLROOTCERT") or os.path.join(os.environ.get("HOME", "/root"), ".postgresql/root.crt")
    where = f'connection to server at "{host}", port {port} failed'
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return (f'{where}: root certificate file "{path}" does not exist\nEither provide the file, use the '
                "system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate "
                "verification.")
    except OSError as error:
        return f'{where}: could not read root certificate file "{path}": {error.strerror}'
    if "-----BEGIN CERTIFICATE-----" not in text:
        return f'{where}: could not load root certificate file "{path}": no certificate or crl found'
    return None


def psql(args: list[str], as_user: str, update_state: Callable[[Callable[[State], None]], None],
         state: State, stdin_text: Callable[[], str]) -> int:
    options, words = _options(args)
    problem, external, database = _connection_problem(options, words, as_user, state)
    if problem:
        return _fail(problem)
    return _answer(options, stdin_text, update_state, external=external, database=database)


DUMP_MAGIC = b"PGDMP"
"""What a custom-format archive begins with (``pg_restore`` checks it); the sandbox's holds the tables and their
rows as JSON (``sandbox_pg_tables.archived``)."""


def _tables() -> ModuleType:
    """``sandbox_pg_tables``, a sibling: imported as part of the package when this file is, else as a script."""
    return importlib.import_module(f"{__package__}.sandbox_pg_tables" if __package__ else "sandbox_pg_tables")


def pg_dump(args: list[str], as_user: str, state: State, stdout: Any) -> int:
    """``pg_dump --format=custom`` to stdout, connecting as psql does: an archive of the database's tables."""
    options, words = _options(args)
    if not any(arg in ("--format=custom", "-Fc") for arg in args):
        print("pg_dump: error: the sandbox's pg_dump writes --format=custom only", file=sys.stderr)
        return 1
    problem, external, database = _connection_problem(options, words, as_user, state)
    if problem:
        print(f"pg_dump: error: {problem}", file=sys.stderr)
        return 1
    archive = _tables().archived(state, external=external, database=database)
    stdout.write(DUMP_MAGIC + json.dumps(archive).encode() + b"\n")
    stdout.flush()
    return 0


def _connection_problem(options: dict[str, str], words: list[str], as_user: str,
                        state: State) -> tuple[str | None, bool, str]:
    """(what libpq would say, or None; whether the database is external; the database's name)."""
    host = options.get("h", "")
    user = options.get("U") or (words[1] if len(words) > 1 else "") or as_user or "root"
    database = options.get("d") or (words[0] if words else "") or user
    port = int(options.get("p") or 5432)
    if host not in LOCAL_HOSTS:  # an external database: reachable, as far as the sandbox knows
        return _root_certificate_problem(host, port), True, database
    pg = state.get("postgres")
    cluster = next((c for c in (pg or {}).get("clusters", []) if c["port"] == port), None)
    if pg is None or cluster is None or not cluster["online"]:
        where = (f'server at "{host}", port {port}' if host
                 else f'server on socket "/var/run/postgresql/.s.PGSQL.{port}"')
        return (f"connection to {where} failed: No such file or directory\n\tIs the server running locally "
                "and accepting connections on that socket?"), False, database
    if not host:
        if user != as_user:
            return (f'connection to server on socket "/var/run/postgresql/.s.PGSQL.{port}" failed: FATAL:  '
                    f'Peer authentication failed for user "{user}"'), False, database
    else:
        if pg["ssl"] != "on" and os.environ.get("PGSSLMODE") in ("require", "verify-ca", "verify-full"):
            return (f'connection to server at "{host}", port {port} failed: server does not support SSL, '
                    "but SSL was required"), False, database
        stored = pg["roles"].get(user)
        if not stored or stored != _digest(os.environ.get("PGPASSWORD", "")):
            return (f'connection to server at "{host}", port {port} failed: FATAL:  password authentication '
                    f'failed for user "{user}"'), False, database
    if database not in pg["databases"]:
        return f'FATAL:  database "{database}" does not exist', False, database
    return None, False, database


def _answer(options: dict[str, str], stdin_text: Callable[[], str],
            update_state: Callable[[Callable[[State], None]], None], *, external: bool, database: str) -> int:
    commands = [c for c in options["commands"].split("\0") if c] or [stdin_text()]
    for text in commands:
        for statement in (s.strip() for s in re.split(r";\s*(?:\n|$)", text)):
            if statement:
                tables = _tables()
                status = (tables.statement(statement, update_state, external=external, database=database,
                                           separator=options.get("F", "|"))
                          if tables.handles(statement) else _statement(statement, update_state, external=external))
                if status:
                    return status
    return 0


def _statement(sql: str, update_state: Callable[[Callable[[State], None]], None], *, external: bool) -> int:
    pg: dict[str, Any] = {}
    update_state(lambda s: pg.update(s.get("postgres", {})))  # the state as of this statement
    compact = " ".join(sql.split())
    if re.fullmatch(r"(?i)select 1", compact):
        print(1)
        return 0
    if re.fullmatch(r"(?i)show server_version_num", compact):
        print(EXTERNAL_VERSION_NUM if external else LOCAL_VERSION_NUM)
        return 0
    if re.fullmatch(r"(?i)select name from [a-z_.]+ order by id desc limit 1", compact):
        return 0  # the sandbox keeps no migrations' rows: no head
    if external:
        return 0
    if re.fullmatch(r"(?i)show ssl", compact):
        print(pg["ssl"])
        return 0
    if match := re.fullmatch(r"(?i)alter system set ssl = (on|off)", compact):
        pending = match.group(1).lower()
        update_state(lambda s: s["postgres"].__setitem__("ssl_pending", pending))
        return 0
    if re.fullmatch(r"(?i)select pg_reload_conf\(\)", compact):
        update_state(lambda s: s["postgres"].__setitem__("ssl", s["postgres"].pop("ssl_pending", s["postgres"]["ssl"])))
        print("t")
        return 0
    if match := re.fullmatch(r"(?i)select 1 from pg_roles where rolname = '([a-z0-9_]+)'", compact):
        if match.group(1) in pg["roles"]:
            print(1)
        return 0
    if match := re.fullmatch(r"(?i)select 1 from pg_database where datname = '([a-z0-9_]+)'", compact):
        if match.group(1) in pg["databases"]:
            print(1)
        return 0
    if match := re.search(r"(?i)create role ([a-z0-9_]+) login", compact):
        name = match.group(1)
        update_state(lambda s: s["postgres"]["roles"].setdefault(name, ""))
        return 0
    if match := re.fullmatch(r"(?i)alter role ([a-z0-9_]+) with .*password '((?:[^']|'')*)'", compact):
        name, password = match.group(1), match.group(2).replace("''", "'")
        if name not in pg["roles"]:
            print(f'ERROR:  role "{name}" does not exist', file=sys.stderr)
            return 1
        update_state(lambda s: s["postgres"]["roles"].__setitem__(name, _digest(password)))
        return 0
    if match := re.fullmatch(r"(?i)create database ([a-z0-9_]+) owner ([a-z0-9_]+)", compact):
        name, owner = match.groups()
        if name in pg["databases"]:
            print(f'ERROR:  database "{name}" already exists', file=sys.stderr)
            return 1
        update_state(lambda s: s["postgres"]["databases"].__setitem__(name, owner))
        return 0
    if match := re.fullmatch(r"(?i)alter database ([a-z0-9_]+) owner to ([a-z0-9_]+)", compact):
        name, owner = match.groups()
        update_state(lambda s: s["postgres"]["databases"].__setitem__(name, owner))
        return 0
    if re.match(r"(?i)(revoke|grant) ", compact):
        return 0
    if match := re.fullmatch(r'(?i)create extension if not exists "([a-z0-9_-]+)"', compact):
        name = match.group(1)
        if name not in AVAILABLE_EXTENSIONS:
            print(f'ERROR:  extension "{name}" is not available', file=sys.stderr)
            return 1
        update_state(lambda s: s["postgres"].setdefault("extensions", []).append(name)
                     if name not in s["postgres"].get("extensions", []) else None)
        return 0
    if match := re.fullmatch(r"(?i)drop database if exists ([a-z0-9_]+)( with \(force\))?", compact):
        name = match.group(1)
        def drop(s: State) -> None:
            s["postgres"]["databases"].pop(name, None)
            s["postgres"].get("tables", {}).pop(name, None)
            s["postgres"].get("rows", {}).pop(name, None)

        update_state(drop)
        return 0
    if match := re.fullmatch(r"(?i)drop role if exists ([a-z0-9_]+)", compact):
        name = match.group(1)
        if name in pg["databases"].values():
            print(f'ERROR:  role "{name}" cannot be dropped because some objects depend on it', file=sys.stderr)
            return 1
        update_state(lambda s: s["postgres"]["roles"].pop(name, None))
        return 0
    print(f"ERROR:  the sandbox's psql does not know: {compact[:80]}", file=sys.stderr)
    return 1
