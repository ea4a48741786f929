"""Whether an instance's database is bootstrapped now, and how (``spec.database.bootstrap``).

Owns: :class:`DatabaseFacts` (what ``database-facts.sh`` reports of the database and of the host's own record,
parsed from its ``::o4o::result`` lines), the definition of an *empty* database (:attr:`DatabaseFacts.empty`)
and :func:`plan_bootstrap`, the decision: bootstrap only an empty database, only once, and after a failed
bootstrap (a command, or a synchronize from the API's entities) start again from empty (a local database the
operator made is dropped and created again; an external one is never dropped: its owner must empty it). Mode
``restore`` (a clone) is planned here like the others; where its dump comes from is ``pipeline/restore.py``'s. What a
synchronize runs (``spec.build.api.dataSource``, ``seedCommand``) reaches the script through the host context.
Purely computational: no I/O. The configure stage's script checks emptiness again before it runs a bootstrap,
so a stale decision can never bootstrap a database that is not empty.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from o4o_operator.errors import InvalidSpecError, TransientError
from o4o_operator.models_database import (
    BOOTSTRAP_COMMAND_FIELD,
    BOOTSTRAP_RESTORE_FIELD,
    DATA_SOURCE_FIELD,
    BootstrapMode,
    DatabaseSpec,
)

EMPTY_DEFINITION = ("no table (ordinary or partitioned, not an extension's own) in any schema but pg_catalog, "
                    "information_schema, pg_toast* and pg_temp*, and no migrations table")
"""What "empty" means, as the README and ``kubectl explain di.spec.database.bootstrap`` say it."""
FACT_KEYS = ("tables", "migrationsTable", "bootstrapped", "bootstrapStarted")
LEAVES_TABLES = (BootstrapMode.COMMAND, BootstrapMode.SYNCHRONIZE, BootstrapMode.RESTORE)
"""Modes whose unfinished run may leave tables behind, so that the next try starts again from empty (a failed
first migration run, mode migrate, carries on as every migration run does)."""


@dataclasses.dataclass(frozen=True)
class DatabaseFacts:
    """What the host reported: the database's tables and the instance's bootstrap record."""

    tables: int
    """Tables in the application's schemas (see :data:`EMPTY_DEFINITION`)."""
    migrations_table: str
    """``schema.name`` of a migrations table (``migrations`` or ``typeorm_migrations``), empty when none."""
    bootstrapped: str
    """The host's record of a finished bootstrap (``<mode> <time> <commit>``), empty when none."""
    bootstrap_started: str
    """The mode of a bootstrap that began and never finished (it failed, or the host went away), else empty."""
    postgres_version: str = ""
    """The server's ``server_version_num`` (empty when the script did not say): a restore's dump must match."""

    @property
    def empty(self) -> bool:
        return self.tables == 0 and not self.migrations_table

    @classmethod
    def from_results(cls, results: Mapping[str, str]) -> DatabaseFacts:
        """From ``database-facts.sh``'s results; a missing or malformed one is transient (never a bootstrap)."""
        missing = [key for key in FACT_KEYS if key not in results]
        tables = results.get("tables", "")
        if missing or not tables.isdigit():
            raise TransientError("DatabaseUnavailable", "The database's facts could not be read (missing: "
                                 f"{', '.join(missing) or 'a table count'}); nothing was bootstrapped")
        return cls(int(tables), results["migrationsTable"], results["bootstrapped"], results["bootstrapStarted"],
                   results.get("postgresVersion", ""))

    def describe(self) -> str:
        if self.empty:
            return "empty"
        what = [f"{self.tables} table{'' if self.tables == 1 else 's'}"]
        if self.migrations_table:
            what.append(f"migrations table {self.migrations_table}")
        return "not empty: " + ", ".join(what)


class BootstrapAction(enum.StrEnum):
    NONE = "none"
    """Bootstrapped before, or not empty: nothing to do (the migrations run as every release's do)."""
    RUN = "run"
    RESET_AND_RUN = "reset-and-run"
    """A bootstrap of the operator's own local database failed: drop it, create it again, bootstrap."""


@dataclasses.dataclass(frozen=True)
class BootstrapPlan:
    action: BootstrapAction
    mode: BootstrapMode | None = None
    command: tuple[str, ...] = ()
    """With mode command: ``spec.database.bootstrap.command`` (mode synchronize reads ``spec.build.api``)."""
    note: str = ""
    """Why, for the stage's log."""


def _not_emptied(facts: DatabaseFacts, started: str, spec: DatabaseSpec) -> InvalidSpecError:
    if started == BootstrapMode.SYNCHRONIZE:
        field, what = DATA_SOURCE_FIELD, "synchronize"
    elif started == BootstrapMode.RESTORE:
        field, what = BOOTSTRAP_RESTORE_FIELD, "a restore"
    else:
        field, what = BOOTSTRAP_COMMAND_FIELD, " ".join(spec.bootstrap.command or ()) or started
    return InvalidSpecError(field, f"an earlier bootstrap ({what}) failed on the "
                            f"external database, which is now {facts.describe()}. The operator never drops an "
                            "external database: its owner must empty it; then a change to the spec or to its Secret "
                            "resumes the instance and the bootstrap starts again",
                            reason="DatabaseBootstrapFailed")


def plan_bootstrap(spec: DatabaseSpec, facts: DatabaseFacts) -> BootstrapPlan:
    """What the configure stage does about the bootstrap before it migrates."""
    bootstrap = spec.bootstrap
    if facts.bootstrapped:
        return BootstrapPlan(BootstrapAction.NONE, note=f"bootstrapped before ({facts.bootstrapped})")
    if facts.bootstrap_started == BootstrapMode.MIGRATE and bootstrap.mode is BootstrapMode.MIGRATE:
        # The migrations began on an empty database and have not yet succeeded: they carry on (MigrationFailed
        # retries them as it always has); their first success records the bootstrap.
        return BootstrapPlan(BootstrapAction.RUN, BootstrapMode.MIGRATE, note="the first migration run goes on")
    reset = False
    if not facts.empty:
        if facts.bootstrap_started not in LEAVES_TABLES:
            return BootstrapPlan(BootstrapAction.NONE, note=f"the database is {facts.describe()}: not bootstrapped")
        if not spec.local:
            raise _not_emptied(facts, facts.bootstrap_started, spec)
        reset = True
    if bootstrap.mode is BootstrapMode.MIGRATE:
        if reset:  # a failed command's leftovers; the user has since chosen the migrations alone
            return BootstrapPlan(BootstrapAction.RESET_AND_RUN, BootstrapMode.MIGRATE,
                                 note="an earlier bootstrap failed: the database starts again from empty")
        return BootstrapPlan(BootstrapAction.RUN, BootstrapMode.MIGRATE, note="the database is empty")
    if bootstrap.mode in (BootstrapMode.SYNCHRONIZE, BootstrapMode.RESTORE):
        if reset:
            return BootstrapPlan(BootstrapAction.RESET_AND_RUN, bootstrap.mode,
                                 note="an earlier bootstrap failed: the database starts again from empty")
        return BootstrapPlan(BootstrapAction.RUN, bootstrap.mode, note="the database is empty")
    command = bootstrap.command or ()
    if reset:
        return BootstrapPlan(BootstrapAction.RESET_AND_RUN, BootstrapMode.COMMAND, command,
                             note="an earlier bootstrap failed: the database starts again from empty")
    return BootstrapPlan(BootstrapAction.RUN, BootstrapMode.COMMAND, command, note="the database is empty")
