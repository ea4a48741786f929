"""The fleet's rollout decisions, one rule per test, with no processes: pipeline/fleet_rollout.py.

Members are described by a short word per member (``_member``): ``old`` (on the previous commit, Ready),
``pinned`` (pinned to the target, still rolling), ``new`` (updated to the target), ``failed`` (pinned and
Stalled), ``stale`` (pinned, its status still the old commit's Ready of the previous generation), ``lagging`` (the
target's Ready about an older generation), ``unready``, ``foreign`` (not owned), ``-`` (absent).
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from o4o_operator.models_fleet import DeploymentFleetSpec, DeploymentFleetStatus, FleetTarget, WaveState
from o4o_operator.pipeline.fleet_rollout import FleetPlan, MemberState, plan
from o4o_operator.pipeline.fleet_waves import assign_waves

OLD = "a" * 40
NEW = "b" * 40
TARGET = FleetTarget(repository="https://example.com/o4o.git", revision="main", commit=NEW)
NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)


def _spec(members: int = 5, waves: list[dict[str, Any]] | None = None, **fields: Any) -> DeploymentFleetSpec:
    body: dict[str, Any] = {
        "template": {"source": {"revision": "main"}},
        "members": [{"name": f"m{i}", "domain": f"m{i}.example.com",
                     "labels": {"tier": "canary" if i == 0 else "main"}} for i in range(members)],
        **fields}
    if waves is not None:
        body["strategy"] = {"waves": waves}
    return DeploymentFleetSpec.model_validate(body)


def _member(name: str, word: str) -> MemberState:
    if word == "old":
        return MemberState(name, pinned_revision=OLD, commit=OLD, generation=1, observed_generation=1, ready=True,
                           reason="Succeeded")
    if word == "pinned":
        return MemberState(name, pinned_revision=NEW, commit=OLD, generation=2, observed_generation=2, ready=False,
                           reason="StageRunning")
    if word == "stale":  # the old commit's Ready, about the previous generation: argo-cd #29410
        return MemberState(name, pinned_revision=NEW, commit=OLD, generation=2, observed_generation=1, ready=True,
                           reason="Succeeded")
    if word == "new":
        return MemberState(name, pinned_revision=NEW, commit=NEW, generation=2, observed_generation=2, ready=True,
                           reason="Succeeded")
    if word == "lagging":  # serves the target, but its spec changed since (generation 3) and it has not looked
        return MemberState(name, pinned_revision=NEW, commit=NEW, generation=3, observed_generation=2, ready=True,
                           reason="Succeeded")
    if word == "unready":
        return MemberState(name, pinned_revision=NEW, commit=NEW, generation=2, observed_generation=2, ready=False,
                           reason="HealthCheckFailed")
    if word == "failed":
        return MemberState(name, pinned_revision=NEW, commit=OLD, generation=2, observed_generation=2, ready=False,
                           stalled=True, reason="RolledBack", message="health check failed; release rolled back")
    if word == "foreign":
        return MemberState(name, owned=False, pinned_revision=OLD, commit=OLD, ready=True)
    raise AssertionError(word)


def _members(words: str) -> dict[str, MemberState]:
    """``"new new old - old"``: one word per member m0, m1, ...; ``-`` for absent."""
    return {f"m{i}": _member(f"m{i}", word) for i, word in enumerate(words.split()) if word != "-"}


def _plan(spec: DeploymentFleetSpec, words: str, old: DeploymentFleetStatus | None = None,
          promoted: str | None = None, now: datetime.datetime = NOW) -> FleetPlan:
    return plan(spec, 3, TARGET, _members(words), old or DeploymentFleetStatus(target=TARGET), promoted, now)


def _reason(result: FleetPlan, type_: str = "Ready") -> str:
    condition = result.status.condition(type_)
    assert condition is not None
    return condition.reason


TWO_WAVES = [{"name": "canary", "count": 1}, {"name": "rest", "percentage": 100, "maxUnavailable": 2}]

# (case, waves, members, pins, wave standing, Ready's reason)
TABLE: list[tuple[str, list[dict[str, Any]] | None, str, tuple[str, ...], str | None, str]] = [
    ("a new target starts with the canary only", TWO_WAVES, "old old old old old", ("m0",), "canary", "Rolling"),
    ("the canary rolling: nothing else starts", TWO_WAVES, "pinned old old old old", (), "canary", "Rolling"),
    ("the canary updated: the next wave starts, maxUnavailable at once", TWO_WAVES, "new old old old old",
     ("m1", "m2"), "rest", "Rolling"),
    ("maxUnavailable counts members still rolling", TWO_WAVES, "new new pinned old old", ("m3",), "rest", "Rolling"),
    ("a stale Ready on the old commit does not complete the canary", TWO_WAVES, "stale old old old old", (),
     "canary", "Rolling"),
    ("Ready on the target commit, about an older generation, is not updated", TWO_WAVES, "lagging old old old old",
     (), "canary", "Rolling"),
    ("the target commit but not Ready is not updated", TWO_WAVES, "unready old old old old", (), "canary",
     "Rolling"),
    ("every member updated: complete", TWO_WAVES, "new new new new new", (), None, "RolloutComplete"),
    ("the first failure halts: nothing else starts", TWO_WAVES, "failed old old old old", (), "canary",
     "RolloutHalted"),
    ("a failure in wave 2 halts it; members already updated stay", TWO_WAVES, "new failed pinned old old", (),
     "rest", "RolloutHalted"),
    ("the default strategy: a canary of one, then the rest one at a time", None, "new old old old old", ("m1",),
     "rest", "Rolling"),
    ("a selector wave takes its members first", [{"name": "canary", "selector": {"matchLabels": {"tier": "canary"}}},
                                                 {"name": "all", "percentage": 100, "maxUnavailable": 10}],
     "old old old old old", ("m0",), "canary", "Rolling"),
    ("percentage is of all members, rounded up", [{"name": "third", "percentage": 30, "maxUnavailable": 5},
                                                  {"name": "all", "percentage": 100}],
     "old old old old old", ("m0", "m1"), "third", "Rolling"),
    ("members no wave takes roll last, in the implicit rest", [{"name": "one", "count": 1}], "new new old old old",
     (), "rest", "Rolling"),
]


@pytest.mark.parametrize(("case", "waves", "words", "pins", "wave", "reason"), TABLE, ids=[row[0] for row in TABLE])
def test_rollout_rules(case: str, waves: list[dict[str, Any]] | None, words: str, pins: tuple[str, ...],
                       wave: str | None, reason: str) -> None:
    old = None
    if case.startswith("members no wave takes"):  # m1 is rest's first member, rolling
        words = "new pinned old old old"
    result = _plan(_spec(waves=waves), words, old)
    assert result.pin == pins, case
    assert result.status.current_wave == wave, case
    assert _reason(result) == reason, case


def test_a_stale_ready_never_completes_a_wave_where_a_status_only_check_would() -> None:
    """argo-cd #29410: the canary pinned to the target still shows the old commit's Ready. A check of Ready alone
    would call the canary done and start wave 2 (the wrong order); the fleet waits for the target commit."""
    members = _members("stale old old old old")
    assert members["m0"].ready, "the stale member reads Ready, as a status-only check sees it"
    status_only_done = all(state.ready for name, state in members.items() if name == "m0")
    assert status_only_done
    result = _plan(_spec(waves=TWO_WAVES), "stale old old old old")
    assert result.pin == ()
    assert result.status.current_wave == "canary"
    assert result.status.updated == 0
    assert _reason(result) == "Rolling"


def test_a_halt_names_the_member_its_reason_and_the_wave() -> None:
    result = _plan(_spec(waves=TWO_WAVES), "failed old old old old")
    stalled = result.status.condition("Stalled")
    assert stalled is not None and stalled.status == "True" and stalled.reason == "RolloutHalted"
    assert "m0" in stalled.message and "RolledBack" in stalled.message and "canary" in stalled.message
    assert [(f.member, f.wave, f.reason) for f in result.status.failures] == [("m0", "canary", "RolledBack")]
    assert result.status.waves[0].state is WaveState.HALTED and result.status.waves[1].state is WaveState.PENDING


def test_failure_threshold_allows_more_failures_than_one() -> None:
    spec = _spec(waves=TWO_WAVES, failureThreshold=2)
    one = _plan(spec, "new failed old old old")
    assert one.pin == ("m2",) and _reason(one) == "Rolling"  # the failed member counts as unavailable
    two = _plan(spec, "new failed failed old old")
    assert two.pin == () and _reason(two) == "RolloutHalted"


def test_a_wave_done_except_failures_under_the_threshold_is_done() -> None:
    result = _plan(_spec(waves=TWO_WAVES, failureThreshold=2), "failed old old old old")
    assert result.status.waves[0].state is WaveState.DONE
    assert result.pin == ("m1", "m2")


def test_a_paused_fleet_starts_nothing_and_says_so() -> None:
    result = _plan(_spec(waves=TWO_WAVES, paused=True), "new old old old old")
    assert result.pin == ()
    assert _reason(result) == "Paused"
    reconciling = result.status.condition("Reconciling")
    assert reconciling is not None and reconciling.status == "False"
    complete = _plan(_spec(waves=TWO_WAVES, paused=True), "new new new new new")
    assert _reason(complete) == "RolloutComplete"


def test_bake_time_holds_the_next_wave_until_it_ends() -> None:
    waves = [{"name": "canary", "count": 1, "bakeSeconds": 600}, {"name": "rest", "percentage": 100}]
    spec = _spec(waves=waves)
    first = _plan(spec, "new old old old old")
    assert first.pin == () and _reason(first) == "Baking" and first.recheck_seconds == 600
    later = _plan(spec, "new old old old old", first.status, now=NOW + datetime.timedelta(seconds=599))
    assert later.pin == () and later.recheck_seconds == 1
    baked = _plan(spec, "new old old old old", later.status, now=NOW + datetime.timedelta(seconds=600))
    assert baked.pin == ("m1",)


def test_max_unavailable_zero_is_a_gate_released_by_the_annotation() -> None:
    waves = [{"name": "canary", "count": 1}, {"name": "rest", "percentage": 100, "maxUnavailable": 0}]
    spec = _spec(waves=waves)
    gated = _plan(spec, "new old old old old")
    assert gated.pin == () and _reason(gated) == "WaitingForPromotion"
    assert gated.status.waves[1].state is WaveState.WAITING_FOR_PROMOTION
    assert _plan(spec, "new old old old old", promoted="canary").pin == ()
    released = _plan(spec, "new old old old old", promoted="rest")
    assert released.pin == ("m1", "m2", "m3", "m4")


def test_the_gate_is_released_once_per_start_of_the_wave() -> None:
    """The annotation opens the gate once: the plan asks for it to be taken away, the started wave stays open
    without it, and the next target's gate waits for a new annotation (one left over would open it unasked)."""
    waves = [{"name": "canary", "count": 1}, {"name": "rest", "percentage": 100, "maxUnavailable": 0}]
    spec = _spec(waves=waves)
    gated = _plan(spec, "new old old old old")
    assert gated.release_promotion is None
    released = _plan(spec, "new old old old old", promoted="rest")
    assert released.pin == ("m1", "m2", "m3", "m4") and released.release_promotion == "rest"
    taken_away = _plan(spec, "new pinned new pinned pinned", released.status)
    assert _reason(taken_away) == "Rolling" and taken_away.status.waves[1].state is WaveState.ROLLING
    assert taken_away.release_promotion is None
    complete = _plan(spec, "new new new new new", taken_away.status)
    assert _reason(complete) == "RolloutComplete"
    following = FleetTarget(repository=TARGET.repository, revision="next", commit="c" * 40)
    canary_done = {**_members("old old old old old"), "m0": MemberState(
        "m0", pinned_revision="c" * 40, commit="c" * 40, generation=3, observed_generation=3, ready=True)}
    waiting = plan(spec, 4, following, canary_done, complete.status, None, NOW)
    assert waiting.pin == () and _reason(waiting) == "WaitingForPromotion"


