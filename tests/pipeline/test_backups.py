"""Backups' object layout, records and retention: pure decisions (pipeline/backups.py)."""

from __future__ import annotations

import datetime

import pydantic
import pytest

from o4o_operator.errors import TransientError
from o4o_operator.models import DeploymentInstanceSpec
from o4o_operator.models_database import BackupRetention
from o4o_operator.pipeline import backups
from o4o_operator.pipeline.backups import StoredObject
from o4o_operator.runner.worker import _invalid_spec_message

NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)
OWN = backups.instance_prefix("o4o-backups", "shop-ns", "shop", "0b6a-uid")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _key(hours_ago: float, prefix: str = OWN) -> str:
    moment = NOW - datetime.timedelta(hours=hours_ago)
    return backups.object_key(prefix, backups.backup_id(moment, COMMIT))


def _objects(*keys: str) -> list[StoredObject]:
    return [StoredObject(key, 100) for key in keys]


def test_layout_is_prefix_namespace_name_uid_then_time_and_commit() -> None:
    assert OWN == "o4o-backups/shop-ns/shop/0b6a-uid/"
    identifier = backups.backup_id(NOW, COMMIT)
    assert identifier == "20261206T120000Z-0123456789ab"
    key = backups.object_key(OWN, identifier)
    assert key == "o4o-backups/shop-ns/shop/0b6a-uid/20261206T120000Z-0123456789ab.dump"
    assert backups.id_of_key(OWN, key) == identifier
    assert backups.time_of_id(identifier) == NOW


@pytest.mark.parametrize("key", [
    "o4o-backups/shop-ns/shop/other-uid/20261206T120000Z-0123456789ab.dump",  # the same name's earlier instance
    "o4o-backups/shop-ns/shop/0b6a-uid/nested/20261206T120000Z-0123456789ab.dump",
    "o4o-backups/shop-ns/shop/0b6a-uid/20261206T120000Z-0123456789ab.dump.json",
    "o4o-backups/shop-ns/shop/0b6a-uid/notes.dump",
])
def test_keys_that_are_not_our_backups_are_not_ours(key: str) -> None:
    assert backups.id_of_key(OWN, key) is None


def test_a_bad_commit_makes_no_id() -> None:
    with pytest.raises(ValueError, match="backup id"):
        backups.backup_id(NOW, "../../x")


def test_retention_by_count_keeps_the_newest() -> None:
    keys = [_key(hours) for hours in (1, 2, 3, 4, 5)]
    doomed = backups.backups_to_prune(_objects(*reversed(keys)), OWN, BackupRetention(count=3), NOW)
    assert doomed == keys[3:]


def test_retention_by_age_and_count_together() -> None:
    keys = [_key(hours) for hours in (1, 30, 50, 100)]
    doomed = backups.backups_to_prune(_objects(*keys), OWN, BackupRetention(count=3, max_age="2d"), NOW)
    assert doomed == [keys[2], keys[3]]  # keys[2]: 50 h > 48 h; keys[3]: the fourth


def test_the_newest_backup_is_kept_however_old() -> None:
    keys = [_key(hours) for hours in (100, 200)]
    doomed = backups.backups_to_prune(_objects(*keys), OWN, BackupRetention(count=5, max_age="1h"), NOW)
    assert doomed == [keys[1]]


def test_retention_neither_deletes_nor_counts_anything_not_ours() -> None:
    other = backups.instance_prefix("o4o-backups", "shop-ns", "shop", "older-uid")
    foreign = [_key(500, other), OWN + "README", OWN + "sub/" + _key(600).rsplit("/", 1)[1]]
    mine = [_key(1), _key(2)]
    doomed = backups.backups_to_prune(_objects(*foreign, *mine), OWN, BackupRetention(count=1), NOW)
    assert doomed == [mine[1]]


def _uploads(key: str) -> str:
    return backups.uploads_key(key)


def test_a_backups_uploads_lie_beside_its_dump_and_are_not_counted_as_a_backup() -> None:
    key = _key(0)
    assert _uploads(key) == "o4o-backups/shop-ns/shop/0b6a-uid/20261206T120000Z-0123456789ab.uploads.tar.gz"
    assert backups.id_of_key(OWN, _uploads(key)) is None
    assert backups.id_of_key(OWN, _uploads(key), backups.UPLOADS_SUFFIX) == "20261206T120000Z-0123456789ab"
    with pytest.raises(ValueError, match="dump"):
        backups.uploads_key(OWN + "README")


