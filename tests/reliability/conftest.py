"""Reliability fixtures: each test gets worlds of its own, cleaned up even when it fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from reliability_support import WorldFactory, cleanup_namespace, start_world

from o4o_operator.testing import ControlPlane
from o4o_operator.testing.world import LocalWorld


@pytest.fixture
def worlds(control_plane: ControlPlane) -> Iterator[WorldFactory]:
    """``worlds(namespace, seed=..., operator_env=..., kubeconfig=...)`` starts a world for one namespace."""
    started: list[tuple[LocalWorld, str]] = []

    def start(namespace: str, **options: Any) -> LocalWorld:
        world = start_world(control_plane, namespace, **options)
        started.append((world, namespace))
        return world

    yield start
    for world, namespace in started:
        try:
            cleanup_namespace(world, namespace)
        finally:
            world.stop()