def test_a_member_not_updated_by_the_deadline_has_failed() -> None:
    waves = [{"name": "canary", "count": 1, "deadlineSeconds": 300}, {"name": "rest", "percentage": 100}]
    spec = _spec(waves=waves)
    started = _plan(spec, "old old old old old")
    assert started.status.waves[0].started_at == "2026-12-06T12:00:00Z"
    rolling = _plan(spec, "pinned old old old old", started.status, now=NOW + datetime.timedelta(seconds=299))
    assert _reason(rolling) == "Rolling" and rolling.recheck_seconds == 1
    late = _plan(spec, "pinned old old old old", rolling.status, now=NOW + datetime.timedelta(seconds=300))
    assert _reason(late) == "RolloutHalted"
    assert late.status.failures[0].reason == "DeadlineExceeded"


def test_a_new_target_starts_again_from_the_first_wave() -> None:
    spec = _spec(waves=TWO_WAVES)
    halted = _plan(spec, "failed old old old old")
    fixed = FleetTarget(repository=TARGET.repository, revision="main", commit="c" * 40)
    result = plan(spec, 4, fixed, _members("failed old old old old"), halted.status, None, NOW)
    assert result.pin == ("m0",)
    assert result.status.failures == ()
    assert _reason(result) == "Rolling"


