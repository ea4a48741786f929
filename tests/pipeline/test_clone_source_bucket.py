"""A clone's source keeps its backups in a Lightsail bucket the operator made for it: which bucket the clone reads,
at which endpoint, and only with the key the source's own operator-owned Secret holds for that bucket."""

from __future__ import annotations

import pytest

from o4o_operator.errors import InvalidSpecError, TransientError
from o4o_operator.models_inventory import InventoryItem, ItemKind, ItemState
from o4o_operator.pipeline.backup_buckets import SourceBucket, source_bucket

FIELD, WHERE = "spec.database.bootstrap.restore.instance", "team-a/shop"
BUCKET, SECRET_NAME = "o4o-b-1", "shop-backup-bucket"
MADE = InventoryItem(kind=ItemKind.BUCKET, name=BUCKET, state=ItemState.PRESENT,
                     value=f"http://127.0.0.1:8333/{BUCKET}/")
KEY = {"bucket": BUCKET, "accessKeyId": "AKIAB0000001", "secretAccessKey": "never-in-a-message-0123"}


def _source(inventory: tuple[InventoryItem, ...] = (MADE,), secret: dict[str, str] | None = KEY,
            owner: str | None = "uid-a") -> SourceBucket:
    return source_bucket(FIELD, WHERE, BUCKET, inventory, SECRET_NAME, secret, owner, "uid-a")


def test_the_bucket_the_source_made_is_read_at_the_endpoint_its_url_implies() -> None:
    assert _source() == SourceBucket(BUCKET, "http://127.0.0.1:8333")
    aws = MADE.model_copy(update={"value": f"https://{BUCKET}.s3.eu-west-2.amazonaws.com/"})
    assert _source((aws,)).endpoint == "https://s3.eu-west-2.amazonaws.com"


@pytest.mark.parametrize("inventory", [(), (MADE.model_copy(update={"state": ItemState.PENDING}),),
                                       (MADE.model_copy(update={"name": "another-bucket"}),)])
def test_a_bucket_not_made_yet_has_no_backups_to_clone(inventory: tuple[InventoryItem, ...]) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        _source(inventory)
    assert (caught.value.field, caught.value.reason) == (FIELD, "BackupNotFound")
    assert WHERE in caught.value.message and BUCKET in caught.value.message


@pytest.mark.parametrize(("secret", "owner"), [
    (None, None),  # no Secret
    (KEY, None),  # a Secret the operator did not make
    (KEY, "uid-of-another-instance"),  # the operator's, for another instance (a retained one's, say)
    ({**KEY, "bucket": "another-bucket"}, "uid-a"),  # the key of another bucket
    ({**KEY, "secretAccessKey": ""}, "uid-a"),
])
def test_only_the_key_the_sources_own_secret_holds_for_that_bucket_is_used(secret: dict[str, str] | None,
                                                                           owner: str | None) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        _source(secret=secret, owner=owner)
    assert (caught.value.field, caught.value.reason) == (FIELD, "RestoreUnavailable")
    assert SECRET_NAME in caught.value.message and KEY["secretAccessKey"] not in caught.value.message


def test_a_url_that_names_another_bucket_is_transient() -> None:
    with pytest.raises(TransientError) as caught:
        _source((MADE.model_copy(update={"value": "http://127.0.0.1:8333/other/"}),))
    assert caught.value.reason == "BucketUnreachable" and FIELD in caught.value.message
