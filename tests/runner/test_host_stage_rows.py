"""Host stages from their row of the stage table, one case per row: given a spec, a status and what the
script reports, expect this script (name and timeout), these uploads, this status and this message."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest
from stage_fakes import (
    FINGERPRINT,
    FakeKube,
    RecordingConnector,
    RecordingSession,
    make_context,
    make_runtime,
    spec_body,
    static_resolver,
)

from o4o_operator import errors
from o4o_operator.models import (
    CertificateStatus,
    DatabaseStatus,
    DeploymentInstanceStatus,
    HostKeySource,
    ServerStatus,
    SourceStatus,
)
from o4o_operator.pipeline.stages import STAGES, STAGES_BY_NAME, ApiStep, StageKind, StageName
from o4o_operator.rendering import SCRIPT_NAMES, render_script
from o4o_operator.runner import apps_step, host_stages

REPOSITORY = "https://example.com/o4o/platform.git"
COMMIT = "c" * 40
NEW = "d" * 40
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
SERVER = ServerStatus(name="shop-host.test", ip_address="198.51.100.5", host_key_fingerprint=FINGERPRINT,
                      host_key_fingerprints=(FINGERPRINT,), host_key_source=HostKeySource.TRUSTED_ON_FIRST_USE)
FETCHED = DeploymentInstanceStatus(server=SERVER, source=SourceStatus(repository=REPOSITORY, revision="main",
                                                                      commit=COMMIT))


ADMIN_ENV = {"O4O_ADMIN_PASSWORD": "n0t-rendered-Passw0rd"}
ADMIN_PUBLIC_ENV = {"O4O_ADMIN_EMAIL": "admin@shop.example.com"}


@pytest.fixture(autouse=True)
def admin_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stands in for the operator-owned Secret ``<name>-database`` (runner.generated_secret)."""
    async def credentials(instance: Any) -> tuple[dict[str, str], dict[str, str]]:
        return dict(ADMIN_ENV), dict(ADMIN_PUBLIC_ENV)
    monkeypatch.setattr(apps_step, "admin_credentials", credentials)


@pytest.fixture(autouse=True)
def api_step_echoes_the_script(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API steps (tests/runner/test_apps_step.py and test_health_gate.py run the real ones) here
    report what the script reported, so these rows are about mapping results into status and message."""
    async def echo(instance: Any, host: Any, results: Mapping[str, str]) -> Mapping[str, str]:
        return dict(results)
    monkeypatch.setattr(host_stages, "API_STEPS", dict.fromkeys(ApiStep, echo))


DB_ENV = {"O4O_DB_PASSWORD": "n0t-rendered-Db-Passw0rd"}
DB_PUBLIC_ENV = {"O4O_DB_MODE": "local", "O4O_DB_NAME": "o4o_team_shop", "O4O_DB_USER": "o4o_team_shop"}


@pytest.fixture(autouse=True)
def database_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stands in for what the database's Secret gives a script (runner.generated_secret.database_script_env)."""
    async def script_env(instance: Any) -> tuple[dict[str, str], dict[str, str]]:
        return dict(DB_ENV), dict(DB_PUBLIC_ENV)
    monkeypatch.setattr(host_stages, "database_script_env", script_env)


@dataclasses.dataclass(frozen=True)
class Row:
    case: str
    stage: StageName
    reported: dict[str, str]
    message: str
    changed: dict[str, Any]
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    status: DeploymentInstanceStatus = FETCHED
    uploads: tuple[str, ...] = ()
    secrets: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    public_env: dict[str, str] = dataclasses.field(default_factory=dict)


ROWS = [
    Row("runtime installs", StageName.RUNTIME, {}, "Installed Node.js, pnpm, nginx, PM2 and certbot", {}),
    Row("source records what it resolved", StageName.SOURCE, {"commit": NEW},
        f"Fetched main at commit {NEW[:12]}", {"source": SourceStatus(repository=REPOSITORY, revision="main",
                                                                       commit=NEW)}),
    Row("source passes the git token as env only", StageName.SOURCE, {"commit": NEW},
        f"Fetched main at commit {NEW[:12]}", {"source": SourceStatus(repository=REPOSITORY, revision="main",
                                                                       commit=NEW)},
        spec={"source": {"repository": REPOSITORY, "revision": "main",
                         "credentialsSecretRef": {"name": "git", "key": "token"}}},
        secrets={"git": {"token": "s3cr3t-token"}}, env={"O4O_GIT_TOKEN": "s3cr3t-token"}),
    Row("build-site names the recorded commit", StageName.BUILD_SITE, {},
        f"Built the main site for commit {COMMIT[:12]}", {}),
    Row("build-api names the recorded commit", StageName.BUILD_API, {},
        f"Built the API server for commit {COMMIT[:12]}", {}),
    Row("configure uploads, then serves the release", StageName.CONFIGURE, {"release": NEW},
        f"Configured nginx, PM2 and .env; serving release {NEW[:12]}", {},
        uploads=(".env", "ecosystem.config.js", "o4o-team.shop.http.conf", "o4o-team.shop.https.conf"),
        env=DB_ENV, public_env=DB_PUBLIC_ENV),
    Row("configure without a reported release names the commit", StageName.CONFIGURE, {},
        f"Configured nginx, PM2 and .env; serving release {COMMIT[:12]}", {},
        uploads=(".env", "ecosystem.config.js", "o4o-team.shop.http.conf", "o4o-team.shop.https.conf"),
        env=DB_ENV, public_env=DB_PUBLIC_ENV),
    Row("configure records how the database was born", StageName.CONFIGURE,
        {"release": NEW, "bootstrap": "command", "bootstrappedAt": "2026-12-06T19:00:00Z", "bootstrapCommit": NEW},
        f"Configured nginx, PM2 and .env; serving release {NEW[:12]}",
        {"database": DatabaseStatus(bootstrapped_at="2026-12-06T19:00:00Z", bootstrap="command",
                                    bootstrap_commit=NEW)},
        uploads=(".env", "ecosystem.config.js", "o4o-team.shop.http.conf", "o4o-team.shop.https.conf"),
        env=DB_ENV, public_env=DB_PUBLIC_ENV),
    Row("tls records the certificate's expiry, issuer and ACME server", StageName.TLS,
        {"notAfter": "2026-03-01T00:00:00Z", "issuer": "C = US, O = Let's Encrypt, CN = E6", "server": STAGING},
        f"Certificate for shop.example.com from {STAGING} valid until 2026-03-01T00:00:00Z",
        {"certificate": CertificateStatus(not_after="2026-03-01T00:00:00Z",
                                          issuer="C = US, O = Let's Encrypt, CN = E6", server=STAGING)},
        spec={"tls": {"email": "ops@example.com", "server": STAGING}}),
    Row("tls without an expiry says unknown and records nothing", StageName.TLS, {},
        "Certificate for shop.example.com from unknown valid until unknown", {}),
    Row("apps added: the instance's report is recorded", StageName.APPS,
        {"installed": "forum-core", "added": "forum-core", "removed": ""}, "Apps up to date (installed forum-core)",
        {"installed_apps": ("forum-core",)}, spec={"apps": ["forum-core"]}, env=ADMIN_ENV, public_env=ADMIN_PUBLIC_ENV),
    Row("apps removed", StageName.APPS, {"installed": "", "added": "", "removed": "forum-core"},
        "Apps up to date (removed forum-core)", {"installed_apps": ()},
        status=FETCHED.model_copy(update={"installed_apps": ("forum-core",)}), env=ADMIN_ENV,
        public_env=ADMIN_PUBLIC_ENV),
    Row("apps unchanged; apps active by other hands are recorded too", StageName.APPS,
        {"installed": "forum-core,auth-core", "added": "", "removed": ""}, "Apps up to date (no change)",
        {"installed_apps": ("auth-core", "forum-core")}, spec={"apps": ["forum-core"]}, env=ADMIN_ENV,
        public_env=ADMIN_PUBLIC_ENV),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.case for row in ROWS])
