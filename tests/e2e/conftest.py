"""End-to-end fixtures: one local world (local cloud, sandbox hosts, operator) per module; the helpers the
modules import are in ``e2e_support`` (a module of its own name: ``conftest`` is a different module per
directory, and which one ``import conftest`` finds depends on what pytest collected first)."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator

import pytest
from e2e_support import PREFIX

from o4o_operator.testing import ControlPlane
from o4o_operator.testing.world import LocalWorld

_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def world(control_plane: ControlPlane) -> Iterator[LocalWorld]:
    """The operator watches only e2e namespaces: other modules leave DIs behind (no garbage collection)."""
    with LocalWorld(control_plane, namespaces=(f"{PREFIX}*",)) as local_world:
        yield local_world


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"{PREFIX}{next(_numbers)}-{os.getpid() % 10000}-{name}"[:63].strip("-")
    control_plane.create_namespace(name)
    return name
