"""Fixtures for the test world's ACME CA, DNS and mirrors: one Pebble + challtestsrv per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from o4o_operator.testing.acme import AcmeWorld


@pytest.fixture(scope="module")
def acme_world() -> Iterator[AcmeWorld]:
    with AcmeWorld() as world:
        yield world

