"""Fixtures for the real tier: a RealWorld per module (booted Debian hosts, Pebble, DNS fed from the cloud).

At most two booted hosts at once (the world's fleet waits for a place). The operator watches only ``real-*``
namespaces, so DIs other modules leave behind on the shared control plane are not its business. Without root
or the Debian tools the tier skips, naming what is missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from real_support import make_namespace, module_prefix, skip_without_root_or_tools

from o4o_operator.testing import ControlPlane
from o4o_operator.testing.real_world import RealWorld


@pytest.fixture(scope="module")
def real_world(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[RealWorld]:
    """The module's world; its operator watches only the module's namespaces (DIs of earlier modules stay)."""
    skip_without_root_or_tools()
    started = time.monotonic()
    with RealWorld(control_plane, namespaces=(f"{module_prefix(request)}*",), drift_seconds=20) as world:
        rootfs = world.host_world.rootfs
        assert rootfs is not None
        how = "built now" if rootfs.built_now else "cached"
        print(f"\nreal world up in {time.monotonic() - started:.1f} s (rootfs {how}: "
              f"{rootfs.build_seconds:.0f} s to build, {rootfs.size_bytes / 2**20:.0f} MiB)")
        yield world


@pytest.fixture(scope="module")
def real_namespace(real_world: RealWorld, request: pytest.FixtureRequest) -> str:
    """One namespace per module (the tests of a module share one Ready instance); the user's env Secret sets
    JWT_SECRET, as a user who keeps their own would."""
    return make_namespace(real_world, request, {"JWT_SECRET": "real-tier-jwt-secret", "NODE_ENV": "production"})
