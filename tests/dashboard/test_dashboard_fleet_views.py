"""The fleet views from the statuses the operator's own planner writes: halted, paused, gate, progressing, done.

Pure: the view models from bodies, then the pages rendered by the web app over an in-memory cache (no
process, no API server).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from dashboard_fleet_samples import (
    BUILD_FAILED,
    CANARY,
    FLEET,
    MEMBERS,
    NEW,
    OLD,
    Member,
    fleet_body,
    fleet_spec,
    member_bodies,
    planned_status,
    scenario,
)
from dashboard_samples import XSS, body, spec, status_ready

from o4o_dashboard.cache import InstanceCache
from o4o_dashboard.fleets import FleetDetail, FleetState, fleet_detail

Client = TestClient[web.Request, web.Application]

NAMESPACE = "shop"


def detail_of(name: str, *, extra: dict[str, Any] | None = None) -> FleetDetail:
    case = scenario(name)
    members = {**member_bodies(NAMESPACE, case.members), **(extra or {})}
    return fleet_detail(fleet_body(NAMESPACE, case.spec, case.status), members.get)


@pytest.mark.parametrize(("name", "state", "wave", "updated", "ready", "waves"), [
    ("progressing", FleetState.ROLLING, "canary", 0, "False", ["Rolling", "Pending"]),
    ("halted", FleetState.HALTED, "canary", 0, "False", ["Halted", "Pending"]),
    ("paused", FleetState.PAUSED, "canary", 0, "False", ["Paused", "Pending"]),
    ("gate", FleetState.WAITING_FOR_PROMOTION, "rest", 1, "False", ["Done", "WaitingForPromotion"]),
    ("done", FleetState.DONE, "", 4, "True", ["Done", "Done"]),
])
def test_each_rollout_state_reads_as_the_planner_wrote_it(name: str, state: FleetState, wave: str, updated: int,
                                                          ready: str, waves: list[str]) -> None:
    detail = detail_of(name)
    row = detail.row
    assert (row.state, row.current_wave, row.updated, row.members, row.ready) == (state, wave, updated, 4, ready)
    assert row.target_commit == NEW and row.target_short == NEW[:12] and row.target_revision == "release-2"
    assert [(w.name, w.state) for w in detail.waves] == list(zip(["canary", "rest"], waves, strict=True))
    assert [w.current for w in detail.waves] == [w.name == wave for w in detail.waves]
    assert {m.name: m.wave for m in detail.members} == {
        "shop-kr": "canary", "shop-jp": "rest", "shop-us": "rest", "shop-de": "rest"}
    assert (row.halted, row.paused, bool(detail.promote_command)) == (
        name == "halted", name == "paused", name == "gate")
    assert (detail.halt is not None) == (name == "halted")


def test_halted_names_the_member_its_reason_and_the_wave() -> None:
    detail = detail_of("halted")
    assert detail.halt is not None
    assert (detail.halt.member, detail.halt.wave, detail.halt.reason) == (CANARY, "canary", "BuildFailed")
    assert detail.halt.message == BUILD_FAILED and detail.halt.failed_members == 1
    canary = next(m for m in detail.members if m.name == CANARY)
    assert (canary.halting, canary.failure_reason, canary.phase, canary.updated) == (True, "BuildFailed", "Failed",
                                                                                      False)
    assert canary.on_target and canary.commit == NEW and canary.ready == "False"
    others = [m for m in detail.members if m.name != CANARY]
    assert not any(m.halting or m.failure_reason or m.on_target or m.updated for m in others)
    assert all(m.commit == OLD and m.pinned == OLD and m.owned for m in others)
    assert detail.row.health == "failed"
    stalled = next(c for c in detail.conditions if c.type == "Stalled")
    assert stalled.reason == "RolloutHalted" and f"{CANARY} failed in wave canary: BuildFailed" in stalled.message


def test_gate_says_how_to_release_it() -> None:
    detail = detail_of("gate")
    assert detail.promote_command == f"kubectl annotate dfleet {FLEET} -n {NAMESPACE} deploy.o4o.io/promote=rest"
    assert [m.name for m in detail.members if m.updated] == [CANARY]
    rest = detail.waves[1]
    assert (rest.members, rest.updated, rest.pending, rest.rolling) == (3, 0, 3, 0)


def test_paused_and_progressing() -> None:
    paused = detail_of("paused")
    assert paused.row.paused and paused.waves[0].pending == 1 and paused.row.health == "paused"
    progressing = detail_of("progressing")
    canary = next(m for m in progressing.members if m.name == CANARY)
    assert (canary.pinned, canary.commit, canary.on_target, canary.updated, canary.phase) == (NEW, OLD, False, False,
                                                                                             "Building")
    assert progressing.waves[0].rolling == 1 and progressing.row.health == "deploying"


def test_done_counts_every_member_updated() -> None:
    detail = detail_of("done")
    assert all(m.updated and m.on_target and m.ready == "True" for m in detail.members)
    assert detail.halt is None and not detail.promote_command and detail.row.health == "ready"


def test_a_stale_ready_on_the_old_commit_is_not_updated() -> None:
    """Pinned to the target and Ready, but still serving the old commit: not updated (argo-cd #29410)."""
    members = {name: Member() for name in MEMBERS}
    members[CANARY] = Member(pinned=NEW, commit=OLD, state="ready")
    spec_body = fleet_spec()
    detail = fleet_detail(fleet_body(NAMESPACE, spec_body, planned_status(spec_body, members)),
                          member_bodies(NAMESPACE, members).get)
    canary = next(m for m in detail.members if m.name == CANARY)
    assert canary.ready == "True" and not canary.updated and not canary.on_target
    assert detail.row.state is FleetState.ROLLING and detail.waves[0].updated == 0


def test_a_member_not_owned_by_the_fleet_is_not_shown_as_one() -> None:
    stranger = body("shop-jp", NAMESPACE, spec("jp.shop.example.com"), status_ready())
    case = scenario("progressing")
    members = member_bodies(NAMESPACE, case.members)
    members["shop-jp"] = stranger
    del members["shop-us"]
    detail = fleet_detail(fleet_body(NAMESPACE, case.spec, case.status), members.get)
    by_name = {m.name: m for m in detail.members}
    assert (by_name["shop-jp"].exists, by_name["shop-jp"].owned, by_name["shop-jp"].phase) == (True, False, "")
    assert (by_name["shop-us"].exists, by_name["shop-us"].owned) == (False, False)


def test_a_spec_problem_stalls_with_the_field_named_and_no_member() -> None:
    spec_body = fleet_spec()
    spec_body["strategy"]["waves"][1] = {"name": "rest", "selector": {"matchLabels": {"tier": "none"}}}
    status = planned_status(spec_body, {name: Member() for name in MEMBERS})
    detail = fleet_detail(fleet_body(NAMESPACE, spec_body, status), {}.get)
    assert detail.row.state is FleetState.STALLED and detail.halt is not None
    assert (detail.halt.reason, detail.halt.member) == ("WaveMatchesNothing", "")
    assert "spec.strategy.waves[1].selector" in detail.halt.message
    assert {m.wave for m in detail.members} == {""}  # the planner cannot assign waves either


def test_no_status_yet_shows_the_spec_waves_pending() -> None:
    detail = fleet_detail(fleet_body(NAMESPACE, fleet_spec(), None), {}.get)
    assert detail.row.state is FleetState.PENDING and detail.row.members == 4
    assert [(w.name, w.state, w.members) for w in detail.waves] == [("canary", "Pending", 1), ("rest", "Pending", 3)]


def test_credential_shaped_text_is_masked_and_secrets_are_references() -> None:
    case = scenario("halted")
    status = {**case.status, "target": {**case.status["target"],
                                        "repository": "https://deploy:hunter2hunter2@git.example.com/o4o.git"}}
    status["failures"] = [{**status["failures"][0], "message": "clone with AKIAABCDEFGHIJKLMNOP failed"}]
    detail = fleet_detail(fleet_body(NAMESPACE, case.spec, status), member_bodies(NAMESPACE, case.members).get)
    assert "hunter2" not in detail.repository and "[REDACTED]" in detail.repository
    assert detail.halt is not None and "AKIA" not in detail.halt.message
    fields = {f.label: f.value for group in detail.template for f in group.fields}
    assert fields["Credentials"] == "Secret git-token (key token)"


# ---- the pages, rendered over an in-memory cache ----------------------------------------


def fill(cache: InstanceCache, name: str = "halted", message: str = BUILD_FAILED) -> None:
    case = scenario(name)
    status = case.status
    if status.get("failures"):
        status["failures"][0]["message"] = message
    cache.replace_fleets([fleet_body(NAMESPACE, case.spec, status)])
    cache.replace_instances(list(member_bodies(NAMESPACE, case.members).values()))


async def text(client: Client, path: str, status: int = 200) -> str:
    response = await client.get(path)
    assert response.status == status, path
    return await response.text()


async def test_fleet_pages_render_the_halt_escaped(client: Client, cache: InstanceCache) -> None:
    fill(cache, message=XSS)
    listing = await text(client, "/fleets")
    assert re.findall(r'<tr data-key="([^"]+)" data-state="([^"]+)"', listing) == [(f"{NAMESPACE}/{FLEET}",
                                                                                     "Halted")]
    assert f'href="/fleets/{NAMESPACE}/{FLEET}"' in listing and "0/4" in listing
    assert 'href="/fleets">Fleets</a>' in await text(client, "/")
    page = await text(client, f"/fleets/{NAMESPACE}/{FLEET}")
    assert 'id="halt" role="alert" data-member="shop-kr" data-wave="canary"' in page
    assert f'<a href="/instances/{NAMESPACE}/{CANARY}" id="halting-member">{CANARY}</a>' in page
    assert XSS not in page and "&lt;img src=x onerror=window.__xss=1&gt;" in page
    assert 'class="member-halting"' in page
    fragment = await text(client, f"/fragments/fleets/{NAMESPACE}/{FLEET}")
    assert fragment.lstrip().startswith('<section class="detail-head"') and 'id="halt"' in fragment


async def test_gate_and_pause_are_visible(client: Client, cache: InstanceCache) -> None:
    fill(cache, "gate")
    page = await text(client, f"/fleets/{NAMESPACE}/{FLEET}")
    assert 'id="gate"' in page and "deploy.o4o.io/promote=rest" in page and 'id="halt"' not in page
    fill(cache, "paused")
    page = await text(client, f"/fleets/{NAMESPACE}/{FLEET}")
    assert 'id="paused"' in page and 'id="gate"' not in page


async def test_a_missing_fleet_is_a_404_naming_the_kind(client: Client) -> None:
    page = await text(client, f"/fleets/{NAMESPACE}/nope", 404)
    assert f"There is no DeploymentFleet {NAMESPACE}/nope" in page and 'href="/fleets"' in page
    assert "There is no DeploymentInstance" in await text(client, f"/instances/{NAMESPACE}/nope", 404)
