"""Operator settings: every tunable has its ``O4O_*`` variable, and bad values name it."""

from __future__ import annotations

import dataclasses

import pytest

from o4o_operator.pipeline.ambient_grants import AmbientGrants
from o4o_operator.runner.settings import OperatorSettings

FIELDS = [field.name for field in dataclasses.fields(OperatorSettings)]


def _example(default: object) -> tuple[str, object]:
    """A raw value unlike the default, and what it should parse to."""
    if default is None or isinstance(default, str):
        return "http://127.0.0.1:9", "http://127.0.0.1:9"
    if isinstance(default, AmbientGrants):
        return "team-a=a-corp.com", AmbientGrants.parse("team-a=a-corp.com")
    if isinstance(default, bool):
        return ("false", False) if default else ("true", True)
    if isinstance(default, int):
        return str(default + 7), default + 7
    assert isinstance(default, float)
    return str(default + 0.5), default + 0.5


@pytest.mark.parametrize("field_name", FIELDS)
def test_every_setting_is_read_from_its_own_variable(field_name: str) -> None:
    default = getattr(OperatorSettings(), field_name)
    raw, expected = _example(default)
    variable = OperatorSettings.environment_variable(field_name)
    assert variable.startswith("O4O_")
    settings = OperatorSettings.from_environment({variable: raw})
    assert getattr(settings, field_name) == expected
    assert dataclasses.replace(settings, **{field_name: default}) == OperatorSettings()


def test_unset_and_empty_variables_keep_the_defaults() -> None:
    empty = {OperatorSettings.environment_variable(name): "" for name in FIELDS}
    assert OperatorSettings.from_environment(empty) == OperatorSettings()
    assert OperatorSettings.from_environment({}) == OperatorSettings()


def test_the_variables_spelled_in_the_docs_still_work() -> None:
    settings = OperatorSettings.from_environment({
        "O4O_MAX_PIPELINES": "3", "O4O_DRIFT_INTERVAL_SECONDS": "30", "O4O_LIGHTSAIL_ENDPOINT_URL": "http://x",
        "O4O_LOG_CONFIGMAP_MAX_BYTES": "4096", "O4O_CERTIFICATE_WARNING_DAYS": "7"})
    assert (settings.max_pipelines, settings.drift_interval_seconds, settings.lightsail_endpoint_url) == \
        (3, 30.0, "http://x")
    assert (settings.log_configmap_max_bytes, settings.certificate_warning_days) == (4096, 7.0)


@pytest.mark.parametrize(("raw", "complaint"), [
    ("many", "must be a number"), ("-1", "must be positive"), ("0", "must be positive"),
    ("2.5", "must be a whole number"),
])
def test_a_bad_number_names_its_variable(raw: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=f"O4O_MAX_PIPELINES {complaint}"):
        OperatorSettings.from_environment({"O4O_MAX_PIPELINES": raw})


def test_nothing_is_granted_the_operators_own_identity_by_default_and_a_bad_grant_names_its_variable() -> None:
    assert OperatorSettings().ambient_grants == AmbientGrants()
    settings = OperatorSettings.from_environment(
        {"O4O_AMBIENT_GRANTS": "team-a=a-corp.com,shop.example.com;team-b=b.example"})
    assert settings.ambient_grants.zones_for("team-b") == {"b.example"}
    with pytest.raises(ValueError, match="O4O_AMBIENT_GRANTS: 'team-a' is not NAMESPACE=ZONE"):
        OperatorSettings.from_environment({"O4O_AMBIENT_GRANTS": "team-a"})


def test_leader_election_is_on_with_client_go_timings_and_a_bad_switch_names_its_variable() -> None:
    settings = OperatorSettings()
    assert settings.leader_election is True
    assert (settings.lease_duration_seconds, settings.renew_deadline_seconds, settings.retry_period_seconds) == \
        (15.0, 10.0, 2.0)
    for raw, expected in (("false", False), ("0", False), ("off", False), ("TRUE", True), ("yes", True)):
        assert OperatorSettings.from_environment({"O4O_LEADER_ELECTION": raw}).leader_election is expected
    with pytest.raises(ValueError, match="O4O_LEADER_ELECTION must be true or false"):
        OperatorSettings.from_environment({"O4O_LEADER_ELECTION": "maybe"})
