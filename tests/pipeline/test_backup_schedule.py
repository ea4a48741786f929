"""Scheduled backups: the cron syntax (models_cron) and when a scheduled backup is due (pipeline/backup_schedule),
with a fake clock (plain datetimes), no processes."""

from __future__ import annotations

import datetime

import pydantic
import pytest

from o4o_operator import models_cron
from o4o_operator.models import DeploymentInstanceSpec
from o4o_operator.pipeline import backup_schedule
from o4o_operator.runner.worker import _invalid_spec_message

UTC = datetime.UTC


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(("schedule", "after", "expected"), [
    ("0 3 * * *", "2026-12-06 02:59:59", "2026-12-06 03:00"),
    ("0 3 * * *", "2026-12-06 03:00:00", "2026-12-07 03:00"),  # strictly after
    ("*/15 * * * *", "2026-12-06 10:07", "2026-12-06 10:15"),
    ("30 4 1 * *", "2026-12-06 00:00", "2027-01-01 04:30"),
    ("0 0 * * mon", "2026-12-06 12:00", "2026-12-07 00:00"),  # 2026-12-06 is a Sunday
    ("0 0 * * 7", "2026-12-06 12:00", "2026-12-13 00:00"),  # 7 is Sunday too
    ("0 12 13 * 5", "2026-12-06 00:00", "2026-12-11 12:00"),  # both day fields: either (a Friday first)
    ("0 0 29 feb *", "2026-12-06 00:00", "2028-02-29 00:00"),
    ("0 22 * * 1-5", "2026-12-05 23:00", "2026-12-07 22:00"),  # Saturday night: Monday next
    ("5 1-10/3 * * *", "2026-12-06 04:05", "2026-12-06 07:05"),
    ("@daily", "2026-12-06 12:00", "2026-12-07 00:00"),
    ("@hourly", "2026-12-06 12:00:01", "2026-12-06 13:00"),
    ("@weekly", "2026-12-06 12:00", "2026-12-13 00:00"),
    ("@monthly", "2026-12-06 12:00", "2027-01-01 00:00"),
])
def test_the_next_window_is_the_first_matching_minute_strictly_after(schedule: str, after: str,
                                                                      expected: str) -> None:
    assert models_cron.parse(schedule).next_after(at(after)) == at(expected)


@pytest.mark.parametrize(("schedule", "words"), [
    ("0 3 * *", "4 fields, not 5"),
    ("60 3 * * *", "minute 60 is outside 0-59"),
    ("0 24 * * *", "hour 24 is outside 0-23"),
    ("0 0 0 * *", "day of month 0 is outside 1-31"),
    ("0 0 * 13 *", "month 13 is outside 1-12"),
    ("0 0 * * 8", "day of week 8 is outside 0-7"),
    ("0 0 * * sunday", "not a number or a name"),
    ("*/0 * * * *", "not a value, range or step"),
    ("0 0 * * MON", "not a number or a name"),
    ("0 10-2 * * *", "runs backwards"),
    ("0 0 30 feb *", "never matches a real date"),
    ("@often", "not a known macro"),
])
def test_a_bad_schedule_is_refused_saying_what_is_wrong(schedule: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        models_cron.parse(schedule)


def _spec(schedule: str) -> dict[str, object]:
    return {"domain": "shop.example.com", "provider": {"existing": {"host": "db.example.com"}},
            "ssh": {"user": "deploy", "privateKeySecretRef": {"name": "k", "key": "ssh-privatekey"}},
            "source": {"repository": "https://example.com/r.git"}, "tls": {"email": "a@example.com"},
            "database": {"backup": {"schedule": schedule, "target": {"s3": {
                "endpoint": "https://s3.example.com", "bucket": "bkt", "credentialsSecretRef": {"name": "s3"}}}}}}


def test_the_spec_refuses_a_bad_schedule_naming_the_field() -> None:
    assert DeploymentInstanceSpec.model_validate(_spec("0 3 * * *")).database.backup is not None
    with pytest.raises(pydantic.ValidationError) as caught:
        DeploymentInstanceSpec.model_validate(_spec("0 0 30 feb *"))  # the CRD's pattern lets this through
    message = _invalid_spec_message(caught.value)
    assert message.startswith("spec.database.backup.schedule:") and "never matches a real date" in message
    with pytest.raises(pydantic.ValidationError) as caught:
        DeploymentInstanceSpec.model_validate(_spec("0 25 * * *"))
    assert _invalid_spec_message(caught.value).startswith("spec.database.backup.schedule:")


def test_a_new_schedule_waits_for_its_first_window() -> None:
    now = at("2026-12-06 10:00")
    first = backup_schedule.plan("0 3 * * *", None, None, None, now)
    assert first == backup_schedule.SchedulePlan(next_at=at("2026-12-07 03:00"), due=False)
    # Recorded, it stays put as the clock moves on, and is due once the window comes.
    again = backup_schedule.plan("0 3 * * *", "0 3 * * *", stamp(first.next_at), None, at("2026-12-07 02:59"))
    assert again == first
    due = backup_schedule.plan("0 3 * * *", "0 3 * * *", stamp(first.next_at), None, at("2026-12-07 03:00:05"))
    assert due.due and due.next_at == at("2026-12-07 03:00")


def test_windows_missed_while_the_operator_was_down_take_one_catch_up_backup() -> None:
    # The last scheduled backup ran on Monday; the operator was down until Thursday noon: three windows passed.
    recorded_next = "2026-12-08T03:00:00Z"
    back = at("2026-12-10 12:00")
    catch_up = backup_schedule.plan("0 3 * * *", "0 3 * * *", recorded_next, "2026-12-07T03:00:00Z", back)
    assert catch_up.due
    # One backup is taken now; the next is the first window after now, not one per missed window.
    following = backup_schedule.after_backup("0 3 * * *", back)
    assert following == at("2026-12-11 03:00")
    later = backup_schedule.plan("0 3 * * *", "0 3 * * *", stamp(following), stamp(back), back)
    assert not later.due


def test_a_lost_next_time_is_recomputed_from_the_last_backup_so_a_missed_window_still_fires_once() -> None:
    # Status lost nextScheduledBackup (or it was never written) but remembers the last scheduled backup.
    plan = backup_schedule.plan("@daily", None, None, "2026-12-04T00:00:10Z", at("2026-12-06 09:00"))
    assert plan.due and plan.next_at == at("2026-12-05 00:00")


def test_a_changed_schedule_recomputes_the_next_window() -> None:
    now = at("2026-12-06 10:00")
    plan = backup_schedule.plan("0 12 * * *", "0 3 * * *", "2026-12-07T03:00:00Z", None, now)
    assert plan == backup_schedule.SchedulePlan(next_at=at("2026-12-06 12:00"), due=False)


def test_the_readme_manifests_of_backups_are_valid_database_specs() -> None:
    import pathlib
    import re

    import yaml

    from o4o_operator.models_database import DatabaseSpec

    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(  database:\n    backup:\n.*?)```", readme,
                                                             re.DOTALL)]
    assert len(blocks) == 2
    specs = [DatabaseSpec.model_validate(block["database"]) for block in blocks]
    scheduled = specs[1].backup
    assert scheduled is not None and scheduled.schedule == "30 3 * * *"
    assert scheduled.target.lightsail_bucket is not None and scheduled.target.s3 is None
