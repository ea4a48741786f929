"""The local Lightsail's key pairs and tags: ImportKeyPair, Get/DeleteKeyPair(s) and TagResource.

Owns: what those operations do to the state (a key pair's record and the OpenSSH public key a new
instance's fleet server gets; tags merged onto an instance or a key pair) and the tag limits AWS
enforces (:func:`checked_tags`, which CreateInstances uses too). :class:`KeyPairsAndTags` is a mixin of
``LightsailState``, which holds the records and the lock and calls these ``op_`` methods from
``handle``.

Must not: do I/O, sleep, know HTTP, take the lock (``handle`` holds it), or be used apart from
``LightsailState``.
"""

from __future__ import annotations

import base64
from typing import Any

from o4o_operator.testing.lightsail_errors import invalid, not_found
from o4o_operator.testing.lightsail_resources import InstanceRecord, key_pair_view

Params = dict[str, Any]


class KeyPairsAndTags:
    """The key-pair and tag operations of ``LightsailState`` (which sets these attributes)."""

    _instances: dict[tuple[str, str], InstanceRecord]
    _key_pairs: dict[tuple[str, str], Params]
    _public_keys: dict[tuple[str, str], str]

    def _operation(self, region: str, zone: str, resource: str, kind: str, operation_type: str) -> Params:
        raise NotImplementedError  # LightsailState records operations

    # ---- key pairs --------------------------------------------------------------------

    def op_ImportKeyPair(self, region: str, p: Params) -> Params:
        name, text = p["keyPairName"], p["publicKeyBase64"].strip()
        fields = text.split()
        try:
            blob = base64.b64decode(fields[1], validate=True) if len(fields) >= 2 else b""
        except ValueError:
            blob = b""
        if not blob or not fields[0].startswith(("ssh-", "ecdsa-")):
            raise invalid("The public key is not a valid OpenSSH public key.")
        if (region, name) in self._key_pairs:
            raise invalid(f"Some names are already in use: {name}")
        self._key_pairs[(region, name)] = key_pair_view(region, name, blob)
        self._public_keys[(region, name)] = f"{fields[0]} {fields[1]}"
        return {"operation": self._operation(region, "all", name, "KeyPair", "")}

    def op_GetKeyPair(self, region: str, p: Params) -> Params:
        if (region, p["keyPairName"]) not in self._key_pairs:
            raise not_found("KeyPair", p["keyPairName"])
        return {"keyPair": self._key_pairs[(region, p["keyPairName"])]}

    def op_GetKeyPairs(self, region: str, p: Params) -> Params:
        return {"keyPairs": [k for (r, _), k in sorted(self._key_pairs.items()) if r == region]}

    def op_DeleteKeyPair(self, region: str, p: Params) -> Params:
        self.op_GetKeyPair(region, p)
        del self._key_pairs[(region, p["keyPairName"])]
        self._public_keys.pop((region, p["keyPairName"]), None)
        return {"operation": self._operation(region, "all", p["keyPairName"], "KeyPair", "")}

    # ---- tags ---------------------------------------------------------------------------

    def op_TagResource(self, region: str, p: Params) -> Params:
        """Instances and key pairs (what the operator tags). A name that both kinds share needs
        ``resourceArn`` to say which."""
        name, arn = p["resourceName"], p.get("resourceArn")
        current: dict[str, dict[str, str]] = {}
        arn_ends: dict[str, str] = {}
        if (region, name) in self._instances:
            current["Instance"] = dict(self._instances[(region, name)].tags)
            arn_ends["Instance"] = f":Instance/{self._instances[(region, name)].cloud_id}"  # AWS: a uuid, not the name
        if (region, name) in self._key_pairs:
            current["KeyPair"] = {t["key"]: t.get("value", "") for t in self._key_pairs[(region, name)]["tags"]}
            arn_ends["KeyPair"] = f":KeyPair/{name}"
        if arn:
            current = {kind: tags for kind, tags in current.items() if arn.endswith(arn_ends[kind])}
        if not current:
            raise not_found("Resource", name)
        if len(current) > 1:
            raise invalid(f"More than one resource is named {name}; give resourceArn.")
        kind, tags = next(iter(current.items()))
        merged = checked_tags([{"key": k, "value": v} for k, v in {**tags, **checked_tags(p["tags"])}.items()])
        if kind == "Instance":
            self._instances[(region, name)].tags = merged
        else:
            self._key_pairs[(region, name)]["tags"] = [{"key": k, "value": v} for k, v in merged.items()]
        return {"operations": [self._operation(region, "all", name, kind, "")]}  # no OperationType for tags


def checked_tags(tags: list[dict[str, str]]) -> dict[str, str]:
    if len(tags) > 50:
        raise invalid("A resource can have at most 50 tags.")
    for tag in tags:
        if len(tag["key"]) > 128 or len(tag.get("value", "")) > 256:
            raise invalid("Tag keys are at most 128 and values at most 256 characters.")
    return {t["key"]: t.get("value", "") for t in tags}