def test_retention_prunes_a_backups_uploads_with_its_dump() -> None:
    keys = [_key(hours) for hours in (1, 2, 3)]
    listed = _objects(*keys, *(_uploads(key) for key in keys[:2]))  # the oldest was made before uploads were
    doomed = backups.backups_to_prune(listed, OWN, BackupRetention(count=1), NOW)
    assert doomed == [keys[1], _uploads(keys[1]), keys[2]]


def test_retention_prunes_uploads_an_interrupted_backup_left_but_not_a_newer_one_still_uploading() -> None:
    dump = _key(5)
    left, uploading = _uploads(_key(10)), _uploads(_key(1))
    other = _uploads(_key(20, backups.instance_prefix("o4o-backups", "shop-ns", "shop", "older-uid")))
    doomed = backups.backups_to_prune(_objects(dump, left, uploading, other), OWN, BackupRetention(count=3), NOW)
    assert doomed == [left]
    assert backups.backups_to_prune(_objects(left), OWN, BackupRetention(count=3), NOW) == []  # no backup yet


def test_max_age_in_hours_and_days() -> None:
    assert BackupRetention(max_age="36h").max_age_seconds == 36 * 3600
    assert BackupRetention(max_age="30d").max_age_seconds == 30 * 86400
    assert BackupRetention().max_age_seconds is None


RESULTS = {"backupSize": "2048", "backupSha256": "a" * 64, "backupPostgresVersion": "150013",
           "backupMigrationHead": "1700000000000-AddPages"}


def test_record_from_the_scripts_results() -> None:
    identifier = backups.backup_id(NOW, COMMIT)
    record = backups.record_from_results(RESULTS, identifier, backups.object_key(OWN, identifier), COMMIT)
    assert (record.size, record.sha256, record.postgres_version) == (2048, "a" * 64, "150013")
    assert record.time == "2026-12-06T12:00:00Z" and record.migration_head == "1700000000000-AddPages"
    metadata = backups.object_metadata(record)
    assert metadata["sha256"] == "a" * 64 and metadata["commit"] == COMMIT


def test_the_uploads_the_script_reports_are_recorded_beside_the_dump() -> None:
    identifier = backups.backup_id(NOW, COMMIT)
    key = backups.object_key(OWN, identifier)
    record = backups.record_from_results({**RESULTS, "backupUploadsSize": "512", "backupUploadsSha256": "b" * 64},
                                         identifier, key, COMMIT)
    assert record.uploads is not None
    assert (record.uploads.key, record.uploads.size, record.uploads.sha256) == (_uploads(key), 512, "b" * 64)
    assert record.to_body()["uploads"] == {"key": _uploads(key), "size": 512, "sha256": "b" * 64}
    metadata = backups.object_metadata(record)
    assert (metadata["uploads-size"], metadata["uploads-sha256"]) == ("512", "b" * 64)
    beside = backups.uploads_metadata(record)
    assert (beside["backup-id"], beside["size"], beside["sha256"]) == (identifier, "512", "b" * 64)


def test_a_record_a_host_wrote_before_uploads_were_backed_up_has_none() -> None:
    identifier = backups.backup_id(NOW, COMMIT)
    record = backups.record_from_results(RESULTS, identifier, backups.object_key(OWN, identifier), COMMIT)
    assert record.uploads is None and "uploads" not in record.to_body()
    assert not any(name.startswith("uploads-") for name in backups.object_metadata(record))


@pytest.mark.parametrize("broken", [{"backupSize": ""}, {"backupSize": "12x"}, {"backupSha256": "abc"},
                                    {"backupPostgresVersion": ""}, {"backupUploadsSize": "1"},
                                    {"backupUploadsSize": "x", "backupUploadsSha256": "c" * 64},
                                    {"backupUploadsSize": "1", "backupUploadsSha256": "C" * 64}])
def test_an_incomplete_report_is_backup_failed(broken: dict[str, str]) -> None:
    with pytest.raises(TransientError) as raised:
        backups.record_from_results({**RESULTS, **broken}, "20261206T120000Z-0123456789ab", "k.dump", COMMIT)
    assert raised.value.reason == "BackupFailed"


