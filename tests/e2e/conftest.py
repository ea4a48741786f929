"""End-to-end fixtures: one local world (local cloud, sandbox hosts, operator) per module; the helpers the
modules import are in ``e2e_support`` (a module of its own name: ``conftest`` is a different module per
directory, and which one ``import conftest`` finds depends on what pytest collected first)."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator

import pytest
from e2e_support import module_namespaces, module_prefix

from o4o_operator.testing import ControlPlane
from o4o_operator.testing.world import LocalWorld

_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def world(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[LocalWorld]:
    """The operator watches only this module's namespaces: other modules leave DIs behind (no garbage
    collection), and their servers were in clouds that are gone (see ``e2e_support.module_prefix``)."""
    with LocalWorld(control_plane, namespaces=module_namespaces(request.module.__name__)) as local_world:
        yield local_world


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"{module_prefix(request.module.__name__)}{next(_numbers)}-{os.getpid() % 10000}-{name}"[:63].strip("-")
    control_plane.create_namespace(name)
    return name
