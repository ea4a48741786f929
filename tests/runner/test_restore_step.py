"""Configure's restore preparation (runner/restore_step.py), with a fake host and kube API.

Before configure's script: an in-place restore's backup is found in status (else its object's metadata), checked
against the server's PostgreSQL version and handed to the script by id, SHA-256 and a presigned GET URL that
reaches the script's environment only; an unknown id stalls naming ``spec.database.restore.backup`` before anything
runs; an id status records as done is not restored again. A clone reads another instance's record and its own
Secret, only with that instance's grant across namespaces. Presigning is local (no request); the bucket's lookups
that would need the S3 server are tests/host's and tests/e2e's.
"""

from __future__ import annotations

from typing import Any

import pytest
from stage_fakes import (
    SETTLED_FACTS,
    FakeKube,
    RecordingConnector,
    RecordingSession,
    make_context,
    make_runtime,
    static_resolver,
)
from stage_fakes import spec_body as base_spec

from o4o_operator import errors
from o4o_operator.models import DeploymentInstanceStatus, ServerStatus, SourceStatus
from o4o_operator.models_database import BackupRecord, RestoreStatus, UploadsArchiveRecord
from o4o_operator.pipeline.restore import CLONE_GRANT_ANNOTATION
from o4o_operator.pipeline.stages import StageName
from o4o_operator.providers.aws import CloudCallError
from o4o_operator.providers.storage import ObjectStore
from o4o_operator.runner.restore_step import GET_URL_VARIABLE, UPLOADS_GET_URL_VARIABLE

COMMIT = "c" * 40
FINGERPRINT = "SHA256:" + "A" * 43
GOOD = "20261205T120000Z-cccccccccccc"
RECORD = BackupRecord(id=GOOD, time="2026-12-05T12:00:00Z", size=42, sha256="e" * 64, postgres_version="140013",
                      commit=COMMIT, key=f"o4o/team/shop/uid-1/{GOOD}.dump")
TARGET = {"target": {"s3": {"endpoint": "http://127.0.0.1:9", "bucket": "shop-backups", "prefix": "o4o",
                            "credentialsSecretRef": {"name": "shop-s3"}}}}
S3_KEYS = {"accessKeyId": "AKIAEXAMPLE0000", "secretAccessKey": "s3cret-Access-Key-0123456789"}
FACTS = {**SETTLED_FACTS, "postgresVersion": "140013"}


def _status(**database: Any) -> DeploymentInstanceStatus:
    return DeploymentInstanceStatus.model_validate({
        "server": ServerStatus(name="shop-host.test", ip_address="198.51.100.5", host_key_fingerprint=FINGERPRINT,
                               host_key_fingerprints=(FINGERPRINT,)).to_body(),
        "source": SourceStatus(repository="https://example.com/o4o/platform.git", revision="main",
                               commit=COMMIT).to_body(),
        "database": {"backups": [RECORD.to_body()], **database}})


async def _configure(database: dict[str, Any], status: DeploymentInstanceStatus, *, facts: dict[str, str] | None = None,
                     kube: FakeKube | None = None) -> RecordingSession:
    session = RecordingSession({"release": COMMIT}, facts or FACTS)
    kube = kube or FakeKube({"ssh-key": {"ssh-privatekey": "not a real key"}, "shop-s3": S3_KEYS})
    driver = make_context(make_runtime(kube, RecordingConnector(session), static_resolver({})),
                          base_spec(database=database), status)
    await driver.run(StageName.CONFIGURE)
    return session


async def test_a_known_backup_reaches_the_script_by_id_checksum_and_a_url_in_the_environment_only() -> None:
    session = await _configure({"backup": TARGET, "restore": {"backup": GOOD}}, _status())
    script, env = session.scripts[0], session.envs[0]
    assert "RESTORE_KIND=in-place\n" in script and f"RESTORE_ID={GOOD}\n" in script
    assert f"RESTORE_SHA256={'e' * 64}\n" in script
    url = env[GET_URL_VARIABLE]
    assert RECORD.key in url and "X-Amz-Signature=" in url and url not in script
    assert S3_KEYS["secretAccessKey"] not in script and S3_KEYS["secretAccessKey"] not in url
    # A backup made before uploads were backed up: the database only.
    assert "RESTORE_UPLOADS_SHA256=''\n" in script and UPLOADS_GET_URL_VARIABLE not in env


