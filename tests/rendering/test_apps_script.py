"""The apps host scripts as rendered (no process runs): the admin command's credential placeholders, root's
record reported (apps, apps-ledger keeps it), spec.postInstall commands keyed by name and digest, and no HTTP
or JSON left on the host (runner/apps_step.py speaks the instance's API)."""

from __future__ import annotations

import dataclasses

import pydantic
import pytest

from o4o_operator.errors import InvalidSpecError
from o4o_operator.models import ApiBuildSpec, DeploymentInstanceSpec
from o4o_operator.rendering import HostContext, render_script
from o4o_operator.rendering.apps_script import AppsLedger, apps_variables, shell_word, step_marker
from o4o_operator.spec_install import ADMIN_COMMAND_DEFAULT, PostInstallStep

CONTEXT = HostContext(domain="shop.example.com", instance_name="shop", namespace="team-a",
                      repository="https://github.com/Renagang21/o4o-platform.git", revision="main",
                      tls_email="ops@example.com", apps=("forum-core", "signage"), api_port=3101)


def step(**fields: object) -> PostInstallStep:
    return PostInstallStep.model_validate(fields)


def test_placeholders_expand_from_the_environment_and_everything_else_is_literal() -> None:
    assert shell_word("--password=${O4O_ADMIN_PASSWORD}") == "'--password='\"${O4O_ADMIN_PASSWORD}\""
    assert shell_word("${O4O_ADMIN_EMAIL}") == '"${O4O_ADMIN_EMAIL}"'
    assert shell_word("a,b=c") == "'a,b=c'"
    script = render_script("apps", CONTEXT)
    assert ("o4o_with_env 'npx' 'tsx' 'src/scripts/create-admin-user.ts' '--email='\"${O4O_ADMIN_EMAIL}\" "
            "'--password='\"${O4O_ADMIN_PASSWORD}\"") in script


