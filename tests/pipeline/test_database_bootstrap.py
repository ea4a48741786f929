"""``spec.database.bootstrap``: the model's defaults and refusals, and the pure bootstrap decision."""

from __future__ import annotations

import pydantic
import pytest

from o4o_operator import models_build, models_database
from o4o_operator.errors import InvalidSpecError, TransientError
from o4o_operator.models_database import BootstrapMode, DatabaseSpec
from o4o_operator.pipeline.bootstrap import EMPTY_DEFINITION, BootstrapAction, DatabaseFacts, plan_bootstrap


def test_bootstrap_defaults_to_migrate_so_existing_instances_keep_their_behaviour() -> None:
    spec = DatabaseSpec.model_validate({})
    assert spec.bootstrap.mode is BootstrapMode.MIGRATE
    assert spec.bootstrap.command is None
    assert spec.to_body()["bootstrap"] == {"mode": "migrate"}


def test_command_mode_needs_its_command_and_plain_words() -> None:
    with pytest.raises(pydantic.ValidationError, match="mode command needs command"):
        DatabaseSpec.model_validate({"bootstrap": {"mode": "command"}})
    with pytest.raises(pydantic.ValidationError):
        DatabaseSpec.model_validate({"bootstrap": {"mode": "command", "command": ["node", "a;b"]}})
    spec = DatabaseSpec.model_validate({"bootstrap": {"mode": "command", "command": ["node", "dist/boot.js"]}})
    assert spec.bootstrap.command == ("node", "dist/boot.js")


def test_restore_needs_its_source_in_the_model() -> None:
    spec = DatabaseSpec.model_validate({"bootstrap": {"mode": "restore", "restore": {"instance": {"name": "shop"}}}})
    assert spec.bootstrap.mode is BootstrapMode.RESTORE and spec.bootstrap.restore is not None
    assert spec.bootstrap.restore.backup == "latest"
    with pytest.raises(pydantic.ValidationError, match="mode restore needs restore"):
        DatabaseSpec.model_validate({"bootstrap": {"mode": "restore"}})


def test_the_command_word_rule_is_the_builds() -> None:
    assert models_database.COMMAND_WORD_PATTERN == models_build.COMMAND_WORD_PATTERN


# ---- the decision: bootstrap only an empty database, only once, and start again from empty after a failure


def _facts(tables: int = 0, migrations: str = "", bootstrapped: str = "", started: str = "") -> DatabaseFacts:
    return DatabaseFacts.from_results({"tables": str(tables), "migrationsTable": migrations,
                                       "bootstrapped": bootstrapped, "bootstrapStarted": started})


CLONE = {"mode": "restore", "restore": {"instance": {"name": "shop"}, "backup": "latest"}}
COMMAND = {"mode": "command", "command": ["node", "dist/bootstrap.js"]}
EXTERNAL = {"external": {"secretRef": {"name": "shop-db"}}}


def _spec(bootstrap: dict[str, object] | None = None, **more: object) -> DatabaseSpec:
    return DatabaseSpec.model_validate({"bootstrap": bootstrap or {}, **more})


def test_empty_means_no_table_and_no_migrations_table() -> None:
    assert _facts().empty
    assert not _facts(tables=1).empty
    assert not _facts(migrations="public.migrations").empty
    assert _facts(tables=2, migrations="public.migrations").describe() == \
        "not empty: 2 tables, migrations table public.migrations"
    assert "pg_catalog" in EMPTY_DEFINITION and "migrations table" in EMPTY_DEFINITION


def test_missing_or_malformed_facts_never_lead_to_a_bootstrap() -> None:
    with pytest.raises(TransientError) as caught:
        DatabaseFacts.from_results({"tables": "0"})
    assert caught.value.reason == "DatabaseUnavailable"
    with pytest.raises(TransientError):
        DatabaseFacts.from_results({"tables": "", "migrationsTable": "", "bootstrapped": "", "bootstrapStarted": ""})


def test_an_empty_database_is_bootstrapped_with_the_command() -> None:
    plan = plan_bootstrap(_spec(COMMAND), _facts())
    assert (plan.action, plan.mode, plan.command) == (BootstrapAction.RUN, BootstrapMode.COMMAND,
                                                      ("node", "dist/bootstrap.js"))


def test_the_default_records_the_first_migration_run_as_the_bootstrap() -> None:
    plan = plan_bootstrap(_spec(), _facts())
    assert (plan.action, plan.mode, plan.command) == (BootstrapAction.RUN, BootstrapMode.MIGRATE, ())
    # begun, half-migrated: the migrations go on (MigrationFailed retries them), nothing is dropped
    assert plan_bootstrap(_spec(), _facts(tables=30, started="migrate")).action is BootstrapAction.RUN


@pytest.mark.parametrize("facts", [_facts(tables=1), _facts(migrations="public.migrations"),
                                   _facts(tables=1, started="migrate")])
