"""Restores and clones, decided: once per id, which backup an id names, the clone grant, the major version."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pydantic
import pytest

from o4o_operator.errors import InvalidSpecError, TransientError
from o4o_operator.models import DeploymentInstanceSpec, DeploymentInstanceStatus
from o4o_operator.models_database import (
    BACKUP_ID_PATTERN,
    BackupRecord,
    DatabaseSpec,
    RestoreStatus,
)
from o4o_operator.pipeline import backups, restore
from o4o_operator.pipeline.decisions import RunStage, Stall, current_inputs, decide, format_time
from o4o_operator.pipeline.facts import Facts
from o4o_operator.pipeline.stages import STAGES, StageName
from o4o_operator.pipeline.transitions import with_stage_failed, with_stage_started, with_stage_succeeded

TARGET = {"target": {"s3": {"endpoint": "http://127.0.0.1:9", "bucket": "b-1", "credentialsSecretRef": {"name": "s"}}}}
OLD, NEW = "20261201T000000Z-aaaaaaaaaaaa", "20261205T000000Z-bbbbbbbbbbbb"
NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)
FACTS = Facts(server_address="198.51.100.7", commit="a" * 40, env_version="v1")


def _body(**database: Any) -> dict[str, Any]:
    return {"domain": "shop.example.com", "apps": ["forum-core"], "provider": {"lightsail": {"region": "eu-west-1"}},
            "ssh": {"privateKeySecretRef": {"name": "k", "key": "ssh-privatekey"}},
            "source": {"repository": "https://example.com/o4o.git", "revision": "main"},
            "tls": {"email": "ops@example.com"}, "database": {"backup": TARGET, **database}}


def _record(identifier: str, version: str = "140013") -> BackupRecord:
    return BackupRecord(id=identifier, time="2026-12-01T00:00:00Z", size=10, sha256="0" * 64,
                        postgres_version=version, commit="a" * 40, key=f"p/{identifier}.dump")


def _spec(**database: Any) -> DatabaseSpec:
    return DatabaseSpec.model_validate({"backup": TARGET, **database})


def test_the_backup_id_pattern_is_the_one_backups_are_named_with() -> None:
    assert backups.ID_PATTERN.pattern == BACKUP_ID_PATTERN


def test_an_in_place_restore_is_due_once_per_id() -> None:
    spec = _spec(restore={"backup": OLD})
    assert restore.pending_restore(spec, None) == OLD
    done = RestoreStatus(backup=OLD, finished_at="2026-12-06T00:00:00Z")
    assert restore.pending_restore(spec, done) is None  # re-applying the same manifest restores nothing
    assert restore.pending_restore(_spec(restore={"backup": NEW}), done) == NEW  # a new id restores once more
    assert restore.pending_restore(_spec(), done) is None


def test_a_malformed_restore_id_is_refused_by_the_model() -> None:
    for value in ("latest", "x", OLD + "\n", "../" + OLD):
        with pytest.raises(pydantic.ValidationError):
            _spec(restore={"backup": value})


def test_an_in_place_restore_needs_the_target_and_a_local_database() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        restore.refuse_unrestorable(DatabaseSpec.model_validate({"restore": {"backup": OLD}}))
    assert (caught.value.field, caught.value.reason) == ("spec.database.restore", "RestoreUnavailable")
    external = _spec(restore={"backup": OLD}, external={"secretRef": {"name": "db"}})
    with pytest.raises(InvalidSpecError, match="never dropped"):
        restore.refuse_unrestorable(external)
    restore.refuse_unrestorable(_spec(restore={"backup": OLD}))


def test_an_id_or_latest_names_one_record() -> None:
    records = [_record(OLD), _record(NEW)]
    assert restore.find_backup(records, "latest") == records[1]
    assert restore.find_backup(records, OLD) == records[0]
    assert restore.find_backup(records, "20261203T000000Z-cccccccccccc") is None
    assert restore.find_backup([], "latest") is None
    error = restore.unknown_backup("spec.database.restore.backup", OLD, "instance team-a/shop")
    assert (error.field, error.reason) == ("spec.database.restore.backup", "BackupNotFound")
    assert error.message.startswith("spec.database.restore.backup: no backup " + OLD)


def test_a_record_from_an_objects_metadata() -> None:
    metadata = backups.object_metadata(_record(OLD))
    found = restore.record_from_metadata("p/x.dump", metadata, 10)
    assert (found.id, found.sha256, found.postgres_version, found.size) == (OLD, "0" * 64, "140013", 10)
    template = restore.record_from_metadata("t/base.dump", {}, 5, sha256="f" * 64)
    assert (template.id, template.sha256, template.postgres_version) == ("", "f" * 64, "")
    assert restore.record_from_metadata("p/x.dump", {"backup-id": "../evil"}, 1).id == ""
    assert found.uploads is None  # a backup made before uploads were backed up: the database only


def test_a_record_from_metadata_names_the_uploads_beside_the_dump() -> None:
    metadata = {**backups.object_metadata(_record(OLD)), "uploads-size": "77", "uploads-sha256": "d" * 64}
    found = restore.record_from_metadata("p/x.dump", metadata, 10)
    assert found.uploads is not None
    assert (found.uploads.key, found.uploads.size, found.uploads.sha256) == ("p/x.uploads.tar.gz", 77, "d" * 64)
    assert restore.record_from_metadata("p/x.dump", {**metadata, "uploads-sha256": "../x"}, 10).uploads is None


FIELD, WHERE = "spec.database.restore.backup", "instance team-a/shop"


def test_a_listed_backup_is_restored_only_while_its_object_exists() -> None:
    listed = _record(OLD)
    head = {"ContentLength": 10, "Metadata": backups.object_metadata(listed)}
    assert restore.stored_backup(FIELD, OLD, WHERE, listed, listed.key, head) == listed
    # Retention pruned it (status keeps the newest 10 records, retention may keep fewer objects): a stall, not a
    # download that fails at every retry.
    with pytest.raises(InvalidSpecError) as caught:
        restore.stored_backup(FIELD, OLD, WHERE, listed, listed.key, None)
    assert (caught.value.field, caught.value.reason) == (FIELD, "BackupNotFound")
    assert OLD in caught.value.message and "pruned" in caught.value.message
    assert caught.value.message.startswith(FIELD + ": backup " + OLD)


def test_an_unlisted_backup_is_its_objects_own_record_when_that_names_the_id() -> None:
    key = f"p/{OLD}.dump"
    head = {"ContentLength": 10, "Metadata": backups.object_metadata(_record(OLD))}
    assert restore.stored_backup(FIELD, OLD, WHERE, None, key, head).id == OLD
    for answer in (None, {"ContentLength": 10, "Metadata": {}},
                   {"ContentLength": 10, "Metadata": backups.object_metadata(_record(NEW))}):
        with pytest.raises(InvalidSpecError) as caught:
            restore.stored_backup(FIELD, OLD, WHERE, None, key, answer)
        assert (caught.value.field, caught.value.reason) == (FIELD, "BackupNotFound") and OLD in caught.value.message


def _configure_failed(body: dict[str, Any], error: InvalidSpecError) -> DeploymentInstanceStatus:
    """Every stage before configure done, and configure failed with ``error`` on ``body``'s inputs."""
    spec = DeploymentInstanceSpec.model_validate(body)
    hashes = current_inputs(spec.to_body(), FACTS)
    status = DeploymentInstanceStatus()
    for stage in STAGES:
        status = with_stage_started(status, stage, hashes[stage.name.value], 1, NOW)
        if stage.name is StageName.CONFIGURE:
            failed = with_stage_failed(status, stage, error, "uid", NOW)
            return failed.model_copy(update={"last_check_time": format_time(NOW)})
        status = with_stage_succeeded(status, stage, "done", NOW)
    raise AssertionError("no configure stage")


