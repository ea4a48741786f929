"""spec.build on a SandboxHost: O4O's commands, the toolchain the repository pins, and failures that name fields.

The rendered build scripts run over real SSH against the O4O-shaped fixture; pnpm, npm and node are the
sandbox's shims, which act out pnpm 10's exit statuses (0 for a filter that matches nothing unless
``--fail-if-no-match``; 0 when no selected package has the script).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from o4o_operator.errors import PermanentError
from o4o_operator.markers import parse_results
from o4o_operator.pipeline.stages import StageName, script_for
from o4o_operator.providers.ssh import SshSession
from o4o_operator.rendering import HostContext, render_script
from o4o_operator.testing import SandboxHost, commit_files, make_fixture_repo
from o4o_operator.testing.fixture_repo import PNPM_VERSION


@dataclasses.dataclass
class BuildHost:
    sandbox: SandboxHost
    session: SshSession
    repo: Path
    context: HostContext

    async def run(self, stage: StageName, **changes: Any) -> dict[str, str]:
        lines: list[str] = []
        context = dataclasses.replace(self.context, **changes)
        await self.session.run(render_script(script_for(stage), context), timeout=120, log=lines.append)
        return parse_results(lines)

    async def build(self, stage: StageName, **changes: Any) -> dict[str, str]:
        """Fetch the repository's HEAD, then run one build stage at that commit."""
        commit = (await self.run(StageName.SOURCE))["commit"]
        return await self.run(stage, commit=commit, **changes)

    def commit_root_manifest(self, **fields: Any) -> None:
        """Commit a root package.json with these top-level fields replaced (None removes one)."""
        manifest = json.loads((self.repo / "package.json").read_text())
        for key, value in fields.items():
            if value is None:
                manifest.pop(key, None)
            else:
                manifest[key] = value
        commit_files(self.repo, {"package.json": json.dumps(manifest, indent=2) + "\n"}, "Change the toolchain")

    def pnpm_runs(self) -> list[tuple[str, ...]]:
        return [c.args for c in self.sandbox.commands("pnpm") if "run" in c.args]

    def own_pnpm(self, version: str) -> Path:
        """The npm prefix of the instance's own pnpm at ``version``, in its user's home."""
        return self.sandbox.path(f"{self.context.pnpm_root}/{version}")


@pytest.fixture
async def host(sandbox: SandboxHost, session: SshSession, tmp_path: Path) -> BuildHost:
    repo, _ = make_fixture_repo(tmp_path / "platform")
    context = HostContext(domain="shop.example.com", instance_name="shop", repository=str(repo),
                          revision="main", tls_email="ops@example.com")
    host = BuildHost(sandbox, session, repo, context)
    await host.run(StageName.RUNTIME)
    return host


async def test_the_default_build_runs_o4os_commands_with_the_pinned_pnpm(host: BuildHost) -> None:
    assert await host.build(StageName.BUILD_SITE) == {"built": "site"}
    commit = (await host.run(StageName.SOURCE))["commit"]
    assert await host.run(StageName.BUILD_API, commit=commit) == {"built": "api"}

    assert host.pnpm_runs() == [
        ("--filter", "@o4o/main-site-nextgen...", "--fail-if-no-match", "run", "build"),
        ("--filter", "@o4o/api-server...", "--fail-if-no-match", "run", "build"),
        ("--filter", "@o4o/api-server", "--fail-if-no-match", "run", "build:api"),
    ]
    installs = [c.args for c in host.sandbox.commands("pnpm") if c.args[:1] == ("install",)]
    assert installs == [("install", "--frozen-lockfile")]
    # The build uses the instance's own pnpm at O4O's pin, installed once by its user into its home (the build
    # of the API finds it there), never the runtime's global one, which stays as it was.
    own = host.own_pnpm(PNPM_VERSION)
    assert host.sandbox.shim_state()["npm_prefixes"] == {str(own): {"pnpm": PNPM_VERSION}}
    assert host.sandbox.shim_state()["npm_versions"]["pnpm"] == PNPM_VERSION
    installs = [c for c in host.sandbox.commands("npm") if f"pnpm@{PNPM_VERSION}" in c.args]
    assert [c.user for c in installs] == ["", host.context.app_user]  # the runtime's, the instance's
    assert {c.env.get("O4O_SHIM_PACKAGE") for c in host.sandbox.commands("pnpm")} == \
        {str(own / "lib/node_modules/pnpm")}
    release = host.sandbox.path(host.context.release_dir(commit))
    site = (release / "apps/main-site/dist/index.html").read_text()
    assert 'content="https://shop.example.com"' in site  # VITE_API_URL, baked in at build time
    assert (release / "packages/types/dist/index.js").exists()  # built first, through the "..." filter
    assert (release / "apps/api-server/dist/main.js").exists()