def test_a_database_that_is_not_empty_is_never_bootstrapped(facts: DatabaseFacts) -> None:
    for spec in (_spec(COMMAND), _spec(COMMAND, **EXTERNAL), _spec(CLONE)):
        assert plan_bootstrap(spec, facts).action is BootstrapAction.NONE


def test_a_bootstrapped_database_is_never_bootstrapped_again() -> None:
    done = "command 2026-12-06T19:00:00Z " + "a" * 40
    for facts in (_facts(bootstrapped=done), _facts(tables=3, bootstrapped=done)):
        assert plan_bootstrap(_spec(COMMAND), facts).action is BootstrapAction.NONE


def test_after_a_failed_command_a_local_database_starts_again_from_empty() -> None:
    plan = plan_bootstrap(_spec(COMMAND), _facts(tables=4, started="command"))
    assert (plan.action, plan.mode) == (BootstrapAction.RESET_AND_RUN, BootstrapMode.COMMAND)


def test_after_a_failed_command_an_external_database_is_never_dropped() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        plan_bootstrap(_spec(COMMAND, **EXTERNAL), _facts(tables=4, started="command"))
    assert caught.value.reason == "DatabaseBootstrapFailed"
    assert caught.value.field == "spec.database.bootstrap.command"
    assert "its owner must empty it" in caught.value.message
    # emptied by its owner: bootstrapped again
    assert plan_bootstrap(_spec(COMMAND, **EXTERNAL), _facts(started="command")).action is BootstrapAction.RUN


def test_a_clone_is_planned_on_an_empty_database_and_starts_again_from_empty_after_a_failure() -> None:
    plan = plan_bootstrap(_spec(CLONE), _facts())
    assert (plan.action, plan.mode) == (BootstrapAction.RUN, BootstrapMode.RESTORE)
    plan = plan_bootstrap(_spec(CLONE), _facts(tables=4, started="restore"))
    assert (plan.action, plan.mode) == (BootstrapAction.RESET_AND_RUN, BootstrapMode.RESTORE)
    with pytest.raises(InvalidSpecError) as caught:  # an external database is never dropped
        plan_bootstrap(_spec(CLONE, **EXTERNAL), _facts(tables=4, started="restore"))
    assert caught.value.field == "spec.database.bootstrap.restore"


# ---- mode synchronize: the schema from the entities, the migrations recorded, then the seed

SYNCHRONIZE = {"mode": "synchronize"}


def test_synchronize_is_a_mode_of_its_own_needing_no_command() -> None:
    spec = _spec(SYNCHRONIZE)
    assert spec.bootstrap.mode is BootstrapMode.SYNCHRONIZE
    assert spec.to_body()["bootstrap"] == {"mode": "synchronize"}


def test_an_empty_database_is_synchronized_and_the_plan_carries_no_command() -> None:
    plan = plan_bootstrap(_spec(SYNCHRONIZE), _facts())
    assert (plan.action, plan.mode, plan.command) == (BootstrapAction.RUN, BootstrapMode.SYNCHRONIZE, ())


@pytest.mark.parametrize("facts", [_facts(tables=1), _facts(migrations="public.typeorm_migrations"),
                                   _facts(tables=3, started="migrate")])
def test_a_database_that_is_not_empty_is_never_synchronized(facts: DatabaseFacts) -> None:
    assert plan_bootstrap(_spec(SYNCHRONIZE), facts).action is BootstrapAction.NONE


def test_a_synchronized_database_is_never_bootstrapped_again() -> None:
    plan = plan_bootstrap(_spec(SYNCHRONIZE), _facts(tables=9, bootstrapped="synchronize 2026-01-01T00:00:00Z abc"))
    assert plan.action is BootstrapAction.NONE


def test_after_a_failed_synchronize_a_local_database_starts_again_from_empty() -> None:
    plan = plan_bootstrap(_spec(SYNCHRONIZE), _facts(tables=4, started="synchronize"))
    assert (plan.action, plan.mode) == (BootstrapAction.RESET_AND_RUN, BootstrapMode.SYNCHRONIZE)
    # the user has since chosen a command: that starts from empty too
    plan = plan_bootstrap(_spec(COMMAND), _facts(tables=4, started="synchronize"))
    assert (plan.action, plan.mode) == (BootstrapAction.RESET_AND_RUN, BootstrapMode.COMMAND)


def test_after_a_failed_synchronize_an_external_database_is_never_dropped_and_the_data_source_is_named() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        plan_bootstrap(_spec(SYNCHRONIZE, **EXTERNAL), _facts(tables=4, started="synchronize"))
    assert caught.value.reason == "DatabaseBootstrapFailed"
    assert caught.value.field == "spec.build.api.dataSource"
    assert "its owner must empty it" in caught.value.message
