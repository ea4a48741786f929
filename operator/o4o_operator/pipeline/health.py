"""The health rule (``spec.build.health``): does one answer of the API's health path mean healthy?

Owns: the decision on an answer's HTTP status and body bytes (exactly 200, and, when the rule names a
dotted body field, that field of the JSON body equal to the expected string), the words it is reported in
(``database.status=healthy``, ``..., expected healthy``, ``the body is not JSON, ...``), and
:func:`field_at`, the dotted-field lookup every reader of the instance's JSON shares.

Must not: fetch anything (the operator's tunnel does: ``providers/instance_api.py``), retry, or wait.
Purely computational, no I/O.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

SHOWN_LIMIT = 80
"""How much of the field's value a verdict shows."""


@dataclasses.dataclass(frozen=True)
class HealthRule:
    """``spec.build.health``: the API path probed, the dotted body field (empty: the status decides alone)
    and the value it must hold."""

    path: str = "/api/health"
    body_field: str = "database.status"
    expect: str = "healthy"


@dataclasses.dataclass(frozen=True)
class HealthVerdict:
    healthy: bool
    said: str
    """What the body's field says (``database.status=healthy``), or why it could not be read; empty when
    the status alone decided."""


def field_at(document: Any, dotted: str) -> tuple[bool, Any]:
    """``(found, value)`` of a dotted field (``database.status``) of a parsed JSON document."""
    node = document
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text[:SHOWN_LIMIT]


def judge_health(rule: HealthRule, status: int | None, body: bytes) -> HealthVerdict:
    """Healthy when ``status`` is exactly 200 (a redirect is not healthy; None: nothing answered) and, if
    ``rule.body_field`` is set, that field of the JSON ``body`` is the string ``rule.expect``."""
    if status != 200:
        return HealthVerdict(False, "")
    if not rule.body_field:
        return HealthVerdict(True, "")
    wanted = f"{rule.body_field}={rule.expect}"
    try:
        document = json.loads(body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError is one
        return HealthVerdict(False, f"the body is not JSON, expected {wanted}")
    found, value = field_at(document, rule.body_field)
    if not found:
        return HealthVerdict(False, f"{rule.body_field}=(absent), expected {rule.expect}")
    if value == rule.expect and isinstance(value, str):
        return HealthVerdict(True, f"{rule.body_field}={_shown(value)}")
    return HealthVerdict(False, f"{rule.body_field}={_shown(value)}, expected {rule.expect}")
