"""The wave-order rule the fleet tests check on their recorded member states (testing/fleet_watch.py), on
hand-made records: it must catch a second wave pinned before the first member was updated."""

from __future__ import annotations

from o4o_operator.testing.fleet_watch import order_violations

OLD, NEW = "a" * 40, "b" * 40


def _state(name: str, revision: str, commit: str, *, generation: int = 2, observed: int = 2,
           ready: bool = True) -> dict[str, str]:
    return {"name": name, "revision": revision, "commit": commit, "generation": str(generation),
            "observed": str(observed), "ready": "True" if ready else "False", "seen": "0.0"}


def test_the_second_wave_pinned_after_the_first_member_is_updated_is_in_order() -> None:
    states = [_state("a", OLD, OLD), _state("b", OLD, OLD), _state("a", NEW, OLD, observed=1),
              _state("a", NEW, NEW, ready=False), _state("a", NEW, NEW), _state("b", NEW, OLD, observed=1)]
    assert order_violations(states, NEW, [["a"], ["b"]]) == []


def test_a_stale_ready_of_the_old_commit_does_not_release_the_second_wave() -> None:
    """Pinned and Ready, but Ready about the previous generation and still serving the old commit."""
    states = [_state("a", NEW, OLD, observed=1), _state("b", NEW, OLD, observed=1)]
    found = order_violations(states, NEW, [["a"], ["b"]])
    assert len(found) == 1 and found[0].startswith("b (wave 1) pinned to bbbbbbbb")


def test_a_second_wave_pinned_before_the_first_member_was_seen_at_all_is_out_of_order() -> None:
    assert len(order_violations([_state("b", NEW, OLD, observed=1)], NEW, [["a"], ["b"]])) == 1
