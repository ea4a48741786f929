"""The health rule (pipeline/health.py): status and body bytes in, a verdict and its words out. No I/O."""

from __future__ import annotations

import pytest

from o4o_operator.pipeline.health import HealthRule, HealthVerdict, field_at, judge_health

RULE = HealthRule()
HEALTHY = b'{"status":"alive","database":{"status":"healthy"}}'


@pytest.mark.parametrize(("status", "body", "verdict"), [
    (200, HEALTHY, HealthVerdict(True, "database.status=healthy")),
    (200, b'{"database":{"status":"not_initialized"}}',
     HealthVerdict(False, "database.status=not_initialized, expected healthy")),
    (200, b'{"status":"alive"}', HealthVerdict(False, "database.status=(absent), expected healthy")),
    (200, b'{"database":"healthy"}', HealthVerdict(False, "database.status=(absent), expected healthy")),
    (200, b"<html>down</html>", HealthVerdict(False, "the body is not JSON, expected database.status=healthy")),
    (200, b"", HealthVerdict(False, "the body is not JSON, expected database.status=healthy")),
    (200, b"\xff\xfe{", HealthVerdict(False, "the body is not JSON, expected database.status=healthy")),
    (200, b'{"database":{"status":1}}', HealthVerdict(False, "database.status=1, expected healthy")),
    (200, b'{"database":{"status":{"ok":true}}}',
     HealthVerdict(False, 'database.status={"ok":true}, expected healthy')),
    (500, HEALTHY, HealthVerdict(False, "")),
    (301, HEALTHY, HealthVerdict(False, "")),
    (204, HEALTHY, HealthVerdict(False, "")),
    (None, b"", HealthVerdict(False, "")),
])
def test_the_status_and_the_bodys_field_decide(status: int | None, body: bytes, verdict: HealthVerdict) -> None:
    assert judge_health(RULE, status, body) == verdict


def test_only_the_expected_string_is_healthy_not_a_value_that_prints_the_same() -> None:
    rule = HealthRule(body_field="ready", expect="true")
    assert judge_health(rule, 200, b'{"ready":"true"}').healthy
    assert judge_health(rule, 200, b'{"ready":true}') == HealthVerdict(False, "ready=true, expected true")


def test_an_empty_field_leaves_the_status_alone_to_decide() -> None:
    rule = HealthRule(body_field="")
    assert judge_health(rule, 200, b"not json at all") == HealthVerdict(True, "")
    assert judge_health(rule, 503, b"") == HealthVerdict(False, "")


def test_a_long_value_is_shown_bounded() -> None:
    verdict = judge_health(RULE, 200, b'{"database":{"status":"' + b"x" * 500 + b'"}}')
    assert verdict == HealthVerdict(False, "database.status=" + "x" * 80 + ", expected healthy")


def test_field_at_reads_only_objects() -> None:
    assert field_at({"a": {"b": [1]}}, "a.b") == (True, [1])
    assert field_at({"a": [{"b": 1}]}, "a.0.b") == (False, None)
    assert field_at("text", "a") == (False, None)
