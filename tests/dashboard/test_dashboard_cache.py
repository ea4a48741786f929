"""The cache: lists and watch events in, rows and a coalesced change feed out, staleness."""

from __future__ import annotations

import asyncio
import copy
import datetime

from dashboard_samples import body, spec, state_bodies, status_ready

from o4o_dashboard.cache import EVENTS_PER_INSTANCE, InstanceCache
from o4o_dashboard.metrics import DashboardMetrics

T0 = datetime.datetime(2025, 3, 1, tzinfo=datetime.UTC)


def _event(name: str, instance: str, minute: int) -> dict[str, object]:
    at = f"2025-03-01T10:{minute:02d}:00Z"
    return {"metadata": {"name": name, "namespace": "shop"}, "lastTimestamp": at, "reason": "Progress",
            "involvedObject": {"kind": "DeploymentInstance", "namespace": "shop", "name": instance}}


def test_trims_what_is_never_shown() -> None:
    cache = InstanceCache()
    cache.replace_instances(state_bodies())
    cached = cache.get("shop", "ready")
    assert cached is not None
    assert "managedFields" not in cached.body["metadata"]
    assert "annotations" not in cached.body["metadata"]
    assert cached.row.phase == "Ready"


async def test_relist_replaces_contents_and_publishes_only_real_changes() -> None:
    cache = InstanceCache()
    cache.replace_instances(state_bodies())
    subscription = cache.subscribe()
    changed = copy.deepcopy(state_bodies())
    changed[0]["status"] = status_ready()  # "pending" becomes Ready
    del changed[1]  # "building" is gone
    for item in changed:
        item["metadata"]["managedFields"] = [{"manager": "other"}]  # not shown, so not a change
    cache.replace_instances(changed)
    batch = await subscription.next_batch(wait_seconds=0)
    assert sorted(change.key for change in batch) == ["shop/building", "shop/pending"]
    assert cache.get("shop", "building") is None
    assert len(cache) == 4 and len(cache.rows()) == 4


async def test_watch_events_update_rows_and_coalesce_per_key() -> None:
    cache = InstanceCache()
    subscription = cache.subscribe()
    item = body("a", "shop", spec("a.example.com"))
    cache.apply_instance("ADDED", item)
    cache.apply_instance("MODIFIED", {**item, "status": status_ready()})
    batch = await subscription.next_batch(wait_seconds=0)
    assert [(c.kind, c.key, c.revision) for c in batch] == [("instance", "shop/a", 2)]
    assert cache.rows()[0].phase == "Ready"
    cache.apply_instance("DELETED", item)
    assert cache.rows() == [] and cache.revision == 3


async def test_an_idle_subscription_returns_empty_after_the_wait_and_at_once_when_closed() -> None:
    cache = InstanceCache()
    subscription = cache.subscribe()
    assert await subscription.next_batch(wait_seconds=0.01) == []
    cache.close_subscriptions()
    assert await subscription.next_batch(wait_seconds=3600) == []
    assert subscription.closed


def test_events_are_grouped_per_instance_and_capped() -> None:
    cache = InstanceCache()
    cache.replace_events([_event(f"e{n}", "ready", n) for n in range(EVENTS_PER_INSTANCE + 5)])
    kept = cache.events_for("shop", "ready")
    assert len(kept) == EVENTS_PER_INSTANCE
    assert min(e.key for e in kept) == "shop/e10"  # the five oldest went
    cache.apply_event("DELETED", _event("e24", "ready", 24))
    assert cache.event_count == EVENTS_PER_INSTANCE - 1
    cache.apply_event("ADDED", {"metadata": {"name": "orphan", "namespace": "shop"}})  # no involvedObject
    assert cache.event_count == EVENTS_PER_INSTANCE - 1


async def test_staleness_starts_at_the_first_loss_and_ends_when_all_sources_are_back() -> None:
    moments = iter([T0, T0 + datetime.timedelta(seconds=5)])
    metrics = DashboardMetrics()
    cache = InstanceCache(metrics, clock=lambda: next(moments))
    subscription = cache.subscribe()
    cache.mark_unreachable("deploymentinstances")
    cache.mark_unreachable("deploymentinstances")  # still the first loss
    cache.mark_unreachable("events")
    assert cache.stale and cache.stale_since == T0
    assert metrics.registry.get_sample_value("o4o_dashboard_stale") == 1
    cache.mark_reachable("deploymentinstances")
    assert cache.stale
    cache.mark_reachable("events")
    assert not cache.stale and cache.stale_since is None
    assert [c.kind for c in await subscription.next_batch(wait_seconds=0)] == ["status"]


async def test_wait_until_wakes_on_a_change() -> None:
    cache = InstanceCache()
    checks: list[int] = []

    def has_one(c: InstanceCache) -> bool:
        checks.append(len(c))
        return len(c) == 1

    waiter = asyncio.create_task(cache.wait_until(has_one))
    # Runs after the waiter's first step (the loop runs callbacks in order), so it must wake up.
    added = body("a", "shop", spec("a.example.com"))
    asyncio.get_running_loop().call_soon(cache.apply_instance, "ADDED", added)
    await asyncio.wait_for(waiter, 5)
    assert checks == [0, 1]
