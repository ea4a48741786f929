"""database-facts.sh against a real PostgreSQL (a throwaway cluster on this machine, with TLS on as Debian's is):
"empty" as the bootstrap defines it, counted by PostgreSQL itself as the instance's own role. The sandbox's
psql shim only stands in for this query; here the query meets the real catalogue."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from o4o_operator.markers import parse_results
from o4o_operator.pipeline.bootstrap import DatabaseFacts
from o4o_operator.rendering import HostContext, render_script
from o4o_operator.testing.fixture_o4o import local_pg

CONTEXT = HostContext(domain="shop.example.com", instance_name="shop", namespace="team",
                      repository="https://example.com/o4o/platform.git", revision="main", tls_email="ops@example.com")
NAME, PASSWORD = "o4o_team_shop", "facts-Password_0123456789"

if local_pg.available():
    pytest.skip(f"no local PostgreSQL: {local_pg.available()}", allow_module_level=True)


@pytest.fixture(scope="module")
def pg() -> Iterator[local_pg.LocalPostgres]:
    with local_pg.LocalPostgres() as cluster:
        cluster.create_database(NAME, NAME, PASSWORD)
        yield cluster


def _runuser_as_ourselves(directory: Path) -> str:
    """A ``runuser -u USER -- CMD`` that runs CMD as this process's user: the script asks for the instance's
    user, which this machine has not; the database is reached as the role all the same."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    runuser = bin_dir / "runuser"
    runuser.write_text('#!/bin/sh\nwhile [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n')
    runuser.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


def facts(pg: local_pg.LocalPostgres, root: Path) -> DatabaseFacts:
    env = {"PATH": _runuser_as_ourselves(root), "O4O_ROOT": str(root), "O4O_DB_MODE": "external",
           "O4O_DB_HOST": "127.0.0.1",
           "O4O_DB_PORT": str(pg.port), "O4O_DB_NAME": NAME, "O4O_DB_USER": NAME, "O4O_DB_PASSWORD": PASSWORD,
           "O4O_DB_SSLMODE": "require"}
    run = subprocess.run(["bash", "-s"], input=render_script("database-facts", CONTEXT), text=True,
                         capture_output=True, timeout=60, check=False, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    return DatabaseFacts.from_results(parse_results(run.stdout.splitlines()))


def as_role(pg: local_pg.LocalPostgres, sql: str) -> None:
    pg.psql(sql, database=NAME, user=NAME, password=PASSWORD)


def test_empty_is_what_postgresql_itself_counts(pg: local_pg.LocalPostgres, tmp_path: Path) -> None:
    empty = facts(pg, tmp_path)
    assert (empty.tables, empty.migrations_table, empty.empty) == (0, "", True)
    assert (empty.bootstrapped, empty.bootstrap_started) == ("", "")

    pg.psql('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"', database=NAME)  # functions only: still empty
    as_role(pg, "CREATE VIEW answer AS SELECT 42")  # a view is no table
    assert facts(pg, tmp_path).empty

    as_role(pg, "CREATE SCHEMA cosmetics")
    as_role(pg, "CREATE TABLE cosmetics.products (id int)")  # any application schema counts
    one = facts(pg, tmp_path)
    assert (one.tables, one.empty, one.describe()) == (1, False, "not empty: 1 table")

    as_role(pg, "CREATE TABLE public.migrations (id int)")
    as_role(pg, "CREATE TABLE events (id int) PARTITION BY RANGE (id)")
    more = facts(pg, tmp_path)
    assert (more.tables, more.migrations_table) == (3, "public.migrations")


def test_root_s_records_are_reported(pg: local_pg.LocalPostgres, tmp_path: Path) -> None:
    state = tmp_path / CONTEXT.state_dir.lstrip("/")
    state.mkdir(parents=True)
    (state / "bootstrap.started").write_text("mode=command\nat=2026-12-06T19:00:00Z\ncommit=" + "a" * 40 + "\n")
    assert facts(pg, tmp_path).bootstrap_started == "command"
    (state / "bootstrap").write_text("mode=command\nat=2026-12-06T19:01:00Z\ncommit=" + "a" * 40 + "\n")
    assert facts(pg, tmp_path).bootstrapped == "command 2026-12-06T19:01:00Z " + "a" * 40
