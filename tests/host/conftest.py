"""Fixtures for tests against a real sshd: a SandboxHost per test, a connector, an open session."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator

import pytest

from o4o_operator.providers.ssh import SshConnector, SshSession
from o4o_operator.testing import SandboxHost

if not shutil.which("sshd") and not shutil.which("/usr/sbin/sshd"):
    pytest.skip("OpenSSH server is not installed (make debian-packages)", allow_module_level=True)


@pytest.fixture
def sandbox() -> Iterator[SandboxHost]:
    with SandboxHost() as host:
        yield host


@pytest.fixture
async def connector() -> AsyncIterator[SshConnector]:
    connector = SshConnector(max_sessions=4, honour_sandbox_root=True)
    yield connector
    await connector.close_all()


@pytest.fixture
async def session(sandbox: SandboxHost, connector: SshConnector) -> SshSession:
    return await connector.connect(sandbox.address, sandbox.port, sandbox.user, sandbox.private_key_pem,
                                   sandbox.host_key_fingerprint, timeout=30)
