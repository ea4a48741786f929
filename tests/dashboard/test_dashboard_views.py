"""The list's view models: rows from bodies in every state, stats, the list query, formats."""

from __future__ import annotations

import datetime

import pytest
from dashboard_samples import STATES, body, spec, state_bodies, status_building

from o4o_dashboard.views import (
    Health,
    ListQuery,
    format_age,
    format_duration,
    instance_row,
    select_rows,
    stage_progress,
    stats_of,
)

NOW = datetime.datetime(2025, 3, 2, 10, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(("name", "phase", "health", "progress", "ip", "stalled", "paused"), [
    ("pending", "Pending", Health.DEPLOYING, 0, "", False, False),
    ("building", "Building", Health.DEPLOYING, 5, "203.0.113.20", False, False),
    ("ready", "Ready", Health.READY, 10, "203.0.113.9", False, False),
    ("failed", "Failed", Health.FAILED, 8, "203.0.113.100", True, False),
    ("paused", "Ready", Health.READY, 10, "203.0.113.7", False, True),
])
def test_row_reflects_each_state(name: str, phase: str, health: Health, progress: int, ip: str,
                                 stalled: bool, paused: bool) -> None:
    spec_body, status = STATES[name]
    row = instance_row(body(name, "shop", spec_body, status))
    assert (row.phase, row.health, row.stages_succeeded, row.stage_count) == (phase, health, progress, 10)
    assert (row.ip_address, row.stalled, row.paused) == (ip, stalled, paused)
    assert row.key == f"shop/{name}"
    assert row.age_seconds(NOW) == 86400


def test_progress_counts_succeeded_stages_over_the_stage_progress_text() -> None:
    status = status_building()
    status["stageProgress"] = "1/10"  # stale text; the stage list wins
    assert stage_progress(status) == (5, 10)
    assert stage_progress({"stageProgress": "5/9"}) == (5, 9)
    assert stage_progress({"stageProgress": "garbage"}) == (0, 10)


def test_stalled_counts_as_failed_and_deletion_as_deleting() -> None:
    stalled = body("x", "ns", spec("x.example.com"), {**status_building(), "conditions": [
        {"type": "Stalled", "status": "True", "reason": "NoCapacity",
         "lastTransitionTime": "2025-03-01T10:00:00Z"}]})
    assert instance_row(stalled).health is Health.FAILED
    deleting = body("y", "ns", spec("y.example.com"), status_building())
    deleting["metadata"]["deletionTimestamp"] = "2025-03-02T00:00:00Z"
    assert instance_row(deleting).health is Health.DELETING


def test_paused_annotation_counts_as_paused() -> None:
    annotated = body("z", "ns", spec("z.example.com"))
    annotated["metadata"]["annotations"] = {"deploy.o4o.io/paused": "true"}
    assert instance_row(annotated).paused


@pytest.mark.parametrize("malformed", [
    {},
    {"metadata": "nope", "spec": [], "status": 7},
    {"metadata": {"name": "m", "namespace": "n"}, "status": {"stages": ["x", None, {"state": 3}],
                                                             "conditions": "Ready", "server": []}},
])
def test_malformed_bodies_give_a_row_not_an_error(malformed: dict[str, object]) -> None:
    row = instance_row(malformed)
    assert row.phase == "Pending"
    assert row.stages_succeeded == 0


def test_stats_count_each_bucket() -> None:
    stats = stats_of(map(instance_row, state_bodies()))
    assert stats.to_json() == {"total": 5, "ready": 2, "deploying": 2, "failed": 1}


def test_query_parsing_is_lenient_and_round_trips() -> None:
    query = ListQuery.from_params({"phase": "Ready", "namespace": "shop", "q": " shop ", "sort": "ip",
                                   "dir": "desc", "page": "2", "limit": "50"})
    assert query == ListQuery(phase="Ready", namespace="shop", search="shop", sort="ip", descending=True,
                              page=2, per_page=50)
    assert ListQuery.from_params(dict(query.params())) == query
    assert ListQuery.from_params({"sort": "; DROP", "page": "-3", "limit": "99999"}) == ListQuery(
        sort="name", page=1, per_page=1000)


def test_sort_link_toggles_only_the_current_column() -> None:
    query = ListQuery(sort="domain")
    assert query.sort_link("domain") == "sort=domain&dir=desc"
    assert query.sort_link("age") == "sort=age"
    assert ListQuery(sort="domain", descending=True).sort_link("domain") == "sort=domain"
    assert query.aria_sort("domain") == "ascending" and query.aria_sort("ip") == "none"


def test_filters_match_phase_namespace_and_domain_search() -> None:
    rows = [instance_row(b) for b in state_bodies("shop")] + [instance_row(b) for b in state_bodies("blog")]
    assert select_rows(rows, ListQuery(phase="Ready")).matching == 4
    assert select_rows(rows, ListQuery(namespace="blog")).matching == 5
    found = select_rows(rows, ListQuery(search="BROKEN.example", namespace="shop"))
    assert [row.key for row in found.rows] == ["shop/failed"]


@pytest.mark.parametrize(("column", "expected"), [
    ("name", ["building", "failed", "paused", "pending", "ready"]),
    ("domain", ["failed", "building", "pending", "paused", "ready"]),
    ("phase", ["pending", "building", "paused", "ready", "failed"]),  # lifecycle order, ties by name
    ("progress", ["pending", "building", "failed", "paused", "ready"]),
    ("ip", ["paused", "ready", "building", "failed", "pending"]),  # .7 < .9 < .20 < .100, blank last
])
def test_sorting_by_each_column(column: str, expected: list[str]) -> None:
    rows = [instance_row(b) for b in state_bodies()]
    assert [row.name for row in select_rows(rows, ListQuery(sort=column)).rows] == expected
    descending = select_rows(rows, ListQuery(sort=column, descending=True)).rows
    assert descending[0].name == (expected[-1] if column != "progress" else "paused")


def test_sorting_by_age_puts_the_youngest_first() -> None:
    old, young = body("old", "ns", spec("old.example.com")), body("young", "ns", spec("young.example.com"))
    young["metadata"]["creationTimestamp"] = "2025-03-02T09:00:00Z"
    rows = [instance_row(old), instance_row(young)]
    assert [r.name for r in select_rows(rows, ListQuery(sort="age")).rows] == ["young", "old"]
    oldest_first = select_rows(rows, ListQuery(sort="age", descending=True)).rows
    assert [r.name for r in oldest_first] == ["old", "young"]


def test_pages_cut_the_sorted_list() -> None:
    rows = [instance_row(body(f"i{n:03d}", "ns", spec(f"i{n}.example.com"))) for n in range(250)]
    page = select_rows(rows, ListQuery(page=3))
    assert (page.matching, page.pages, page.page, len(page.rows)) == (250, 3, 3, 50)
    assert page.rows[0].name == "i200"
    assert select_rows(rows, ListQuery(page=99)).page == 3


@pytest.mark.parametrize(("seconds", "text"), [(None, "—"), (5, "5s"), (119, "119s"), (600, "10m"),
                                                (7200, "2h"), (200000, "2d")])
def test_age_format(seconds: float | None, text: str) -> None:
    assert format_age(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(None, "—"), (42, "42s"), (185, "3m 05s"), (3720, "1h 02m"),
                                                (183600, "2d 03h")])
def test_duration_format(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text
