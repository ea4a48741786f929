"""Configure's backup (runner/backup_step.py), with a fake host and a fake bucket.

Before the script: a presigned PUT URL for the dump and one for the uploads beside it, in the script's
environment only. After it: both objects are checked against the sizes the host reported and get the record in
their metadata, and status records the backup with its uploads. A host record without uploads (written before
uploads were backed up) is recorded without them. The real upload is tests/host's and tests/e2e's.
"""

from __future__ import annotations

from typing import Any

import pytest
from stage_fakes import FakeKube, RecordingConnector, RecordingSession, make_context, make_runtime, static_resolver
from stage_fakes import spec_body as base_spec

from o4o_operator import errors, metrics
from o4o_operator.models import DeploymentInstanceStatus, ServerStatus, SourceStatus
from o4o_operator.pipeline.stages import StageName
from o4o_operator.providers.storage import ObjectStore
from o4o_operator.runner.backup_step import PUT_URL_VARIABLE, UPLOADS_PUT_URL_VARIABLE

COMMIT = "c" * 40
FINGERPRINT = "SHA256:" + "A" * 43
TARGET = {"target": {"s3": {"endpoint": "http://127.0.0.1:9", "bucket": "shop-backups", "prefix": "o4o",
                            "credentialsSecretRef": {"name": "shop-s3"}}}}
S3_KEYS = {"accessKeyId": "AKIAEXAMPLE0000", "secretAccessKey": "s3cret-Access-Key-0123456789"}
BACKUP = {"backupSize": "10", "backupSha256": "a" * 64, "backupPostgresVersion": "140013"}
UPLOADS = {"backupUploadsSize": "20", "backupUploadsSha256": "b" * 64}


class FakeBucket:
    """What the host uploaded (key -> size), and the metadata the operator writes."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes
        self.metadata: dict[str, dict[str, str]] = {}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async def head(store: ObjectStore, key: str) -> dict[str, Any]:
            return {"ContentLength": self.sizes.get(key, -1)}

        async def set_metadata(store: ObjectStore, key: str, metadata: dict[str, str]) -> None:
            self.metadata[key] = metadata

        async def listing(store: ObjectStore) -> list[Any]:
            return []

        monkeypatch.setattr(ObjectStore, "head", head)
        monkeypatch.setattr(ObjectStore, "set_metadata", set_metadata)
        monkeypatch.setattr(ObjectStore, "list", listing)


def _status() -> DeploymentInstanceStatus:
    return DeploymentInstanceStatus(
        server=ServerStatus(name="shop-host.test", ip_address="198.51.100.5", host_key_fingerprint=FINGERPRINT,
                            host_key_fingerprints=(FINGERPRINT,)),
        source=SourceStatus(repository="https://example.com/o4o/platform.git", revision="main", commit=COMMIT))


async def _configure(monkeypatch: pytest.MonkeyPatch, reported: dict[str, str],
                     sizes: dict[str, int]) -> tuple[RecordingSession, DeploymentInstanceStatus, FakeBucket]:
    bucket = FakeBucket(sizes)
    bucket.install(monkeypatch)
    session = RecordingSession({"release": COMMIT})
    driver = make_context(make_runtime(FakeKube({"ssh-key": {"ssh-privatekey": "not a real key"}, "shop-s3": S3_KEYS}),
                                       RecordingConnector(session), static_resolver({})),
                          base_spec(database={"backup": TARGET}), _status())
    original = session.run

    async def run(script: str, **kwargs: Any) -> Any:  # the host reports the backup it was told to take
        if "\nBACKUP_ID=" in script:
            identifier = script.split("\nBACKUP_ID=", 1)[1].split("\n", 1)[0]
            session.results.update({"backupId": identifier, **reported})
        return await original(script, **kwargs)

    session.run = run  # type: ignore[method-assign]
    await driver.run(StageName.CONFIGURE)
    return session, driver.status, bucket


def _size_metric() -> float | None:
    return metrics.REGISTRY.get_sample_value("o4o_backup_size_bytes", {"namespace": "team", "name": "shop"})


def _keys(identifier: str) -> tuple[str, str]:
    prefix = "o4o/team/shop/uid-1/"
    return f"{prefix}{identifier}.dump", f"{prefix}{identifier}.uploads.tar.gz"


async def test_the_dump_and_the_uploads_each_get_a_url_and_are_checked_and_recorded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    identifier = "20260101T000000Z-cccccccccccc"
    dump, uploads = _keys(identifier)
    session, status, bucket = await _configure(monkeypatch, {**BACKUP, **UPLOADS}, {dump: 10, uploads: 20})
    env, script = session.envs[0], session.scripts[0]
    assert dump in env[PUT_URL_VARIABLE] and uploads in env[UPLOADS_PUT_URL_VARIABLE]
    assert "X-Amz-Signature=" in env[UPLOADS_PUT_URL_VARIABLE] and env[UPLOADS_PUT_URL_VARIABLE] not in script
    record = status.database.backups[0]
    assert record.id == identifier and record.uploads is not None
    assert (record.uploads.key, record.uploads.size, record.uploads.sha256) == (uploads, 20, "b" * 64)
    assert bucket.metadata[dump]["uploads-sha256"] == "b" * 64
    assert (bucket.metadata[uploads]["backup-id"], bucket.metadata[uploads]["sha256"]) == (identifier, "b" * 64)
    assert _size_metric() == 30  # the dump and the uploads


async def test_uploads_of_another_size_than_the_host_archived_fail_the_backup(monkeypatch: pytest.MonkeyPatch) -> None:
    dump, uploads = _keys("20260101T000000Z-cccccccccccc")
    with pytest.raises(errors.TransientError) as caught:
        await _configure(monkeypatch, {**BACKUP, **UPLOADS}, {dump: 10, uploads: 19})
    assert caught.value.reason == "BackupFailed" and "uploads holds 19 bytes" in caught.value.message


async def test_a_host_record_without_uploads_is_recorded_without_them(monkeypatch: pytest.MonkeyPatch) -> None:
    dump, _ = _keys("20260101T000000Z-cccccccccccc")
    _, status, bucket = await _configure(monkeypatch, BACKUP, {dump: 10})
    assert status.database.backups[0].uploads is None
    assert list(bucket.metadata) == [dump] and "uploads-sha256" not in bucket.metadata[dump]
    assert _size_metric() == 10
