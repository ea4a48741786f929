"""Cron schedules (``spec.database.backup.schedule``): the five-field crontab syntax and its ``@daily`` macros.

Owns: :func:`parse` (text to :class:`CronSchedule`, or ``ValueError`` saying what is wrong) and
:meth:`CronSchedule.next_after` (the first minute strictly after a moment that the schedule matches). Times are
UTC. The syntax is Vixie cron's: ``minute hour day-of-month month day-of-week``, each ``*``, a number, a range
``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of those; month and weekday names in lower case (``jan``,
``mon``); weekday 0 and 7 are Sunday; when both day fields are restricted, a day matching either runs (as cron
does).
Purely computational: no I/O, no clock (the caller passes the moment), and it imports nothing of the operator.
"""

from __future__ import annotations

import dataclasses
import datetime
import re

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
          "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_STEP = "[1-9][0-9]?"


def _field_pattern(value: str) -> str:
    item = rf"(\*|{value}(-{value})?)(/{_STEP})?"
    return rf"{item}(,{item})*"


PATTERN = "^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|" + " ".join(_field_pattern(value) for value in (
    "[0-5]?[0-9]", "([01]?[0-9]|2[0-3])", "(0?[1-9]|[12][0-9]|3[01])", "(0?[1-9]|1[0-2]|" + "|".join(_MONTHS) + ")",
    "([0-7]|" + "|".join(_WEEKDAYS) + ")")) + ")$"
"""What the CRD admits: each field's values within its range, names in lower case. :func:`parse` also refuses
a range that runs backwards and a day that no calendar has."""
_FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
           ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _WEEKDAYS))
_SEARCH_DAYS = 366 * 8 + 2
"""Far enough for the rarest schedule that can match at all (the 29th of February, after a skipped leap year)."""
_REFERENCE = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class CronSchedule:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 is Sunday (a 7 is folded into 0)."""
    days_restricted: bool
    weekdays_restricted: bool

    def _day_matches(self, day: datetime.date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        """The first whole minute strictly after ``moment`` (aware; taken as UTC) that the schedule matches."""
        start = moment.astimezone(datetime.UTC).replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
        day = start.date()
        for offset in range(_SEARCH_DAYS):
            current = day + datetime.timedelta(days=offset)
            if not self._day_matches(current):
                continue
            for hour in sorted(self.hours):
                for minute in sorted(self.minutes):
                    candidate = datetime.datetime(current.year, current.month, current.day, hour, minute,
                                                  tzinfo=datetime.UTC)
                    if candidate >= start:
                        return candidate
        raise ValueError(f"schedule {self.text!r} never matches a real date")


def _value(token: str, low: int, high: int, names: tuple[str, ...], field: str) -> int:
    if token in names:
        return names.index(token) + (1 if names is _MONTHS else 0)
    if not token.isdigit():
        raise ValueError(f"{field} {token!r} is not a number" + (f" or a name ({', '.join(names)})" if names else ""))
    number = int(token)
    if not low <= number <= high:
        raise ValueError(f"{field} {number} is outside {low}-{high}")
    return number


def _field(text: str, field: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(rf"([^/]+)(?:/({_STEP}))?", part)
        if match is None:
            raise ValueError(f"{field} {part!r} is not a value, range or step")
        span, step_text = match.groups()
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first_text, _, last_text = span.partition("-")
            first, last = (_value(first_text, low, high, names, field), _value(last_text, low, high, names, field))
            if first > last:
                raise ValueError(f"{field} range {span!r} runs backwards")
        else:
            first = _value(span, low, high, names, field)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def parse(text: str) -> CronSchedule:
    """The schedule ``text`` describes; ``ValueError`` naming the part that is wrong."""
    expanded = MACROS.get(text.strip(), text.strip())
    if expanded.startswith("@"):
        raise ValueError(f"{text!r} is not a known macro ({', '.join(MACROS)})")
    parts = expanded.split()
    if len(parts) != len(_FIELDS):
        raise ValueError(f"{text!r} has {len(parts)} fields, not 5 (minute hour day-of-month month day-of-week)")
    sets = [_field(part, field, low, high, names) for part, (field, low, high, names) in zip(parts, _FIELDS,
                                                                                            strict=True)]
    weekdays = frozenset(day % 7 for day in sets[4])
    schedule = CronSchedule(text=text, minutes=sets[0], hours=sets[1], days=sets[2], months=sets[3],
                            weekdays=weekdays, days_restricted=not parts[2].startswith("*"),
                            weekdays_restricted=not parts[4].startswith("*"))
    schedule.next_after(_REFERENCE)  # a day that no calendar has (such as 30 feb) is refused here
    return schedule