def test_absent_members_are_created_when_their_wave_starts() -> None:
    result = _plan(_spec(waves=TWO_WAVES), "- - - - -")
    assert result.create == (("m0", NEW),)
    after = _plan(_spec(waves=TWO_WAVES), "new - - - -")
    assert after.create == (("m1", NEW), ("m2", NEW))


def test_a_member_added_while_its_wave_waits_starts_from_the_stable_commit() -> None:
    old = DeploymentFleetStatus(target=TARGET, stable_commit=OLD)
    result = _plan(_spec(waves=TWO_WAVES), "pinned old old old -", old)
    assert result.create == (("m4", OLD),)


def test_a_member_removed_from_the_list_is_deleted_and_a_foreign_one_never() -> None:
    members = {**_members("new new"), "gone": _member("gone", "new")}
    result = plan(_spec(members=2, waves=TWO_WAVES), 1, TARGET, members, DeploymentFleetStatus(), None, NOW)
    assert result.delete == ("gone",)


def test_a_member_name_of_an_unowned_instance_stalls_naming_the_field() -> None:
    result = _plan(_spec(waves=TWO_WAVES), "old foreign old old old")
    assert result.pin == () and result.create == () and result.delete == ()
    stalled = result.status.condition("Stalled")
    assert stalled is not None and stalled.status == "True" and stalled.reason == "MemberNameTaken"
    assert stalled.message.startswith("spec.members[1].name")