async def test_a_package_filter_that_matches_nothing_fails_naming_the_field(host: BuildHost) -> None:
    with pytest.raises(PermanentError) as caught:
        await host.build(StageName.BUILD_SITE, site_package="@o4o/main-site")
    assert caught.value.reason == "PackageNotFound"
    assert caught.value.message.startswith("spec.build.site.package: no workspace package is named @o4o/main-site")

    with pytest.raises(PermanentError) as caught:
        await host.build(StageName.BUILD_API, api_package="@o4o/api")
    assert caught.value.reason == "PackageNotFound"
    assert "spec.build.api.package" in caught.value.message
    assert host.pnpm_runs() == []  # nothing was run that pnpm would have let pass with exit status 0


@pytest.mark.parametrize(("stage", "changes", "field"), [
    (StageName.BUILD_SITE, {"site_build_script": "compile"}, "spec.build.site.buildScript"),
    (StageName.BUILD_API, {"api_build_script": "compile"}, "spec.build.api.buildScript"),
    (StageName.BUILD_API, {"api_bundle_script": "bundle"}, "spec.build.api.bundleScript"),
])
async def test_a_missing_script_fails_naming_the_field(host: BuildHost, stage: StageName, changes: dict[str, str],
                                                       field: str) -> None:
    with pytest.raises(PermanentError) as caught:
        await host.build(stage, **changes)
    assert caught.value.reason == "ScriptNotFound"
    assert caught.value.message.startswith(f"{field}: package @o4o/")
    assert f'no "{next(iter(changes.values()))}" script' in caught.value.message


async def test_an_output_the_build_did_not_make_fails_naming_the_field(host: BuildHost) -> None:
    with pytest.raises(PermanentError) as caught:
        await host.build(StageName.BUILD_API, api_entry="dist/server.js")
    assert caught.value.reason == "BuildOutputMissing"
    assert caught.value.message.startswith("spec.build.api.entryPoint:")
    assert "apps/api-server/dist/server.js" in caught.value.message


@pytest.mark.parametrize(("fields", "wanted"), [
    ({"packageManager": "pnpm@10.26.1+sha512.0123abcd"}, "10.26.1"),  # packageManager comes first
    ({"devDependencies": None}, PNPM_VERSION),  # then devDependencies.pnpm, then volta.pnpm
])
async def test_the_pin_is_read_from_package_json_in_order(host: BuildHost, fields: dict[str, Any],
                                                          wanted: str) -> None:
    host.commit_root_manifest(**fields)
    await host.build(StageName.BUILD_SITE)
    assert host.sandbox.shim_state()["npm_prefixes"] == {str(host.own_pnpm(wanted)): {"pnpm": wanted}}


