"""Key pairs and tags against the local Lightsail: imported keys get ownership tags through TagResource
(ImportKeyPair takes none), an existing key pair is reported as it is (never overwritten), a name shared
by a server and a key pair is tagged by ARN, and deletion treats NotFound as success."""

from __future__ import annotations

from typing import Any

import asyncssh
import pytest

from o4o_operator.providers.lightsail import LightsailCloud
from o4o_operator.providers.ownership import fingerprint_matches, is_ours, ownership_tags
from o4o_operator.testing import LocalLightsail

UID = "6f1c2d7e-0000-4000-8000-000000000002"
NAME = "o4o-team-shop-0123456789-key"


def other_public_key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().strip()


async def test_an_imported_key_pair_carries_the_ownership_tags_and_is_deleted(
        cloud: LightsailCloud, local_lightsail: LocalLightsail, public_key_openssh: str) -> None:
    pair = await cloud.ensure_key_pair(NAME, public_key_openssh, ownership_tags("team", "shop", UID))

    assert is_ours(pair.tags, UID) and fingerprint_matches(pair.fingerprint, public_key_openssh)
    assert local_lightsail.resources_for_uid(UID) == [f"KeyPair/{NAME}"]
    assert "TagResource" in local_lightsail.request_log

    await cloud.delete_key_pair(NAME)
    await cloud.delete_key_pair(NAME)

    assert await cloud.find_key_pair(NAME) is None
    assert local_lightsail.resources_for_uid(UID) == []


async def test_an_existing_key_pair_with_another_key_is_reported_as_it_is(
        cloud: LightsailCloud, raw_lightsail: Any, public_key_openssh: str) -> None:
    raw_lightsail.import_key_pair(keyPairName=NAME, publicKeyBase64=other_public_key())

    pair = await cloud.ensure_key_pair(NAME, public_key_openssh, ownership_tags("team", "shop", UID))

    assert not fingerprint_matches(pair.fingerprint, public_key_openssh)
    assert pair.tags == {}  # not ours, so not tagged either


async def test_tagging_a_server_leaves_a_key_pair_of_the_same_name_alone(
        cloud: LightsailCloud, raw_lightsail: Any, public_key_openssh: str) -> None:
    raw_lightsail.import_key_pair(keyPairName="web-1", publicKeyBase64=public_key_openssh)
    raw_lightsail.create_instances(instanceNames=["web-1"], availabilityZone="eu-west-2a", bundleId="nano_3_0",
                                   blueprintId="ubuntu_22_04", keyPairName="web-1")

    await cloud.tag_server("web-1", ownership_tags("team", "shop", UID))

    server = await cloud.find_server("web-1")
    key_pair = await cloud.find_key_pair("web-1")
    assert server is not None and is_ours(server.tags, UID)
    assert key_pair is not None and key_pair.tags == {}
    with pytest.raises(raw_lightsail.exceptions.InvalidInputException, match="resourceArn"):
        raw_lightsail.tag_resource(resourceName="web-1", tags=[{"key": "k", "value": "v"}])
