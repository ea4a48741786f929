"""Configure's restore preparation (runner/restore_step.py), with a fake host and kube API.

Before configure's script: an in-place restore's backup is found in status (else its object's metadata), checked
against the server's PostgreSQL version and handed to the script by id, SHA-256 and a presigned GET URL that
reaches the script's environment only; an unknown id stalls naming ``spec.database.restore.backup`` before anything
runs; an id status records as done is not restored again. A clone reads another instance's record and its own
Secret, only with that instance's grant across namespaces. A backup status still lists but retention pruned
stalls ``BackupNotFound`` naming the field and the id, before anything runs. Presigning is local (no request); the
bucket's HEAD answers are faked here (the S3 server's are tests/host's and tests/e2e's).
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
from o4o_operator.models import DeploymentInstanceStatus, ServerStatus, SourceStatus, StageState, StageStatus
from o4o_operator.models_database import BackupRecord, RestoreStatus, UploadsArchiveRecord
from o4o_operator.models_inventory import InventoryItem, ItemKind, ItemState
from o4o_operator.pipeline.backups import StoredObject
from o4o_operator.pipeline.restore import CLONE_GRANT_ANNOTATION
from o4o_operator.pipeline.stages import StageName
from o4o_operator.providers.aws import CloudCallError
from o4o_operator.providers.storage import ObjectStore
from o4o_operator.runner import backup_bucket
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


@pytest.fixture(autouse=True)
def stored(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    """The bucket's objects, by key, as HEAD answers them (a key not here answers 404)."""
    objects: dict[str, dict[str, Any]] = {}

    async def head(self: ObjectStore, key: str) -> dict[str, Any]:
        if key not in objects:
            raise CloudCallError("head_object", "404", "Not Found", http_status=404)
        return objects[key]

    async def listing(self: ObjectStore) -> list[StoredObject]:
        return [StoredObject(key, int(answer["ContentLength"])) for key, answer in sorted(objects.items())
                if key.startswith(self.prefix)]

    monkeypatch.setattr(ObjectStore, "head", head)
    monkeypatch.setattr(ObjectStore, "list", listing)
    for key in (RECORD.key, f"o4o/team-a/shop/uid-a/{GOOD}.dump"):
        objects[key] = {"ContentLength": RECORD.size, "Metadata": {}}
    return objects


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


async def test_an_unknown_backup_stalls_naming_the_field_before_anything_runs() -> None:
    unknown = "20261201T000000Z-dddddddddddd"
    with pytest.raises(errors.InvalidSpecError) as caught:
        await _configure({"backup": TARGET, "restore": {"backup": unknown}}, _status())
    assert (caught.value.reason, caught.value.field) == ("BackupNotFound", "spec.database.restore.backup")
    assert unknown in caught.value.message


async def test_a_backup_retention_pruned_stalls_though_status_still_lists_it(stored: dict[str, Any]) -> None:
    """Status keeps the newest 10 records; retention may keep fewer objects. Without the check the host's
    download failed at every retry (a transient RestoreFailed, forever)."""
    del stored[RECORD.key]
    session = RecordingSession({"release": COMMIT}, FACTS)
    kube = FakeKube({"ssh-key": {"ssh-privatekey": "not a real key"}, "shop-s3": S3_KEYS})
    driver = make_context(make_runtime(kube, RecordingConnector(session), static_resolver({})),
                          base_spec(database={"backup": TARGET, "restore": {"backup": GOOD}}), _status())
    with pytest.raises(errors.InvalidSpecError) as caught:
        await driver.run(StageName.CONFIGURE)
    assert (caught.value.reason, caught.value.field) == ("BackupNotFound", "spec.database.restore.backup")
    assert GOOD in caught.value.message and "pruned" in caught.value.message
    assert session.scripts == []  # nothing ran on the host

    # A clone's source the same (its latest, as its status lists it).
    del stored[f"o4o/team-a/shop/uid-a/{GOOD}.dump"]
    with pytest.raises(errors.InvalidSpecError) as caught:
        await _configure(CLONE, _status(), facts=EMPTY, kube=_source_kube({CLONE_GRANT_ANNOTATION: "team"}))
    assert (caught.value.reason, caught.value.field) == ("BackupNotFound", "spec.database.bootstrap.restore.backup")
    assert GOOD in caught.value.message and "pruned" in caught.value.message


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


