"""Shared fixtures: one real control plane per test session, a namespace per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from o4o_operator.testing import ControlPlane

REPO = Path(__file__).resolve().parent.parent
CRD_PATH = REPO / "crds" / "deploymentinstances.deploy.o4o.io.yaml"
_namespace_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver with the DeploymentInstance CRD installed."""
    with ControlPlane() as plane:
        plane.install_crds([CRD_PATH])
        yield plane


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> str:
    """A fresh namespace. Namespaces never finish deleting here (no controller-manager), so none is reused."""
    base = request.node.name.lower().replace("_", "-")
    name = "".join(ch for ch in base if ch.isalnum() or ch == "-")[:40].strip("-")
    name = f"t{next(_namespace_numbers)}-{os.getpid() % 10000}-{name}".strip("-")[:63]
    control_plane.create_namespace(name)
    return name
