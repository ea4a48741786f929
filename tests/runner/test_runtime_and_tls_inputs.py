"""What the runner hands the host scripts: the Node.js mirror setting, spec.tls's CA bundles, the health probe."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest
from stage_fakes import (
    FakeKube,
    RecordingConnector,
    RecordingSession,
    make_context,
    make_runtime,
    spec_body,
    static_resolver,
)

from o4o_operator.errors import InvalidSpecError
from o4o_operator.models import DeploymentInstanceStatus, ServerStatus
from o4o_operator.pipeline.stages import StageName
from o4o_operator.runner import drift
from o4o_operator.runner.settings import OperatorSettings
from o4o_operator.testing.pki import make_pki


class UploadRecordingSession(RecordingSession):
    def __init__(self) -> None:
        super().__init__({"notAfter": "2027-01-01T00:00:00Z"})
        self.uploaded: dict[str, bytes] = {}

    async def upload(self, path: str, content: bytes, *, mode: int, owner: str | None = None) -> None:
        self.uploaded[path] = content


NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
STATUS = DeploymentInstanceStatus(server=ServerStatus(name="shop-host.test", ip_address="198.51.100.5"))


def test_the_node_mirror_setting_defaults_to_nodejs_org_and_loses_a_trailing_slash() -> None:
    assert OperatorSettings.from_environment({}).node_mirror == "https://nodejs.org/dist"
    mirror = OperatorSettings.from_environment({"O4O_NODE_MIRROR": "https://mirror.corp.example/nodejs/"})
    assert mirror.node_mirror == "https://mirror.corp.example/nodejs"


async def test_the_node_mirror_setting_reaches_the_runtime_script() -> None:
    session = RecordingSession({})
    runtime = make_runtime(FakeKube(), RecordingConnector(session), static_resolver({}))
    runtime.settings = OperatorSettings.from_environment({"O4O_NODE_MIRROR": "https://mirror.corp.example/nodejs"})
    await make_context(runtime, spec_body(), STATUS).run(StageName.RUNTIME)
    assert "\nNODE_MIRROR=https://mirror.corp.example/nodejs\n" in session.scripts[0]
    assert "\nNODE_VERSION=22.18.0\n" in session.scripts[0]


async def test_a_node_mirror_that_is_no_url_names_the_setting() -> None:
    runtime = make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), static_resolver({}))
    runtime.settings = dataclasses.replace(runtime.settings, node_mirror="nodejs.org/dist; reboot")
    with pytest.raises(InvalidSpecError) as caught:
        await make_context(runtime, spec_body(), STATUS).run(StageName.RUNTIME)
    assert caught.value.field == "O4O_NODE_MIRROR"


async def test_the_tls_stage_uploads_both_bundles_and_points_certbot_at_the_acme_one(tmp_path: Path) -> None:
    acme_roots = make_pki(tmp_path / "acme").ca_cert.read_text()
    issued_roots = make_pki(tmp_path / "issued").ca_cert.read_text()
    session = UploadRecordingSession()
    runtime = make_runtime(FakeKube(), RecordingConnector(session), static_resolver({}))
    spec = spec_body(tls={"email": "ops@example.com", "server": "https://acme.corp.example/directory",
                          "acmeCABundle": acme_roots, "certificateCABundle": issued_roots})
    await make_context(runtime, spec, STATUS).run(StageName.TLS)
    assert session.uploaded == {"/var/lib/o4o/instances/team.shop/tls/acme-ca.pem": acme_roots.encode(),
                               "/var/lib/o4o/instances/team.shop/tls/certificate-ca.pem": issued_roots.encode()}
    assert '\nACME_CA="$R"/var/lib/o4o/instances/team.shop/tls/acme-ca.pem\n' in session.scripts[0]


async def test_without_bundles_nothing_is_uploaded_and_the_system_roots_verify() -> None:
    session = UploadRecordingSession()
    runtime = make_runtime(FakeKube(), RecordingConnector(session), static_resolver({}))
    ctx = make_context(runtime, spec_body(), STATUS)
    await ctx.run(StageName.TLS)
    assert session.uploaded == {}
    assert '\nACME_CA=""\n' in session.scripts[0]
    assert await drift._health_problem(ctx.instance, NOW) is None
    assert '\nHEALTH_CA=""\n' in session.scripts[1]


async def test_the_drift_probe_checks_the_site_and_the_api_against_the_certificate_roots(tmp_path: Path) -> None:
    issued_roots = make_pki(tmp_path).ca_cert.read_text()
    session = RecordingSession({"health": "ok"})
    runtime = make_runtime(FakeKube(), RecordingConnector(session), static_resolver({}))
    spec = spec_body(tls={"email": "ops@example.com", "certificateCABundle": issued_roots})
    assert await drift._health_problem(make_context(runtime, spec, STATUS).instance, NOW) is None
    (script,) = session.scripts
    assert "\nHEALTH_PATHS=(/ /api/health)\n" in script
    assert '\nHEALTH_CA="$R"/var/lib/o4o/instances/team.shop/tls/certificate-ca.pem\n' in script
    assert "curl -f" not in script and "--location" not in script