@pytest.mark.parametrize("word", ["$HOME", "${O4O_GIT_TOKEN}", "$(id)", "`id`", "a b", "${O4O_ADMIN_EMAIL", ""])
def test_no_other_expansion_can_be_declared(word: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        ApiBuildSpec.model_validate({"adminCommand": ["npx", word]})
    with pytest.raises(pydantic.ValidationError):
        step(name="x", command=["run", word])
    with pytest.raises(InvalidSpecError) as caught:
        dataclasses.replace(CONTEXT, admin_command=("npx", word))
    assert caught.value.field == "spec.build.api.adminCommand[1]"


def test_the_default_admin_command_is_o4os_create_admin_script() -> None:
    assert ApiBuildSpec().admin_command == ADMIN_COMMAND_DEFAULT
    assert ADMIN_COMMAND_DEFAULT[:3] == ("npx", "tsx", "src/scripts/create-admin-user.ts")


def test_the_admin_is_created_once_per_command_with_its_output_kept_back() -> None:
    script = render_script("apps", CONTEXT)
    marker = apps_variables(CONTEXT)["admin_marker"]
    other = apps_variables(dataclasses.replace(CONTEXT, admin_command=("node", "make-admin.js")))["admin_marker"]
    assert marker != other and marker.startswith("admin.")
    assert f'if [ -f "$APPS_STATE"/{marker} ]; then' in script
    assert '> "$WORK/admin.log" 2>&1' in script  # O4O's script prints the password it set
    assert "o4o_permanent AdminCreateFailed \"spec.build.api.adminCommand: command not found: \"npx" in script


def test_the_host_script_reports_roots_record_and_speaks_no_http_and_parses_no_json() -> None:
    script = render_script("apps", dataclasses.replace(CONTEXT, post_install=(step(name="seed", command=["a"]),)))
    assert "o4o_result recordedApps" in script and "o4o_result stepsRun" in script
    for gone in ("curl", "JSON.parse", "127.0.0.1", "/api/v1/", "TOKEN", "PostInstallFailed", "AppRefused"):
        assert gone not in script, gone
    assert 'line=${line//"$O4O_ADMIN_PASSWORD"/[redacted]}' in script


def test_no_post_install_steps_by_default_and_no_cms_init() -> None:
    assert DeploymentInstanceSpec.model_fields["post_install"].default == ()
    script = render_script("apps", CONTEXT)
    assert "PostInstallFailed" not in script and "seed" not in script and "cms" not in script.lower()
    assert not hasattr(CONTEXT, "cms_init_command")


def test_the_ledger_records_forgets_and_marks_and_runs_nothing_unless_told() -> None:
    script = render_script("apps-ledger", CONTEXT, ledger=AppsLedger(record=("forum-core",), forget=("signage",),
                                                                      steps=("seed.0123",)))
    assert 'date -u +%Y-%m-%dT%H:%M:%SZ > "$APPS_STATE"/apps/forum-core' in script
    assert 'rm -f "$APPS_STATE"/apps/signage' in script
    assert 'date -u +%Y-%m-%dT%H:%M:%SZ > "$APPS_STATE"/post-install/seed.0123' in script
    assert "o4o_with_env 'npx'" not in script and "PostInstallFailed" not in script
    assert "curl" not in script and "JSON" not in script


def test_a_post_install_command_runs_before_its_marker_and_names_its_field() -> None:
    steps = (step(name="settings", request={"method": "PUT", "path": "/api/v1/settings", "body": {"t": "it's"}}),
             step(name="seed", command=["pnpm", "run", "seed", "--as=${O4O_ADMIN_EMAIL}"]))
    seed = steps[1]
    script = render_script("apps-ledger", dataclasses.replace(CONTEXT, post_install=steps),
                           ledger=AppsLedger(steps=(step_marker(seed),), command=1))
    assert step_marker(seed) == f"seed.{seed.digest}"
    assert "o4o_with_env 'pnpm' 'run' 'seed' '--as='\"${O4O_ADMIN_EMAIL}\"" in script
    assert "o4o_permanent PostInstallFailed 'spec.postInstall[1] (seed): command not found: pnpm'" in script
    assert "o4o_permanent PostInstallFailed 'spec.postInstall[1] (seed): exited with status '\"$status\"" in script
    assert script.index("o4o_with_env 'pnpm'") < script.index(f"post-install/seed.{seed.digest}")
    assert "settings" not in script.split("set -euo pipefail", 1)[1]  # a request is the operator's, not the host's


def test_a_changed_step_gets_a_new_digest() -> None:
    first = step(name="seed", command=["pnpm", "run", "seed"])
    assert first.digest == step(name="seed", command=["pnpm", "run", "seed"]).digest
    assert first.digest != step(name="seed", command=["pnpm", "run", "seed", "--again"]).digest
    assert first.digest != step(name="seed", request={"path": "/api/v1/seed"}).digest


@pytest.mark.parametrize(("fields", "complaint"), [
    ({"name": "x"}, "exactly one of command or request"),
    ({"name": "x", "command": ["a"], "request": {"path": "/a"}}, "exactly one of command or request"),
    ({"name": "x", "command": []}, "at least 1"),
    ({"name": "Not A Label", "command": ["a"]}, "DNS label"),
    ({"name": "x", "request": {"path": "api/v1"}}, "absolute URL path"),
    ({"name": "x", "request": {"path": "/api/../etc"}}, "absolute URL path"),
    ({"name": "x", "request": {"path": "/a", "method": "TRACE"}}, "method"),
])
def test_malformed_steps_are_refused(fields: dict[str, object], complaint: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=complaint):
        step(**fields)


def test_step_names_are_unique() -> None:
    spec = {"domain": "shop.example.com", "provider": {"existing": {"host": "198.51.100.2"}},
            "ssh": {"user": "admin", "privateKeySecretRef": {"name": "k", "key": "id"}},
            "tls": {"email": "ops@example.com"}}
    twice = [{"name": "seed", "command": ["a"]}, {"name": "seed", "command": ["b"]}]
    with pytest.raises(pydantic.ValidationError, match=r"spec.postInstall\[1\]"):
        DeploymentInstanceSpec.model_validate({**spec, "postInstall": twice})