@pytest.mark.parametrize(("waves", "field", "reason"), [
    ([{"name": "a", "selector": {"matchLabels": {"tier": "main"}}},
      {"name": "b", "selector": {"matchLabels": {"tier": "main"}}}], "spec.strategy.waves[1].selector",
     "OverlappingSelectors"),
    ([{"name": "a", "selector": {"matchLabels": {"tier": "nowhere"}}}], "spec.strategy.waves[0].selector",
     "WaveMatchesNothing"),
])
def test_bad_waves_stall_naming_the_field(waves: list[dict[str, Any]], field: str, reason: str) -> None:
    result = _plan(_spec(waves=waves), "old old old old old")
    stalled = result.status.condition("Stalled")
    assert stalled is not None and stalled.reason == reason and stalled.message.startswith(field)
    assert result.pin == ()


def test_duplicate_domains_stall_naming_the_member() -> None:
    spec = _spec(members=2).model_copy(update={"members": (
        _spec(members=2).members[0], _spec(members=2).members[1].model_copy(update={"domain": "m0.example.com"}))})
    result = _plan(spec, "old old")
    stalled = result.status.condition("Stalled")
    assert stalled is not None and stalled.reason == "DuplicateDomain"
    assert stalled.message.startswith("spec.members[1].domain")


def test_waves_take_members_in_order_and_an_empty_count_wave_is_done() -> None:
    waves = assign_waves(_spec(members=3, waves=[{"name": "a", "count": 2}, {"name": "b", "percentage": 100},
                                                 {"name": "c", "count": 5}]))
    assert [(wave.name, [m.name for m in wave.members]) for wave in waves] == [
        ("a", ["m0", "m1"]), ("b", ["m2"]), ("c", [])]
    result = _plan(_spec(members=3, waves=[{"name": "a", "count": 2}, {"name": "b", "percentage": 100},
                                           {"name": "c", "count": 5}]), "new new new")
    assert _reason(result) == "RolloutComplete"


def test_the_status_counts_and_kstatus_conditions() -> None:
    result = _plan(_spec(waves=TWO_WAVES), "new new pinned old old")
    status = result.status
    assert (status.members, status.updated, status.ready, status.observed_generation) == (5, 2, 4, 3)
    assert [(w.name, w.updated, w.pending) for w in status.waves] == [("canary", 1, 0), ("rest", 1, 2)]
    assert {c.type: c.status for c in status.conditions} == {"Ready": "False", "Reconciling": "True",
                                                               "Stalled": "False"}
    assert all(c.observed_generation == 3 for c in status.conditions)


def test_complete_records_the_stable_commit() -> None:
    result = _plan(_spec(waves=TWO_WAVES), "new new new new new")
    assert result.status.stable_commit == NEW
    assert [w.state for w in result.status.waves] == [WaveState.DONE, WaveState.DONE]
