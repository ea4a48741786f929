"""Restores and clones, decided: once per id, which backup an id names, the clone grant, the major version."""

from __future__ import annotations

import re
from typing import Any

import pydantic
import pytest

from o4o_operator.errors import InvalidSpecError, TransientError
from o4o_operator.models_database import (
    BACKUP_ID_PATTERN,
    BackupRecord,
    DatabaseSpec,
    RestoreStatus,
)
from o4o_operator.pipeline import backups, restore

TARGET = {"target": {"s3": {"endpoint": "http://127.0.0.1:9", "bucket": "b-1", "credentialsSecretRef": {"name": "s"}}}}
OLD, NEW = "20261201T000000Z-aaaaaaaaaaaa", "20261205T000000Z-bbbbbbbbbbbb"


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
