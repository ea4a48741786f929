"""Observed facts the pipeline decides with, and the hashing of stage inputs.

Owns: :class:`Facts` (what the runner observed outside the resource) and
``inputs_hash`` (a digest of exactly the spec paths and facts a stage depends
on, so a change to any of them makes that stage, and only that stage, run
again). Purely computational: no I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from o4o_operator.pipeline.stages import Stage


@dataclasses.dataclass(frozen=True)
class Facts:
    """Values observed outside the spec. ``None`` means not known yet."""

    server_address: str | None = None
    commit: str | None = None
    env_version: str | None = None
    """Digest of the referenced env Secrets' resourceVersions; changes when any Secret does."""
    secrets_version: str | None = None
    """Digest of every referenced Secret's resourceVersion (or absence), and of what a clone not configured yet
    waits on in its source instance: fixing either un-stalls."""
    database_version: str | None = None
    """Digest of the operator-owned Secret's and an external database Secret's resourceVersions."""
    server_id: str | None = None
    """The machine behind the address: the cloud's id of the server (its ARN), or an existing host's pinned
    host key. A server replaced under the same name and address has another one."""

    def as_mapping(self) -> dict[str, Any]:
        identity = f"{self.server_address or ''}|{self.server_id or ''}" if self.server_address else None
        return {"serverAddress": self.server_address, "serverIdentity": identity, "commit": self.commit,
                "envVersion": self.env_version,
                "databaseVersion": self.database_version}


def _lookup(document: Mapping[str, Any], dotted: str) -> Any:
    node: Any = document
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def inputs_hash(stage: Stage, spec_body: Mapping[str, Any], facts: Facts) -> str:
    """A short digest of the stage's inputs: the spec paths and facts it lists."""
    fact_values = facts.as_mapping()
    values = {
        path: fact_values.get(path.removeprefix("facts.")) if path.startswith("facts.") else _lookup(spec_body, path)
        for path in stage.inputs
    }
    encoded = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:16]