async def test_a_clones_latest_is_the_sources_newest_backup_still_in_the_bucket(stored: dict[str, Any]) -> None:
    """A newest backup deleted by hand is passed over; with every listed one gone, it stalls naming the newest."""
    older_id = "20261204T120000Z-bbbbbbbbbbbb"
    newest = RECORD.model_copy(update={"key": f"o4o/team-a/shop/uid-a/{GOOD}.dump"})
    older = RECORD.model_copy(update={"id": older_id, "key": f"o4o/team-a/shop/uid-a/{older_id}.dump"})
    stored[older.key] = {"ContentLength": older.size, "Metadata": {}}
    del stored[newest.key]
    kube = _source_kube({CLONE_GRANT_ANNOTATION: "team"})
    kube.instances[("team-a", "shop")]["status"]["database"]["backups"] = [newest.to_body(), older.to_body()]
    session = await _configure(CLONE, _status(), facts=EMPTY, kube=kube)
    assert f"RESTORE_SOURCE='team-a/shop backup {older_id}'\n" in session.scripts[0]
    assert older.key in session.envs[0][GET_URL_VARIABLE]

    del stored[older.key]
    with pytest.raises(errors.InvalidSpecError) as caught:
        await _configure(CLONE, _status(), facts=EMPTY, kube=kube)
    assert (caught.value.reason, caught.value.field) == ("BackupNotFound", "spec.database.bootstrap.restore.backup")
    assert GOOD in caught.value.message and "pruned" in caught.value.message


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


BUCKET_KEY = {"bucket": "shop-a-bucket", "accessKeyId": "AKIABUCKET000001", "secretAccessKey": "bucket-Key-0123456789"}


class NoLightsail:
    """A clone makes no cloud call for its source's bucket (it reads the source's own Secret)."""

    def __init__(self, *args: Any) -> None:
        raise AssertionError("a clone called Lightsail for its source's bucket")


def _bucket_source_kube(annotations: dict[str, str], *, owner: str | None = "uid-a", made: bool = True) -> FakeKube:
    """team-a/shop keeps its backups in the Lightsail bucket the operator made for it; its key in its own
    operator-owned Secret ``shop-backup-bucket``."""
    kube = _source_kube(annotations)
    source = kube.instances[("team-a", "shop")]
    source["spec"] = base_spec(database={"backup": {"target": {"lightsailBucket": {
        "name": "shop-a-bucket", "region": "eu-west-2", "prefix": "o4o"}}}})
    item = InventoryItem(kind=ItemKind.BUCKET, name="shop-a-bucket", state=ItemState.PRESENT if made else
                         ItemState.PENDING, value="http://127.0.0.1:9/shop-a-bucket/")
    source["status"]["inventory"] = DeploymentInstanceStatus(inventory=(item,)).to_body()["inventory"]
    kube.secrets["shop-backup-bucket"] = BUCKET_KEY
    if owner:
        kube.owners["shop-backup-bucket"] = owner
    return kube


