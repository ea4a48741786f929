"""Reasons are bounded where errors are made, and metrics label them from a fixed vocabulary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from o4o_operator import errors
from o4o_operator.errors import (
    KNOWN_REASONS,
    OTHER_REASON_LABEL,
    REASON_MAX_LENGTH,
    UNRECOGNISED_REASON,
    InvalidSpecError,
    PermanentError,
    TransientError,
    bounded_reason,
    reason_label,
)
from o4o_operator.models import StageState, StageStatus
from o4o_operator.pipeline.conditions import Summary, Verdict, build_conditions

REPO = Path(__file__).resolve().parents[2]
CONDITION_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


@pytest.mark.parametrize("raw", [
    "R" * 500, "A" * 128 + "B", "A" * 127 + ":" + "B" * 20, "bad-reason", "Trailing:", "", "9Lives", "Line\n",
    "Ünïcode", "With space", "A" * 64 + ",",
])
def test_every_reason_becomes_one_a_condition_accepts(raw: str) -> None:
    for error in (PermanentError(raw, "m"), TransientError(raw, "m"), InvalidSpecError("spec.x", "m", reason=raw)):
        assert CONDITION_REASON.match(error.reason) and "\n" not in error.reason, (raw, error.reason)
        assert len(error.reason) <= REASON_MAX_LENGTH


def test_valid_reasons_are_kept_and_long_ones_cut() -> None:
    assert bounded_reason("RevisionNotFound") == "RevisionNotFound"
    assert bounded_reason("Vendor:Code_1") == "Vendor:Code_1"
    assert bounded_reason("A" * 127 + ":" + "B") == "A" * 127
    assert bounded_reason("bad-reason") == UNRECOGNISED_REASON


def test_an_unrecognised_reason_is_kept_in_the_message_bounded() -> None:
    error = PermanentError("no good!" + "x" * 500, "the script failed")
    assert error.reason == UNRECOGNISED_REASON
    assert error.message.startswith("the script failed")
    assert "no good!" in error.message and len(error.message) < 200


def test_a_reason_set_later_is_bounded_too() -> None:
    error = TransientError("Fine", "m")
    error.reason = "Z" * 300
    assert error.reason == "Z" * REASON_MAX_LENGTH


def test_conditions_built_from_a_stored_overlong_reason_are_bounded() -> None:
    record = StageStatus(name="source", state=StageState.FAILED, reason="Q" * 300, message="m")
    built = build_conditions((), (record,), frozenset(), Summary(Verdict.STALLED, "Q" * 300, "m"), 1,
                             "2026-01-01T00:00:00Z")
    assert all(len(c.reason) <= REASON_MAX_LENGTH and CONDITION_REASON.match(c.reason) for c in built)


def test_metric_labels_come_from_a_fixed_vocabulary() -> None:
    assert reason_label("RevisionNotFound") == "RevisionNotFound"
    assert reason_label("SomethingAScriptMadeUp") == OTHER_REASON_LABEL
    assert reason_label("X" * 128) == OTHER_REASON_LABEL
    assert all(CONDITION_REASON.match(r) and len(r) <= REASON_MAX_LENGTH for r in KNOWN_REASONS)
    assert OTHER_REASON_LABEL not in KNOWN_REASONS


_CODE_REASONS = (
    re.compile(r'(?:TransientError|PermanentError|StageError)\(\s*"([A-Za-z]\w*)"'),
    re.compile(r'reason="([A-Za-z]\w*)"'),
    re.compile(r'_unknown\(\s*"[^"]*",\s*"(\w+)"'),
)
_SCRIPT_REASONS = re.compile(r"o4o_(?:permanent|transient)\s+([A-Za-z]\w*)")


def _used_reasons() -> dict[str, str]:
    """Reason -> a file that uses it, from the shipped operator code and the host scripts."""
    found: dict[str, str] = {}
    package = REPO / "operator" / "o4o_operator"
    for path in package.rglob("*.py"):
        if "testing" in path.relative_to(package).parts:
            continue
        text = path.read_text()
        for pattern in _CODE_REASONS:
            found.update((match.group(1), str(path.relative_to(REPO))) for match in pattern.finditer(text))
    for path in (REPO / "templates").rglob("*.sh"):
        found.update((match.group(1), str(path.relative_to(REPO)))
                     for match in _SCRIPT_REASONS.finditer(path.read_text()))
    return found


def test_every_reason_the_code_and_scripts_use_is_in_the_vocabulary() -> None:
    used = _used_reasons()
    assert len(used) > 40
    missing = {reason: where for reason, where in used.items() if reason not in KNOWN_REASONS}
    assert not missing, f"add these to o4o_operator.errors.KNOWN_REASONS: {missing}"
    assert errors.InvalidSpecError("f", "m").reason in KNOWN_REASONS
