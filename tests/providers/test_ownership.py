"""The ownership module: cloud names that cannot collide across namespaces, the one "is it ours" rule,
adoption's conditions, the DNS ownership TXT value and key pair fingerprints. Pure: no cloud needed."""

from __future__ import annotations

import base64
import re

import asyncssh
import botocore.session
import pytest

from o4o_operator.providers.ownership import (
    Ownership,
    RecordOwner,
    WantedServer,
    adoption_mismatch,
    fingerprint_matches,
    key_pair_name,
    ownership,
    ownership_tags,
    server_name,
    static_ip_name,
    txt_owner_uid,
    txt_owners,
)
from o4o_operator.providers.protocols import ServerFacts
from o4o_operator.runner import instance
from o4o_operator.testing.lightsail_resources import key_pair_view

RESOURCE_NAME = botocore.session.get_session().get_service_model("lightsail").shape_for("ResourceName")
SPLITS = [("team", "prod-shop"), ("team-prod", "shop"), ("team-prod-shop", "x"), ("t", "eam-prod-shop")]


def test_namespace_and_name_splits_that_read_alike_get_different_names() -> None:
    names = {server_name(namespace, name) for namespace, name in SPLITS}
    runner_names = {instance.server_name(namespace, name) for namespace, name in SPLITS}  # what the runner uses
    key_pairs = {key_pair_name(namespace, name) for namespace, name in SPLITS}

    assert len(names) == len(SPLITS) and len(key_pairs) == len(SPLITS) and runner_names == names
    assert server_name("team", "prod-shop").startswith("o4o-team-prod-shop-")
    assert server_name("team", "prod-shop") == server_name("team", "prod-shop")  # deterministic


@pytest.mark.parametrize(("namespace", "name"), [
    ("default", "shop"), ("n" * 63, "a.b." * 63 + "c"), ("team", "shop.eu.v2"), ("a", "b")])
def test_names_fit_lightsails_resource_name_rule_with_their_suffixes(namespace: str, name: str) -> None:
    server = server_name(namespace, name)
    pattern = "^" + RESOURCE_NAME.metadata["pattern"] + "$"

    for cloud_name in (server, static_ip_name(server), key_pair_name(namespace, name)):
        assert re.fullmatch(pattern, cloud_name), cloud_name
        assert 2 <= len(cloud_name) <= 255, cloud_name
    assert static_ip_name(server) == f"{server}-ip"


def test_a_server_named_under_the_old_scheme_keeps_its_static_ip_name() -> None:
    assert static_ip_name("o4o-team-shop") == "o4o-team-shop-ip"


def test_only_our_exact_uid_tag_makes_a_resource_ours() -> None:
    tags = ownership_tags("team", "shop", "uid-a")

    assert ownership(tags, "uid-a") is Ownership.OURS
    assert ownership(tags, "uid-b") is Ownership.FOREIGN
    assert ownership({"o4o.io/namespace": "team", "o4o.io/name": "shop"}, "uid-a") is Ownership.UNCLAIMED
    assert ownership({}, "uid-a") is Ownership.UNCLAIMED
    assert ownership(tags, "") is Ownership.FOREIGN  # an empty uid owns nothing


def facts(**changes: str) -> ServerFacts:
    base = {"availability_zone": "us-east-1a", "bundle_id": "nano_3_0", "blueprint_id": "ubuntu_22_04"}
    return ServerFacts(name="web", state="running", tags={}, **{**base, **changes})


@pytest.mark.parametrize(("server", "field"), [
    (facts(), None), (facts(availability_zone="us-east-1b"), "spec.provider.lightsail.availabilityZone"),
    (facts(bundle_id="micro_3_0"), "spec.provider.lightsail.bundleId"),
    (facts(blueprint_id="debian_12"), "spec.provider.lightsail.blueprintId")])
def test_adoption_needs_the_server_to_be_what_the_spec_describes(server: ServerFacts, field: str | None) -> None:
    mismatch = adoption_mismatch(server, WantedServer("us-east-1a", "nano_3_0", "ubuntu_22_04"))

    assert (mismatch[0] if mismatch else None) == field


def test_any_zone_is_fine_when_the_spec_names_none() -> None:
    assert adoption_mismatch(facts(availability_zone="us-east-1f"),
                             WantedServer(None, "nano_3_0", "ubuntu_22_04")) is None


def test_the_ownership_txt_value_names_the_owner_and_round_trips() -> None:
    owner = RecordOwner("team", "shop", "0b7c-uid")
    value = owner.txt_value()

    assert value == '"heritage=o4o-operator,o4o/owner=team/shop,o4o/uid=0b7c-uid"'
    assert txt_owner_uid(value) == "0b7c-uid"
    assert txt_owners([value, '"v=spf1 -all"', '"heritage=external-dns,external-dns/owner=x"']) == {"0b7c-uid"}


def test_the_txt_value_stays_one_dns_string_for_the_longest_names() -> None:
    owner = RecordOwner("n" * 63, "a" * 253, "8d7f3f0e-1b2c-4d5e-9f00-123456789abc")

    assert len(owner.txt_value()) <= 255 + 2
    assert txt_owner_uid(owner.txt_value()) == owner.uid


@pytest.fixture(scope="module")
def public_keys() -> tuple[str, str]:
    first, second = (asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
                     for _ in range(2))
    return first.strip(), second.strip()


def test_fingerprints_match_the_key_they_were_made_from(public_keys: tuple[str, str]) -> None:
    mine, other = public_keys
    shown = key_pair_view("us-east-1", "k", base64.b64decode(mine.split()[1]))["fingerprint"]
    sha256 = asyncssh.import_public_key(mine).get_fingerprint("sha256")

    assert fingerprint_matches(shown, mine) and fingerprint_matches(shown.upper(), mine)
    assert fingerprint_matches(sha256, mine)
    assert not fingerprint_matches(shown, other) and not fingerprint_matches(sha256, other)
    assert not fingerprint_matches(None, mine) and not fingerprint_matches("", mine)
