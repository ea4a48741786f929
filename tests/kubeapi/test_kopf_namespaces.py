"""The namespace Kopf would miss: created between its observer's list and its watcher's list."""

from __future__ import annotations

import pytest
from kopf._cogs.structs import bodies, references
from kopf._core.reactor import observation

from o4o_operator import kopf_namespaces

PATTERNS: list[references.NamespacePattern] = ["e2e-*"]


def listed(name: str) -> bodies.RawEvent:
    """An event of the watcher's own initial list, as Kopf's continuous_watch yields it."""
    return bodies.RawEvent(type=None, object={"metadata": {"name": name}})


async def kopf_startup(created_between_the_lists: str) -> references.Insights:
    """Kopf's observer lists (the namespace is not there yet), then its watcher lists again (it is)."""
    insights = references.Insights()
    observation.revise_namespaces(raw_bodies=[{"metadata": {"name": "e2e-first"}}],
                                  insights=insights, namespaces=PATTERNS)
    for name in ("e2e-first", created_between_the_lists):
        await observation.process_discovered_namespace_event(raw_event=listed(name), namespaces=PATTERNS,
                                                             insights=insights)
    return insights


async def test_kopf_alone_misses_the_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observation, "process_discovered_namespace_event", kopf_namespaces._KOPF_PROCESSOR)
    insights = await kopf_startup("e2e-late")
    assert insights.namespaces == {"e2e-first"}  # the defect this module exists for


async def test_with_the_fix_the_namespace_is_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observation, "process_discovered_namespace_event", kopf_namespaces._KOPF_PROCESSOR)
    kopf_namespaces.install()
    kopf_namespaces.install()  # twice is once
    insights = await kopf_startup("e2e-late")
    assert insights.namespaces == {"e2e-first", "e2e-late"}


async def test_the_orchestrator_is_woken_only_by_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observation, "process_discovered_namespace_event", kopf_namespaces._KOPF_PROCESSOR)
    kopf_namespaces.install()
    insights = references.Insights()
    notified: list[str] = []
    monkeypatch.setattr(insights.revised, "notify_all",
                        lambda: notified.append(",".join(sorted(str(ns) for ns in insights.namespaces))))
    for name in ("e2e-a", "e2e-a", "default", "e2e-b"):
        await observation.process_discovered_namespace_event(raw_event=listed(name), namespaces=PATTERNS,
                                                             insights=insights)
    assert notified == ["e2e-a", "e2e-a,e2e-b"]


async def test_a_namespace_being_deleted_is_dropped_from_the_listing_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observation, "process_discovered_namespace_event", kopf_namespaces._KOPF_PROCESSOR)
    kopf_namespaces.install()
    insights = references.Insights(namespaces={references.NamespaceName("e2e-gone")})
    deleted = {"metadata": {"name": "e2e-gone", "deletionTimestamp": "2026-12-06T00:00:00Z"},
               "status": {"conditions": [{"type": "NamespaceDeletionContentFailure", "status": "False"}]}}
    await observation.process_discovered_namespace_event(raw_event=bodies.RawEvent(type=None, object=deleted),  # type: ignore[typeddict-item]
                                                         namespaces=PATTERNS, insights=insights)
    assert insights.namespaces == set()


def test_it_refuses_a_kopf_of_another_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    async def reshaped(**_: object) -> None:
        """A future Kopf whose processor no longer drops listings."""

    monkeypatch.setattr(kopf_namespaces, "_KOPF_PROCESSOR", reshaped)
    monkeypatch.setattr(observation, "process_discovered_namespace_event", reshaped)
    with pytest.raises(kopf_namespaces.KopfShapeChanged):
        kopf_namespaces.install()