def _decide(body: dict[str, Any], status: DeploymentInstanceStatus) -> Any:
    spec = DeploymentInstanceSpec.model_validate(body)
    return decide(spec, spec.to_body(), status, FACTS, {}, NOW)


def test_a_pruned_backup_stalls_until_the_spec_names_another() -> None:
    body = _body(restore={"backup": OLD})
    with pytest.raises(InvalidSpecError) as caught:
        restore.stored_backup(FIELD, OLD, WHERE, _record(OLD), _record(OLD).key, None)
    status = _configure_failed(body, caught.value)
    stalled = _decide(body, status)
    assert isinstance(stalled, Stall) and (stalled.stage.name, stalled.reason) == (StageName.CONFIGURE,
                                                                                     "BackupNotFound")
    assert FIELD in stalled.message and OLD in stalled.message
    assert isinstance(_decide(body, status), Stall)  # not retried while the spec names it
    again = _decide(_body(restore={"backup": NEW}), status)  # the stages the field feeds run again, up to configure
    assert isinstance(again, RunStage) and again.stage.name in (StageName.DATABASE, StageName.CONFIGURE)


@pytest.mark.parametrize(("clone", "source", "annotation", "granted"), [
    ("team-a", "team-a", None, True),  # the same namespace needs no grant
    ("team-b", "team-a", None, False),
    ("team-b", "team-a", "team-c", False),
    ("team-b", "team-a", "team-c, team-b", True),
    ("team-b", "team-a", "*", True),
    ("team-b", "team-a", "team-b-2", False),
])
def test_another_namespace_clones_only_with_the_sources_grant(clone: str, source: str, annotation: str | None,
                                                               granted: bool) -> None:
    annotations = {} if annotation is None else {restore.CLONE_GRANT_ANNOTATION: annotation}
    assert restore.clone_granted(clone, source, annotations) is granted


