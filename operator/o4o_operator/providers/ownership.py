"""Who owns a cloud resource or a DNS record, and what our cloud resources are called.

Owns: the deterministic names of an instance's server, static IP and key pair
(unambiguous across namespaces: they carry a hash of ``namespace/name``), the
ownership tags every resource we create carries, THE rule "is this ours?"
(:func:`ownership`: the ``o4o.io/uid`` tag, nothing else), the conditions for
adopting a server, the ownership TXT value kept beside each A record we manage,
and the fingerprints Lightsail may show for an imported public key.

Purely computational: no I/O, no clients. Must not decide what to do about a
resource that is not ours (the runner does, naming the field).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import hashlib
import re
from collections.abc import Mapping

from o4o_operator.providers.protocols import ServerFacts

TAG_UID = "o4o.io/uid"
TAG_NAMESPACE = "o4o.io/namespace"
TAG_NAME = "o4o.io/name"
TAG_MANAGED_BY = "o4o.io/managed-by"
MANAGED_BY = "o4o-operator"

NAME_PREFIX = "o4o"
MAX_CLOUD_NAME = 200
"""Lightsail allows 255; room is left for the ``-ip`` and ``-key`` suffixes."""
HASH_LENGTH = 10
STATIC_IP_SUFFIX = "-ip"
KEY_PAIR_SUFFIX = "-key"
CLOUD_NAME_RULE = re.compile(r"^\w[\w\-]*\w$")
"""botocore's ``ResourceName`` pattern (``\\w[\\w\\-]*\\w``), anchored: no dots."""

DNS_HERITAGE = "o4o-operator"
MAX_TXT_STRING = 255


# ---- names -------------------------------------------------------------------------


def cloud_name(namespace: str, name: str) -> str:
    """``o4o-<namespace>-<name>-<hash10 of "namespace/name">``, within Lightsail's ResourceName rule.

    The readable part alone is ambiguous (``team``/``prod-shop`` and ``team-prod``/``shop`` both
    read ``o4o-team-prod-shop``); the hash of the unambiguous ``namespace/name`` is what tells them apart.
    """
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:HASH_LENGTH]
    readable = re.sub(r"[^A-Za-z0-9-]+", "-", f"{NAME_PREFIX}-{namespace}-{name}")
    readable = readable[:MAX_CLOUD_NAME - HASH_LENGTH - 1].rstrip("-")
    return f"{readable}-{digest}"


def server_name(namespace: str, name: str) -> str:
    """The server a new instance gets. An instance whose status records a name keeps that name."""
    return cloud_name(namespace, name)


def static_ip_name(server: str) -> str:
    """The static IP of ``server`` (for a server named under the old scheme too)."""
    return f"{server}{STATIC_IP_SUFFIX}"


def key_pair_name(namespace: str, name: str) -> str:
    """The key pair the operator imports for an instance that names none."""
    return f"{cloud_name(namespace, name)}{KEY_PAIR_SUFFIX}"


# ---- tags and the one ownership rule ----------------------------------------------------


class Ownership(enum.StrEnum):
    OURS = "Ours"
    UNCLAIMED = "Unclaimed"
    """No ``o4o.io/uid`` tag at all: made by hand (or by an operator before tagging); adoptable."""
    FOREIGN = "Foreign"
    """Another instance's uid: never adopted, changed or deleted."""


def ownership_tags(namespace: str, name: str, uid: str) -> dict[str, str]:
    """The tags every server and key pair we create carries; ``o4o.io/uid`` decides ownership."""
    return {TAG_UID: uid, TAG_NAMESPACE: namespace, TAG_NAME: name, TAG_MANAGED_BY: MANAGED_BY}


def ownership(tags: Mapping[str, str], uid: str) -> Ownership:
    tagged = tags.get(TAG_UID)
    if not tagged:
        return Ownership.UNCLAIMED
    return Ownership.OURS if uid and tagged == uid else Ownership.FOREIGN


def is_ours(tags: Mapping[str, str], uid: str) -> bool:
    """True only if the resource carries our ``o4o.io/uid`` tag with this exact uid."""
    return ownership(tags, uid) is Ownership.OURS


def server_owned_by(facts: ServerFacts, uid: str) -> bool:
    return is_ours(facts.tags, uid)


@dataclasses.dataclass(frozen=True)
class WantedServer:
    """What the spec asks of a server; an adopted one must already be exactly that."""

    availability_zone: str | None
    bundle_id: str
    blueprint_id: str


def adoption_mismatch(facts: ServerFacts, wanted: WantedServer) -> tuple[str, str] | None:
    """``(spec field, problem)`` if the server differs from the spec, else None. The region is the
    client's: a server found through it is in the spec's region."""
    checks = (("availabilityZone", wanted.availability_zone, facts.availability_zone),
              ("bundleId", wanted.bundle_id, facts.bundle_id),
              ("blueprintId", wanted.blueprint_id, facts.blueprint_id))
    for field, asked, actual in checks:
        if asked is not None and asked != actual:
            return (f"spec.provider.lightsail.{field}",
                    f"server {facts.name} has {field} {actual!r}, the spec asks for {asked!r}")
    return None


# ---- DNS ownership records ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RecordOwner:
    """The instance a DNS record belongs to, written as a TXT record beside the A record."""

    namespace: str
    name: str
    uid: str

    def txt_value(self) -> str:
        """``"heritage=o4o-operator,o4o/owner=<ns>/<name>,o4o/uid=<uid>"``, quoted, one TXT string."""
        head, tail = f"heritage={DNS_HERITAGE},o4o/owner=", f",o4o/uid={self.uid}"
        room = MAX_TXT_STRING - len(head) - len(tail)
        return f'"{head}{f"{self.namespace}/{self.name}"[:room]}{tail}"'


def txt_owner_uid(value: str) -> str | None:
    """The uid in an ownership TXT value of ours (any instance's), or None for any other TXT value."""
    text = "".join(part for part in re.findall(r'"((?:[^"\\]|\\.)*)"', value)) if '"' in value else value
    fields = dict(item.split("=", 1) for item in text.split(",") if "=" in item)
    if fields.get("heritage") != DNS_HERITAGE:
        return None
    return fields.get("o4o/uid") or None


def txt_owners(values: list[str]) -> set[str]:
    """The uids that claim a name, from its TXT values (other TXT values are ignored)."""
    return {uid for value in values if (uid := txt_owner_uid(value))}


# ---- key pair fingerprints -----------------------------------------------------------------


def public_key_fingerprints(public_key_openssh: str) -> frozenset[str]:
    """The spellings Lightsail may show for an imported key: MD5 (colon hex) or SHA256 of the blob."""
    fields = public_key_openssh.split()
    try:
        blob = base64.b64decode(fields[1], validate=True) if len(fields) >= 2 else b""
    except (binascii.Error, ValueError):
        blob = b""
    if not blob:
        return frozenset()
    md5 = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    sha256 = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return frozenset({":".join(md5[i:i + 2] for i in range(0, 32, 2)), f"SHA256:{sha256}"})


def fingerprint_matches(reported: str | None, public_key_openssh: str) -> bool:
    """Whether a key pair's fingerprint is that of ``public_key_openssh`` (False when unknown)."""
    if not reported:
        return False
    spelled = reported.strip()
    spelled = spelled.rstrip("=") if spelled.startswith("SHA256:") else spelled.removeprefix("MD5:").lower()
    return spelled in public_key_fingerprints(public_key_openssh)
