"""The configure stage's bootstrap pre-step: it asks the host (database-facts, as the database's role), decides with
``plan_bootstrap`` and renders configure with that decision; a clone without its source and an external database it
may not empty stall naming the field, before anything runs."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from stage_fakes import (
    SETTLED_FACTS,
    FakeKube,
    RecordingConnector,
    RecordingSession,
    make_context,
    make_runtime,
    spec_body,
    static_resolver,
)

from o4o_operator import errors
from o4o_operator.models import DeploymentInstanceStatus, ServerStatus, SourceStatus
from o4o_operator.pipeline.stages import StageName
from o4o_operator.rendering import render_script

COMMIT = "c" * 40
FINGERPRINT = "SHA256:" + "A" * 43
STATUS = DeploymentInstanceStatus(
    server=ServerStatus(name="shop-host.test", ip_address="198.51.100.5", host_key_fingerprint=FINGERPRINT,
                        host_key_fingerprints=(FINGERPRINT,)),
    source=SourceStatus(repository="https://example.com/o4o/platform.git", revision="main", commit=COMMIT))
EMPTY = {"tables": "0", "migrationsTable": "", "bootstrapped": "", "bootstrapStarted": ""}
COMMAND = {"mode": "command", "command": ["node", "dist/bootstrap.js"]}


async def _configure(facts: dict[str, str], database: dict[str, Any],
                     secrets: dict[str, dict[str, str]] | None = None,
                     **spec: Any) -> tuple[RecordingSession, Any]:
    session = RecordingSession({"release": COMMIT}, facts)
    kube = FakeKube({"ssh-key": {"ssh-privatekey": "not a real key"}, **(secrets or {})})
    driver = make_context(make_runtime(kube, RecordingConnector(session), static_resolver({})),
                          spec_body(database=database, **spec), STATUS)
    await driver.run(StageName.CONFIGURE)
    return session, driver


async def test_an_empty_database_gets_its_command_rendered_into_configure() -> None:
    session, driver = await _configure(EMPTY, {"bootstrap": COMMAND})
    host = dataclasses.replace(driver.instance.host_context(), bootstrap_mode="command",
                               bootstrap_command=("node", "dist/bootstrap.js"))
    assert session.scripts[0] == render_script("configure", host)
    (env, public), = session.fact_runs  # asked as the database's role, the password by env only
    assert set(env) == {"O4O_DB_PASSWORD"} and public["O4O_DB_MODE"] == "local"
    assert "BOOTSTRAP_COMMAND=(node dist/bootstrap.js)" in session.scripts[0]


async def test_a_settled_database_is_configured_without_a_bootstrap() -> None:
    session, driver = await _configure(SETTLED_FACTS, {"bootstrap": COMMAND})
    assert session.scripts[0] == render_script("configure", driver.instance.host_context())
    assert "BOOTSTRAP_MODE=''" in session.scripts[0]


async def test_a_failed_command_drops_the_local_database_first() -> None:
    session, _ = await _configure({**EMPTY, "tables": "3", "bootstrapStarted": "command"}, {"bootstrap": COMMAND})
    assert "BOOTSTRAP_RESET=1" in session.scripts[0]


async def test_a_clone_of_an_instance_that_does_not_exist_stalls_naming_its_field_before_configure_runs() -> None:
    with pytest.raises(errors.InvalidSpecError) as caught:
        await _configure(EMPTY, {"bootstrap": {"mode": "restore", "restore": {"instance": {"name": "gone"}}}})
    assert caught.value.reason == "CloneSourceNotFound"
    assert caught.value.field == "spec.database.bootstrap.restore.instance"


async def test_an_external_database_left_half_bootstrapped_stalls_and_is_never_dropped() -> None:
    external = {"host": "db.example.net", "port": "5432", "name": "shop", "user": "shop", "password": "pw-0123456789",
                "sslMode": "require"}
    with pytest.raises(errors.InvalidSpecError) as caught:
        await _configure({**EMPTY, "tables": "3", "bootstrapStarted": "command"},
                         {"bootstrap": COMMAND, "external": {"secretRef": {"name": "shop-db"}}}, {"shop-db": external})
    assert caught.value.reason == "DatabaseBootstrapFailed"
    assert caught.value.field == "spec.database.bootstrap.command"
    assert "its owner must empty it" in caught.value.message


async def test_synchronize_renders_the_data_source_and_seed_of_spec_build_api_and_the_generic_helper() -> None:
    build = {"api": {"dataSource": {"module": "dist/data-source.js", "export": "dataSource", "buildCommand": []},
                     "seedCommand": ["node", "dist/seed.js", "--all"]}}
    session, driver = await _configure(EMPTY, {"bootstrap": {"mode": "synchronize"}}, build=build)
    host = dataclasses.replace(driver.instance.host_context(), bootstrap_mode="synchronize")
    assert session.scripts[0] == render_script("configure", host)
    script = session.scripts[0]
    assert "BOOTSTRAP_MODE=synchronize" in script
    assert "DATA_SOURCE_MODULE=dist/data-source.js\nDATA_SOURCE_EXPORT=dataSource\nDATA_SOURCE_BUILD=()" in script
    assert "SEED_COMMAND=(node dist/seed.js --all)" in script
    assert "await dataSource.runMigrations({ transaction: 'all', fake: true });" in script  # the helper


async def test_o4os_default_data_source_is_bundled_with_its_own_tsup_at_the_bootstrap() -> None:
    session, _ = await _configure(EMPTY, {"bootstrap": {"mode": "synchronize"}})
    script = session.scripts[0]
    assert "DATA_SOURCE_MODULE=dist/o4o-bootstrap/connection.js\nDATA_SOURCE_EXPORT=AppDataSource" in script
    assert ("DATA_SOURCE_BUILD=(../../node_modules/.bin/tsup src/database/connection.ts --out-dir dist/o4o-bootstrap)"
            in script)
    assert "SEED_COMMAND=()" in script


async def test_the_helper_is_rendered_only_when_the_database_is_synchronized() -> None:
    session, _ = await _configure(EMPTY, {"bootstrap": COMMAND})
    assert "O4O_TYPEORM_BOOTSTRAP" not in session.scripts[0]
    session, _ = await _configure(SETTLED_FACTS, {"bootstrap": {"mode": "synchronize"}})
    assert "O4O_TYPEORM_BOOTSTRAP" not in session.scripts[0]  # settled: nothing to bootstrap


async def test_a_failed_synchronize_on_an_external_database_stalls_naming_the_data_source() -> None:
    external = {"host": "db.example.net", "port": "5432", "name": "shop", "user": "shop", "password": "pw-0123456789",
                "sslMode": "require"}
    with pytest.raises(errors.InvalidSpecError) as caught:
        await _configure({**EMPTY, "tables": "3", "bootstrapStarted": "synchronize"},
                         {"bootstrap": {"mode": "synchronize"}, "external": {"secretRef": {"name": "shop-db"}}},
                         {"shop-db": external})
    assert (caught.value.reason, caught.value.field) == ("DatabaseBootstrapFailed", "spec.build.api.dataSource")