@pytest.mark.parametrize(("number", "major"), [("140013", "14"), ("160004", "16"), ("90624", "9.6"),
                                               ("100023", "10")])
def test_major_versions(number: str, major: str) -> None:
    assert restore.major_version(number) == major


def test_a_version_mismatch_stalls_naming_both_versions() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        restore.check_version("spec.database.bootstrap.restore", _record(OLD, "160004"), "140013")
    assert caught.value.reason == "PostgresVersionMismatch"
    assert caught.value.field == "spec.database.bootstrap.restore"
    assert re.search(r"PostgreSQL 16 .*PostgreSQL 14", caught.value.message)
    restore.check_version("f", _record(OLD, "140011"), "140013")  # the same major: a minor update restores
    restore.check_version("f", _record(OLD, ""), "140013")  # a dump that does not say is not checked
    with pytest.raises(TransientError):
        restore.check_version("f", _record(OLD), "")  # the server did not say: never a restore on a guess


def test_the_restore_the_host_reports_is_recorded_only_for_the_wanted_id() -> None:
    results = {"restoredBackup": OLD, "restoreStartedAt": "2026-12-06T10:00:00Z",
               "restoreFinishedAt": "2026-12-06T10:01:00Z", "restorePreBackup": NEW}
    done = restore.restore_from_results(results, OLD)
    assert done == RestoreStatus(backup=OLD, started_at="2026-12-06T10:00:00Z", finished_at="2026-12-06T10:01:00Z",
                                 outcome="Succeeded", pre_restore_backup=NEW)
    assert done.to_body()["preRestoreBackup"] == NEW
    assert restore.restore_from_results(results, NEW) is None
    assert restore.restore_from_results({}, OLD) is None


def test_a_clone_names_exactly_one_source() -> None:
    for source in ({}, {"instance": {"name": "a"}, "template": {"key": "t/a.dump"}}):
        with pytest.raises(pydantic.ValidationError, match="exactly one"):
            DatabaseSpec.model_validate({"bootstrap": {"mode": "restore", "restore": source}})
    for key in ("a.dump", "t/../a.dump", "/t/a.dump", "t/a dump"):
        with pytest.raises(pydantic.ValidationError):
            DatabaseSpec.model_validate({"bootstrap": {"mode": "restore", "restore": {"template": {"key": key}}}})
