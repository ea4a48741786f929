"""The sandbox PostgreSQL's tables and their rows: what psql's statements about them do, and what a dump holds.

Owns: per local database, its tables as ``schema.name`` (``state["postgres"]["tables"]``) and each table's rows
(``state["postgres"]["rows"][database][table]``: the text between the parentheses of each row's ``VALUES``); for
an external database, which the sandbox only pretends to reach, ``state["external_tables"]`` and
``state["external_rows"]`` hold the same. The statements about them (:func:`handles`, :func:`statement`):
``database_tables``'s count (the number of tables and the migrations table, the shim's tables never being an
extension's), ``CREATE TABLE``, ``DROP TABLE`` (its rows go with it), ``INSERT INTO t VALUES (...)`` (one row),
``DELETE FROM t`` (every row) and ``SELECT count(*) FROM t``; and what ``pg_dump`` archives of a database
(:func:`archived`): its tables and their rows, which ``sandbox_pg_restore`` turns back into SQL.
Must not: import anything beyond the standard library (``sandbox_shim`` runs it as a sibling file).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

State = dict[str, Any]
Update = Callable[[Callable[[State], None]], None]
TABLES_KEY = "tables"
ROWS_KEY = "rows"
# Patterns of the statements the shim answers (S608: these are regular expressions, not queries).
_NAME = r"([a-z_][a-z0-9_]*\.)?([a-z_][a-z0-9_]*)"
_INSERT = re.compile(r"(?i)insert into " + _NAME + r"(?: \([^)]*\))? values \((.*)\)")  # noqa: S608
_DELETE = re.compile(r"(?i)delete from " + _NAME)  # noqa: S608
_COUNT = re.compile(r"(?i)select count\(\*\) from " + _NAME)  # noqa: S608
_HANDLED = re.compile(r"(?i)^\s*(select count\(\*\).*from pg_class|create table |drop table |insert into |"
                      r"delete from |select count\(\*\) from [a-z_][a-z0-9_.]*\s*$)")


def handles(sql: str) -> bool:
    """Whether :func:`statement` answers this statement."""
    return bool(_HANDLED.search(sql))


def _tables_of(external: bool) -> Callable[[State], dict[str, list[str]]]:
    if external:
        return lambda s: s.setdefault("external_tables", {})
    return lambda s: s.setdefault("postgres", {}).setdefault(TABLES_KEY, {})


def _rows_of(external: bool) -> Callable[[State], dict[str, dict[str, list[str]]]]:
    if external:
        return lambda s: s.setdefault("external_rows", {})
    return lambda s: s.setdefault("postgres", {}).setdefault(ROWS_KEY, {})


def _qualified(match: re.Match[str], first: int) -> str:
    return (match.group(first) or "public.") + match.group(first + 1)


def _missing(name: str) -> int:
    print(f'ERROR:  relation "{name}" does not exist', file=sys.stderr)
    return 1


def statement(sql: str, update_state: Update, *, external: bool, database: str, separator: str) -> int:
    """Act out one statement :func:`handles` on ``database``; print its answer as ``psql -tA`` would."""
    tables_of, rows_of = _tables_of(external), _rows_of(external)
    compact = " ".join(sql.split())
    tables: list[str] = []
    update_state(lambda s: tables.extend(tables_of(s).get(database, [])))  # the tables as of this statement
    if match := re.fullmatch(rf"(?i)create table (?:if not exists )?{_NAME}.*", compact):
        name = _qualified(match, 1)
        update_state(lambda s: tables_of(s).setdefault(database, []).append(name)
                     if name not in tables_of(s).get(database, []) else None)
        return 0
    if match := re.fullmatch(rf"(?i)drop table (if exists )?{_NAME}", compact):
        name = _qualified(match, 2)
        if name not in tables:
            return 0 if match.group(1) else _missing(match.group(3))

        def drop(s: State) -> None:
            tables_of(s).get(database, []).remove(name)
            rows_of(s).get(database, {}).pop(name, None)

        update_state(drop)
        return 0
    if match := _INSERT.fullmatch(compact):
        name, row = _qualified(match, 1), match.group(3)
        if name not in tables:
            return _missing(match.group(2))
        update_state(lambda s: rows_of(s).setdefault(database, {}).setdefault(name, []).append(row))
        print("INSERT 0 1")
        return 0
    if match := _DELETE.fullmatch(compact):
        name = _qualified(match, 1)
        if name not in tables:
            return _missing(match.group(2))
        removed: list[str] = []
        update_state(lambda s: removed.extend(rows_of(s).get(database, {}).pop(name, [])))
        print(f"DELETE {len(removed)}")
        return 0
    if match := _COUNT.fullmatch(compact):
        name = _qualified(match, 1)
        if name not in tables:
            return _missing(match.group(2))
        rows: list[str] = []
        update_state(lambda s: rows.extend(rows_of(s).get(database, {}).get(name, [])))
        print(len(rows))
        return 0
    migrations = sorted(t for t in tables if t.split(".")[1] in ("migrations", "typeorm_migrations"))
    print(f"{len(tables)}{separator}{migrations[0] if migrations else ''}")
    return 0


def archived(state: State, *, external: bool, database: str) -> dict[str, Any]:
    """What ``pg_dump`` of ``database`` holds: its tables, and the rows of those that have any."""
    tables = sorted(_tables_of(external)(state).get(database, []))
    rows = _rows_of(external)(state).get(database, {})
    return {"database": database, "tables": tables, "rows": {t: list(rows[t]) for t in tables if rows.get(t)}}
