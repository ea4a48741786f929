"""Shared fixtures: one real control plane per test session (per xdist worker), a namespace per test.

``make test`` runs the suite on several xdist workers; the scheduler below hands out whole modules (so a
module's world or build is made once, on one worker), except the modules that boot Debian hosts, which go
together to one worker, since one world at a time owns the machine's bridge and addresses. They are
scheduled first, being the longest, and their worker gets the CPU first (``critical_path.py``); the rest follow,
longest known first.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cpu_accounting
import critical_path
from o4o_operator.testing import ControlPlane

REPO = Path(__file__).resolve().parent.parent
CRD_PATH = REPO / "crds" / "deploymentinstances.deploy.o4o.io.yaml"
FLEET_CRD_PATH = REPO / "crds" / "deploymentfleets.deploy.o4o.io.yaml"
_namespace_numbers = itertools.count(1)
BOOTED_HOSTS_GROUP = "booted-hosts"
BOOTED_HOST_DIRECTORIES = ("real", "realhosts")
# Scheduled before the rest: the modules that take minutes (measured; see the README's suite figures).
LONG_FIRST = ("e2e/test_fleet_waves.py", "reliability/test_crashes.py", "reliability/test_faults.py",
              "reliability/test_bad_input.py", "reliability/test_deletion.py", "e2e/test_what_it_made.py",
              "reliability/test_secrets.py", "e2e/test_tenancy.py", "fixture/test_o4o_fixture_build.py",
              "e2e/test_lifecycle.py", "delivery/test_image.py", "e2e/test_failover.py")


def load_group(relative: str) -> str:
    """The unit of work a test belongs to, given its file's path relative to tests/: the booted-host
    group, else its module."""
    if relative.split("/", 1)[0] in BOOTED_HOST_DIRECTORIES:
        return BOOTED_HOSTS_GROUP
    return relative


def _schedule_rank(relative: str) -> int:
    if load_group(relative) == BOOTED_HOSTS_GROUP:
        return 0
    if relative in LONG_FIRST:
        return 1 + LONG_FIRST.index(relative)
    return 1 + len(LONG_FIRST)


def pytest_configure(config: pytest.Config) -> None:
    cpu_accounting.register(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest work first; the order within a file is kept (the sort is stable)."""
    tests_dir = Path(__file__).resolve().parent
    items.sort(key=lambda item: _schedule_rank(item.path.resolve().relative_to(tests_dir).as_posix()))


def pytest_runtest_setup(item: pytest.Item) -> None:
    tests_dir = Path(__file__).resolve().parent
    if load_group(item.path.resolve().relative_to(tests_dir).as_posix()) == BOOTED_HOSTS_GROUP:
        critical_path.put_first()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's LoadScopeScheduling, scoped by :func:`load_group`: one module, or every booted-host
    module, is one unit of work for one worker. (Its ``xdist_group`` marks are not honoured under pytest 9:
    the node id it rewrites is no longer the one reported, so the grouping is done here instead.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return load_group(nodeid.split("::", 1)[0].removeprefix("tests/"))

    return ModuleScheduling(config, log)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver with the DeploymentInstance and DeploymentFleet CRDs installed."""
    with ControlPlane() as plane:
        plane.install_crds([CRD_PATH, FLEET_CRD_PATH])
        yield plane


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> str:
    """A fresh namespace. Namespaces never finish deleting here (no controller-manager), so none is reused."""
    base = request.node.name.lower().replace("_", "-")
    name = "".join(ch for ch in base if ch.isalnum() or ch == "-")[:40].strip("-")
    name = f"t{next(_namespace_numbers)}-{os.getpid() % 10000}-{name}".strip("-")[:63]
    control_plane.create_namespace(name)
    return name