async def test_a_backups_uploads_reach_the_script_by_checksum_and_a_url_of_their_own() -> None:
    uploads = UploadsArchiveRecord(key=f"o4o/team/shop/uid-1/{GOOD}.uploads.tar.gz", size=7, sha256="f" * 64)
    status = _status().model_copy(update={"database": _status().database.model_copy(
        update={"backups": (RECORD.model_copy(update={"uploads": uploads}),)})})
    session = await _configure({"backup": TARGET, "restore": {"backup": GOOD}}, status)
    script, env = session.scripts[0], session.envs[0]
    assert f"RESTORE_UPLOADS_SHA256={'f' * 64}\n" in script
    url = env[UPLOADS_GET_URL_VARIABLE]
    assert uploads.key in url and "X-Amz-Signature=" in url and url not in script
    assert RECORD.key in env[GET_URL_VARIABLE]


async def test_an_unknown_backup_stalls_naming_the_field_before_anything_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    async def absent(self: ObjectStore, key: str) -> dict[str, Any]:
        raise CloudCallError("head_object", "404", "Not Found", http_status=404)

    monkeypatch.setattr(ObjectStore, "head", absent)
    unknown = "20261201T000000Z-dddddddddddd"
    with pytest.raises(errors.InvalidSpecError) as caught:
        await _configure({"backup": TARGET, "restore": {"backup": unknown}}, _status())
    assert (caught.value.reason, caught.value.field) == ("BackupNotFound", "spec.database.restore.backup")
    assert unknown in caught.value.message


async def test_a_restore_status_records_as_done_is_not_restored_again() -> None:
    done = RestoreStatus(backup=GOOD, finished_at="2026-12-06T00:00:00Z").to_body()
    session = await _configure({"backup": TARGET, "restore": {"backup": GOOD}}, _status(restore=done))
    assert "RESTORE_KIND=''" in session.scripts[0] and GET_URL_VARIABLE not in session.envs[0]


async def test_another_major_version_stalls_naming_both() -> None:
    with pytest.raises(errors.InvalidSpecError) as caught:
        await _configure({"backup": TARGET, "restore": {"backup": GOOD}}, _status(),
                         facts={**FACTS, "postgresVersion": "160004"})
    assert caught.value.reason == "PostgresVersionMismatch"
    assert "PostgreSQL 14" in caught.value.message and "PostgreSQL 16" in caught.value.message


def _source_kube(annotations: dict[str, str]) -> FakeKube:
    kube = FakeKube({"ssh-key": {"ssh-privatekey": "not a real key"}, "shop-s3": S3_KEYS})
    source_spec = base_spec(database={"backup": TARGET})
    kube.instances[("team-a", "shop")] = {
        "metadata": {"namespace": "team-a", "name": "shop", "uid": "uid-a", "annotations": annotations},
        "spec": source_spec, "status": {"database": {"backups": [
            RECORD.model_copy(update={"key": f"o4o/team-a/shop/uid-a/{GOOD}.dump"}).to_body()]}}}
    return kube


CLONE = {"bootstrap": {"mode": "restore", "restore": {"instance": {"namespace": "team-a", "name": "shop"}}}}
EMPTY = {"tables": "0", "migrationsTable": "", "bootstrapped": "", "bootstrapStarted": "", "postgresVersion": "140013"}


async def test_a_clone_across_namespaces_needs_the_sources_grant() -> None:
    with pytest.raises(errors.InvalidSpecError) as caught:
        await _configure(CLONE, _status(), facts=EMPTY, kube=_source_kube({}))
    assert (caught.value.reason, caught.value.field) == ("CloneNotGranted",
                                                         "spec.database.bootstrap.restore.instance")
    assert f"{CLONE_GRANT_ANNOTATION}=team" in caught.value.message

    session = await _configure(CLONE, _status(), facts=EMPTY, kube=_source_kube({CLONE_GRANT_ANNOTATION: "team"}))
    script = session.scripts[0]
    assert "BOOTSTRAP_MODE=restore\n" in script and "RESTORE_KIND=clone\n" in script
    assert f"RESTORE_SOURCE='team-a/shop backup {GOOD}'\n" in script
    assert "/team-a/shop/uid-a/" in session.envs[0][GET_URL_VARIABLE]  # the source's own object, presigned