def test_status_keeps_the_newest_records_newest_first() -> None:
    records = ()
    for hours in range(14, 0, -1):
        identifier = backups.backup_id(NOW - datetime.timedelta(hours=hours), COMMIT)
        record = backups.record_from_results(RESULTS, identifier, backups.object_key(OWN, identifier), COMMIT)
        records = backups.with_record(records, record)
    assert len(records) == 10
    assert [record.id for record in records] == sorted((record.id for record in records), reverse=True)
    assert records[0].id == backups.backup_id(NOW - datetime.timedelta(hours=1), COMMIT)


def test_records_of_the_backups_retention_just_deleted_leave_status() -> None:
    """Retention may keep fewer than status lists (count 3 against 10): a record of a deleted dump would name a
    backup nobody can restore."""
    made = [backups.record_from_results(RESULTS, identifier, backups.object_key(OWN, identifier), COMMIT)
            for identifier in (backups.backup_id(NOW - datetime.timedelta(hours=h), COMMIT) for h in (3, 2, 1))]
    records = backups.with_record(made[:2], made[2], pruned=[made[0].key, backups.uploads_key(made[0].key)])
    assert [record.id for record in records] == [made[2].id, made[1].id]


def _spec_with_backup(**s3: object) -> dict[str, object]:
    target = {"endpoint": "https://s3.example.com", "bucket": "shop-backups",
              "credentialsSecretRef": {"name": "shop-s3"}, **s3}
    return {"domain": "shop.example.com", "provider": {"existing": {"host": "198.51.100.7"}},
            "ssh": {"privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}},
            "source": {"repository": "https://example.com/o4o.git"}, "tls": {"email": "ops@example.com"},
            "database": {"backup": {"target": {"s3": target}, "retention": {"count": 3, "maxAge": "7d"}}}}


def test_a_backup_spec_parses_with_its_defaults() -> None:
    spec = DeploymentInstanceSpec.model_validate(_spec_with_backup())
    assert spec.database.backup is not None
    s3 = spec.database.backup.target.s3
    assert (s3.prefix, s3.region, s3.credentials_secret_ref.access_key_id_key) == (
        "o4o-backups", "us-east-1", "accessKeyId")
    assert spec.database.backup.retention.max_age_seconds == 7 * 86400
    assert DeploymentInstanceSpec.model_validate(_spec_with_backup()).database.backup == spec.database.backup


@pytest.mark.parametrize(("field", "value"), [
    ("endpoint", "https://user:pw@s3.example.com"), ("endpoint", "https://s3.example.com/bucket"),
    ("endpoint", "ftp://s3.example.com"), ("bucket", "Shop_Backups"), ("prefix", "../escape"),
    ("prefix", "a//b"), ("prefix", "/rooted"),
])
def test_a_bad_target_names_its_field(field: str, value: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        DeploymentInstanceSpec.model_validate(_spec_with_backup(**{field: value}))
    message = _invalid_spec_message(caught.value)
    assert message.startswith(f"spec.database.backup.target.s3.{field}: "), message


def test_a_bad_retention_names_its_field() -> None:
    body = _spec_with_backup()
    body["database"]["backup"]["retention"] = {"maxAge": "30 days"}  # type: ignore[index]
    with pytest.raises(pydantic.ValidationError) as caught:
        DeploymentInstanceSpec.model_validate(body)
    assert _invalid_spec_message(caught.value).startswith("spec.database.backup.retention.maxAge: ")


@pytest.mark.parametrize(("configured", "annotation", "handled", "expected"), [
    (True, "nightly-1", None, "nightly-1"),
    (True, "nightly-2", "nightly-1", "nightly-2"),
    (True, "nightly-1", "nightly-1", None),   # each id runs once, whatever its outcome
    (False, "nightly-1", None, None),         # no spec.database.backup: nothing to take
    (True, "", None, None),
    (True, "bad id with spaces", None, None),
    (True, "-leading-dash", None, None),
    (True, "x" * 64, None, None),
])
def test_a_backup_request_runs_once_per_id(configured: bool, annotation: str, handled: str | None,
                                           expected: str | None) -> None:
    annotations = {backups.BACKUP_REQUEST_ANNOTATION: annotation} if annotation else {}
    assert backups.pending_request(configured, annotations, handled) == expected
