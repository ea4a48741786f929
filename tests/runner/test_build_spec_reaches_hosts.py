"""spec.build from the DeploymentInstance to the host: the scripts carry it, and changing it re-runs its stages."""

from __future__ import annotations

from typing import Any

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

from o4o_operator.models import (
    DeploymentInstanceSpec,
    DeploymentInstanceStatus,
    HostKeySource,
    ServerStatus,
    SourceStatus,
)
from o4o_operator.pipeline.facts import Facts, inputs_hash
from o4o_operator.pipeline.stages import STAGES_BY_NAME, StageName

COMMIT = "a" * 40
FORK = {"site": {"package": "@acme/web", "outputDir": "web/dist"},
        "api": {"package": "acme-api", "directory": "server", "bundleScript": "", "entryPoint": "out/main.js"}}


async def test_the_build_scripts_carry_spec_build() -> None:
    session = RecordingSession({})
    kube = FakeKube({"ssh-key": {"ssh-privatekey": "not a real key"}})
    status = DeploymentInstanceStatus(
        server=ServerStatus(name="shop-host.test", ip_address="198.51.100.5", host_key_fingerprint=FINGERPRINT,
                            host_key_fingerprints=(FINGERPRINT,), host_key_source=HostKeySource.TRUSTED_ON_FIRST_USE),
        source=SourceStatus(repository="https://example.com/o4o/platform.git", revision="main", commit=COMMIT))
    driver = make_context(make_runtime(kube, RecordingConnector(session), static_resolver({})),
                          spec_body(build=FORK), status)

    await driver.run(StageName.BUILD_SITE)
    await driver.run(StageName.BUILD_API)

    site, api = session.scripts
    assert "\nSITE_PACKAGE=@acme/web\n" in site and "\nOUTPUT=web/dist/index.html\n" in site
    assert "\nAPI_PACKAGE=acme-api\n" in api and "\nOUTPUT=server/out/main.js\n" in api
    assert "API_BUNDLE_SCRIPT" not in api
    host = driver.instance.host_context()
    assert host.api_cwd == f"{host.current_link}/server"


def _hashes(**build: Any) -> dict[StageName, str]:
    body = DeploymentInstanceSpec.model_validate(spec_body(build=build)).to_body()
    facts = Facts(server_address="198.51.100.5", commit=COMMIT)
    return {name: inputs_hash(STAGES_BY_NAME[name], body, facts)
            for name in (StageName.BUILD_SITE, StageName.BUILD_API, StageName.CONFIGURE, StageName.TLS,
                         StageName.APPS)}


def test_a_changed_build_spec_re_runs_exactly_the_stages_it_feeds() -> None:
    before = _hashes()
    changed_site = _hashes(site={"env": {"VITE_BRAND": "Spring"}})
    assert [n for n in before if before[n] != changed_site[n]] == [StageName.BUILD_SITE]
    changed_script = _hashes(api={"bundleScript": "bundle"})
    assert [n for n in before if before[n] != changed_script[n]] == [StageName.BUILD_API]
    changed_entry = _hashes(api={"entryPoint": "out/main.js"})
    assert [n for n in before if before[n] != changed_entry[n]] == [StageName.BUILD_API, StageName.CONFIGURE]
    changed_flags = _hashes(installFlags=["--frozen-lockfile", "--prefer-offline"])
    assert [n for n in before if before[n] != changed_flags[n]] == [StageName.BUILD_SITE, StageName.BUILD_API]
    changed_health = _hashes(health={"bodyField": "db.state", "expect": "up"})
    assert [n for n in before if before[n] != changed_health[n]] == [StageName.CONFIGURE]
    changed_kept = _hashes(api={"keepAcrossBundle": ["dist/database", "dist/locales"]})
    assert [n for n in before if before[n] != changed_kept[n]] == [StageName.BUILD_API]
    changed_migrate = _hashes(api={"migrateCommand": ["node", "dist/migrate.js", "--all"]})
    # the build checks that the migrate script exists; configure migrates
    assert [n for n in before if before[n] != changed_migrate[n]] == [StageName.BUILD_API, StageName.CONFIGURE]
    changed_uploads = _hashes(api={"uploadsDir": "var/uploads"})  # configure links it: no rebuild
    assert [n for n in before if before[n] != changed_uploads[n]] == [StageName.CONFIGURE]
    changed_admin = _hashes(api={"adminCommand": ["node", "dist/create-admin.js"]})  # the apps stage's: no rebuild
    assert [n for n in before if before[n] != changed_admin[n]] == [StageName.APPS]