async def test_two_instances_on_one_host_each_build_with_the_pnpm_their_repository_pins(
        host: BuildHost, tmp_path: Path) -> None:
    """Root never installs a repository's pin globally: each instance's user installs it into its own home, and
    each build runs its own, so one tenant's pin never replaces the pnpm another tenant builds with."""
    other_repo, _ = make_fixture_repo(tmp_path / "other-platform")
    other = BuildHost(host.sandbox, host.session, other_repo, HostContext(
        domain="blog.example.com", instance_name="blog", namespace="team-b", repository=str(other_repo),
        revision="main", tls_email="ops@example.com"))
    await other.run(StageName.RUNTIME)
    host.commit_root_manifest(packageManager="pnpm@10.26.1")
    other.commit_root_manifest(packageManager="pnpm@9.15.9")

    assert await host.build(StageName.BUILD_SITE) == {"built": "site"}
    assert await other.build(StageName.BUILD_SITE) == {"built": "site"}
    commit = (await host.run(StageName.SOURCE))["commit"]
    assert await host.run(StageName.BUILD_API, commit=commit) == {"built": "api"}  # after the other's install

    for build, version in ((host, "10.26.1"), (other, "9.15.9")):
        user = build.context.app_user
        calls = [c for c in host.sandbox.commands("pnpm") if c.user == user]
        assert calls and {c.env.get("O4O_SHIM_PACKAGE") for c in calls} == \
            {str(build.own_pnpm(version) / "lib/node_modules/pnpm")}, user
        npm = [c for c in host.sandbox.commands("npm") if f"pnpm@{version}" in c.args]
        assert [(c.user, c.args[c.args.index("--prefix") + 1]) for c in npm] == [(user, str(build.own_pnpm(version)))]
    state = host.sandbox.shim_state()
    assert state["npm_versions"]["pnpm"] == PNPM_VERSION  # the global pnpm is untouched by either pin
    assert set(state["npm_prefixes"]) == {str(host.own_pnpm("10.26.1")), str(other.own_pnpm("9.15.9"))}
    assert {c.user for c in host.sandbox.commands("pnpm")} == {host.context.app_user, other.context.app_user}


@pytest.mark.parametrize(("fields", "words"), [
    ({"devDependencies": None, "volta": None}, "pins no pnpm version"),
    ({"devDependencies": {"pnpm": "^10.0.0"}}, "devDependencies.pnpm is '^10.0.0', not an exact pnpm version"),
])
async def test_no_exact_pin_is_a_clear_reason(host: BuildHost, fields: dict[str, Any], words: str) -> None:
    host.commit_root_manifest(**fields)
    with pytest.raises(PermanentError) as caught:
        await host.build(StageName.BUILD_SITE)
    assert caught.value.reason == "PnpmNotPinned"
    assert words in caught.value.message
    assert [c for c in host.sandbox.commands("pnpm") if c.args[:1] == ("install",)] == []


async def test_a_pin_npm_cannot_install_is_a_clear_reason(host: BuildHost) -> None:
    host.commit_root_manifest(packageManager="pnpm@10.99.0")
    host.sandbox.fail_command("npm", args_contain="pnpm@10.99.0", exit_code=1,
                              stderr="npm error code ETARGET\nnpm error notarget No matching version found "
                                     "for pnpm@10.99.0.\n")
    with pytest.raises(PermanentError) as caught:
        await host.build(StageName.BUILD_SITE)
    assert caught.value.reason == "PnpmVersionUnavailable"
    assert "pnpm 10.99.0 (package.json packageManager) is not in the npm registry" in caught.value.message


async def test_a_node_older_than_the_repository_requires_is_a_clear_reason(host: BuildHost) -> None:
    host.commit_root_manifest(engines={"node": ">=24.1.0"})
    with pytest.raises(PermanentError) as caught:
        await host.build(StageName.BUILD_SITE)
    assert caught.value.reason == "NodeVersionUnsupported"
    assert caught.value.message.startswith("The repository requires Node.js >=24.1.0 (engines.node); "
                                           "the server has v22.18.0\n")


async def test_changed_build_settings_build_a_built_release_again(host: BuildHost) -> None:
    await host.build(StageName.BUILD_SITE)
    await host.build(StageName.BUILD_SITE)
    assert len(host.pnpm_runs()) == 1
    await host.build(StageName.BUILD_SITE, site_env=(("VITE_SITE_NAME", "Spring shop"),))
    assert len(host.pnpm_runs()) == 2
    site_build = [c for c in host.sandbox.commands("pnpm") if "run" in c.args][-1]
    assert site_build.args[1] == "@o4o/main-site-nextgen..."