async def test_a_clone_reads_a_lightsail_bucket_source_through_its_secret_and_hands_over_a_url_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup_bucket, "LightsailBuckets", NoLightsail)
    session = RecordingSession({"release": COMMIT}, EMPTY)
    kube = _bucket_source_kube({CLONE_GRANT_ANNOTATION: "team"})
    driver = make_context(make_runtime(kube, RecordingConnector(session), static_resolver({})),
                          base_spec(database=CLONE), _status())
    await driver.run(StageName.CONFIGURE)
    script, env = session.scripts[0], session.envs[0]
    assert "RESTORE_KIND=clone\n" in script and f"RESTORE_SOURCE='team-a/shop backup {GOOD}'\n" in script
    url = env[GET_URL_VARIABLE]  # path style on the bucket's endpoint, the source's object, signed with its key
    assert url.startswith(f"http://127.0.0.1:9/shop-a-bucket/o4o/team-a/shop/uid-a/{GOOD}.dump?")
    assert f"X-Amz-Credential={BUCKET_KEY['accessKeyId']}" in url and "X-Amz-Signature=" in url
    secret = BUCKET_KEY["secretAccessKey"]
    shown = [script, *session.public_envs[0].values(), *(v for k, v in env.items() if k != GET_URL_VARIABLE),
             url, driver.instance.log.full_text, repr(driver.status.to_body())]
    assert not [text for text in shown if secret in text]
    assert driver.instance.log.redactor(f"x {secret} y") != f"x {secret} y"  # redacted should anything print it


@pytest.mark.parametrize(("annotations", "owner", "made", "reason"), [
    ({}, "uid-a", True, "CloneNotGranted"),  # the grant is checked first, before any Secret is read
    ({CLONE_GRANT_ANNOTATION: "team"}, "uid-b", True, "RestoreUnavailable"),  # not the source's own Secret
    ({CLONE_GRANT_ANNOTATION: "team"}, None, True, "RestoreUnavailable"),
    ({CLONE_GRANT_ANNOTATION: "team"}, "uid-a", False, "BackupNotFound"),  # the bucket is not made yet
])
async def test_a_lightsail_bucket_source_refused_names_why(monkeypatch: pytest.MonkeyPatch, annotations: dict[str, str],
                                                          owner: str | None, made: bool, reason: str) -> None:
    monkeypatch.setattr(backup_bucket, "LightsailBuckets", NoLightsail)
    with pytest.raises(errors.InvalidSpecError) as caught:
        await _configure(CLONE, _status(), facts=EMPTY, kube=_bucket_source_kube(annotations, owner=owner, made=made))
    assert (caught.value.reason, caught.value.field) == (reason, "spec.database.bootstrap.restore.instance")
    assert BUCKET_KEY["secretAccessKey"] not in caught.value.message


async def test_a_clone_stalled_on_its_source_runs_again_when_the_source_changes_what_it_waits_on() -> None:
    """Applied together (an Argo CD sync), a clone stalls on a source that has no grant or no backup yet; the
    source's change clears the stall (``secrets_version``), its conditions and progress do not; once configured,
    the clone no longer reads its source."""
    kube = _source_kube({})
    source = kube.instances[("team-a", "shop")]
    source["status"]["database"]["backups"] = []

    async def version(status: DeploymentInstanceStatus) -> str | None:
        driver = make_context(make_runtime(kube, RecordingConnector(RecordingSession({})), static_resolver({})),
                              base_spec(database=CLONE), status)
        return (await driver.instance.observe_facts(status)).secrets_version

    waiting = await version(_status())
    source["status"]["conditions"] = [{"type": "Ready", "status": "False", "reason": "Configuring"}]
    source["status"]["stages"] = [{"name": "configure", "state": "Running"}]
    assert await version(_status()) == waiting
    source["metadata"]["annotations"] = {CLONE_GRANT_ANNOTATION: "team"}
    granted = await version(_status())
    source["status"]["database"]["backups"] = [RECORD.to_body()]
    backed_up = await version(_status())
    del kube.instances[("team-a", "shop")]
    gone = await version(_status())
    assert len({waiting, granted, backed_up, gone}) == 4

    configured = _status().model_copy(update={"stages": (StageStatus(name="configure",
                                                                     state=StageState.SUCCEEDED),)})
    kube.instances[("team-a", "shop")] = source
    before = await version(configured)
    source["status"]["database"]["backups"] = []
    assert await version(configured) == before
