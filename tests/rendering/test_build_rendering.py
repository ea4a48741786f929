"""spec.build through rendering: the default spec renders O4O's commands exactly, and nothing escapes a script."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from o4o_operator.errors import InvalidSpecError
from o4o_operator.models import BuildSpec, DeploymentInstanceSpec
from o4o_operator.rendering import HostContext, render_ecosystem, render_script
from o4o_operator.rendering.host_context import build_fields

GOLDEN = Path(__file__).parent / "golden"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def context_for(build: BuildSpec) -> HostContext:
    return HostContext(domain="shop.example.com", instance_name="shop", namespace="team-a",
                       repository="https://github.com/o4o/platform.git", revision="main",
                       tls_email="ops@example.com", commit=COMMIT, apps=("commerce", "forum"), **build_fields(build))


DEFAULT = context_for(DeploymentInstanceSpec.model_validate({
    "domain": "shop.example.com", "provider": {"existing": {"host": "198.51.100.7"}},
    "ssh": {"privateKeySecretRef": {"name": "k", "key": "k"}}, "tls": {"email": "ops@example.com"},
}).build)


@pytest.mark.parametrize("name", ["build-site", "build-api"])
def test_the_default_spec_renders_the_golden_build_scripts(name: str) -> None:
    assert render_script(name, DEFAULT) == (GOLDEN / f"{name}.sh").read_text()


def test_the_default_site_build_is_o4os() -> None:
    script = render_script("build-site", DEFAULT)
    assert "SITE_PACKAGE=@o4o/main-site-nextgen\n" in script
    assert "  VITE_API_URL=https://shop.example.com\n" in script
    assert 'pnpm --filter "$SITE_PACKAGE..." --fail-if-no-match run "$SITE_SCRIPT"' in script
    assert "OUTPUT=apps/main-site/dist/index.html\n" in script
    assert ('with_pnpm env CI=true ${NODE_HEADERS_DIR:+"npm_config_nodedir=$NODE_HEADERS_DIR"} pnpm install '
            '"${INSTALL_FLAGS[@]}"') in script
    assert "INSTALL_FLAGS=(--frozen-lockfile)\n" in script


def test_the_default_api_build_is_o4os() -> None:
    script = render_script("build-api", DEFAULT)
    for line in ("API_PACKAGE=@o4o/api-server", "API_BUILD_SCRIPT=build", "API_BUNDLE_SCRIPT=build:api",
                 "OUTPUT=apps/api-server/dist/main.js",
                 "# The database is migrated at activation, in apps/api-server, with: node dist/migrate.js",
                 "KEEP_ACROSS_BUNDLE=(dist/database)", "MIGRATE_SCRIPT=dist/migrate.js"):
        assert f"\n{line}\n" in script
    build = script.index('pnpm --filter "$API_PACKAGE..." --fail-if-no-match run "$API_BUILD_SCRIPT"')
    bundle = script.index('pnpm --filter "$API_PACKAGE" --fail-if-no-match run "$API_BUNDLE_SCRIPT"')
    assert build < bundle
    checks = [m.start() for m in re.finditer(r"^o4o_require_script ", script, re.MULTILINE)]
    assert len(checks) == 2 and max(checks) < build  # scripts are checked before any is run


def test_the_ecosystem_runs_the_entry_point_from_spec_build() -> None:
    fork = context_for(BuildSpec.model_validate({"api": {"directory": "server", "entryPoint": "out/index.js"}}))
    ecosystem = render_ecosystem(fork)
    assert '"script": "out/index.js"' in ecosystem
    assert f'"cwd": "{fork.current_link}/server"' in ecosystem


def test_a_fork_without_a_bundle_step_renders_none_and_still_passes_bash() -> None:
    fork = context_for(BuildSpec.model_validate({"api": {"bundleScript": ""}, "site": {"apiUrlVariable": ""}}))
    api = render_script("build-api", fork)
    assert "API_BUNDLE_SCRIPT" not in api and "--fail-if-no-match run \"$API_BUILD_SCRIPT\"" in api
    site = render_script("build-site", fork)
    assert "VITE_API_URL" not in site
    for script in (api, site):
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_build_env_values_arrive_in_bash_unchanged() -> None:
    hostile = "$(reboot)`id`'\"; echo"
    fork = dataclasses.replace(DEFAULT, site_env=(("VITE_BRAND", hostile),))
    script = render_script("build-site", fork)
    array = script[script.index("SITE_ENV=("):script.index(")\n", script.index("SITE_ENV=(")) + 1]
    shown = subprocess.run(["bash", "-c", f'{array}\nprintf "%s\\n" "${{SITE_ENV[@]}}"'], capture_output=True,
                           text=True, check=True).stdout
    assert shown == f"VITE_API_URL=https://shop.example.com\nVITE_BRAND={hostile}\n"


@pytest.mark.parametrize(("field", "value", "named"), [
    ("site_package", "@o4o/x; reboot", "spec.build.site.package"),
    ("site_package", "@o4o/main-site...", "spec.build.site.package"),
    ("site_build_script", "build && id", "spec.build.site.buildScript"),
    ("site_dist", "../../etc", "spec.build.site.outputDir"),
    ("api_dir", "/etc", "spec.build.api.directory"),
    ("api_build_script", "", "spec.build.api.buildScript"),
    ("api_bundle_script", "$(id)", "spec.build.api.bundleScript"),
    ("api_entry", "dist/../../x.js", "spec.build.api.entryPoint"),
    ("install_flags", ("--frozen-lockfile", "; id"), "spec.build.installFlags[1]"),
    ("api_migrate_command", ("node", "a b"), "spec.build.api.migrateCommand[1]"),
    ("api_migrate_command", (), "spec.build.api.migrateCommand"),
    ("site_env", (("A B", "x"),), "spec.build.site.env.A B"),
    ("site_env", (("VITE_X", "a\nb"),), "spec.build.site.env.VITE_X"),
])
def test_host_context_refuses_build_values_naming_the_field(field: str, value: Any, named: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        dataclasses.replace(DEFAULT, **{field: value})
    assert caught.value.field == named