async def test_a_host_stage_runs_its_row(row: Row) -> None:
    session = RecordingSession(row.reported)
    kube = FakeKube({"ssh-key": {"ssh-privatekey": "not a real key"}, **row.secrets})
    driver = make_context(make_runtime(kube, RecordingConnector(session), static_resolver({})),
                          spec_body(**row.spec), row.status)
    stage = STAGES_BY_NAME[row.stage]

    message = await driver.run(row.stage)

    assert message == row.message
    assert len(session.scripts) == 1
    assert stage.script is not None
    assert session.scripts[0] == render_script(stage.script, _host_for(driver, row))
    assert session.timeouts == [stage.script_timeout_seconds]
    assert session.envs == [row.env]  # redacted from the output
    assert session.public_envs == [row.public_env]  # not redacted: never a secret value
    for value in row.env.values():
        assert value not in session.scripts[0]  # a Secret travels as env, never in the script
    assert tuple(path.rsplit("/", 1)[-1] for path in session.uploads) == row.uploads
    assert driver.status == row.status.model_copy(update=row.changed)
    assert driver.checkpoints == []  # host stages need no extra write


def _host_for(driver: Any, row: Row) -> Any:
    host = driver.instance.host_context()
    if row.stage is StageName.SOURCE:
        return dataclasses.replace(host, commit=row.status.source.pinned_commit(driver.instance.spec.source))
    return host


async def test_source_that_reports_no_commit_fails_transiently_and_records_nothing() -> None:
    driver = make_context(make_runtime(FakeKube(), RecordingConnector(RecordingSession({})), static_resolver({})),
                          spec_body(), FETCHED)

    with pytest.raises(errors.TransientError) as caught:
        await driver.run(StageName.SOURCE)

    assert caught.value.reason == "NoCommit"
    assert driver.status == FETCHED


async def test_apps_that_report_no_active_apps_fail_transiently_and_record_nothing() -> None:
    driver = make_context(make_runtime(FakeKube({"ssh-key": {"ssh-privatekey": "k"}}),
                                       RecordingConnector(RecordingSession({})), static_resolver({})),
                          spec_body(apps=["forum-core"]), FETCHED)

    with pytest.raises(errors.TransientError) as caught:
        await driver.run(StageName.APPS)

    assert caught.value.reason == "NoAppsReport"
    assert driver.status == FETCHED


# ---- the table itself -----------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES, ids=[stage.name.value for stage in STAGES])
def test_every_row_is_complete(stage: Any) -> None:
    if stage.kind is StageKind.CLOUD:
        assert stage.script is None and stage.name in (StageName.PROVISION, StageName.DNS)
        return
    assert stage.script in SCRIPT_NAMES
    assert stage.message
    # One timeout: the script is stopped (and reports its output) before the stage's own timeout fires.
    assert 0 < stage.script_timeout_seconds < stage.timeout_seconds
