"""The apps script as rendered (no process runs): the instance's own API, the admin command's credential
placeholders, each wanted app under its spec.apps[i], and spec.postInstall steps keyed by name and digest."""

from __future__ import annotations

import dataclasses
import re

import pydantic
import pytest

from o4o_operator.errors import InvalidSpecError
from o4o_operator.models import ApiBuildSpec, DeploymentInstanceSpec
from o4o_operator.rendering import HostContext, render_script
from o4o_operator.rendering.apps_script import apps_variables, shell_word
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


def test_the_script_talks_to_its_own_api_directly_and_keeps_credentials_out_of_argv() -> None:
    script = render_script("apps", CONTEXT)
    assert "API=http://127.0.0.1:3101\n" in script
    assert "--noproxy '*'" in script
    assert "o4o_api POST /api/v1/auth/login <(node -e \"$O4O_LOGIN_JS\")" in script
    assert "includeLegacyTokens: true" in script
    assert "data.tokens.accessToken" in script
    assert 'args+=(-H "@$WORK/auth-header")' in script  # the token is read by curl from a root-only file
    assert "o4o_api GET /api/v1/admin/apps/market" in script
    assert "o4o_api GET /api/v1/admin/apps\n" in script
    for action in ("install", "activate", "deactivate", "uninstall"):
        assert f"o4o_app_call {action} " in script
    assert 'o4o_api POST "/api/v1/admin/apps/$1" "$WORK/body"' in script
    assert not re.search(r"curl [^\n]*\$O4O_ADMIN|curl [^\n]*\$TOKEN", script)


def test_each_wanted_app_is_checked_against_the_market_under_its_spec_index() -> None:
    script = render_script("apps", dataclasses.replace(CONTEXT, apps=("signage", "forum-core", "blog")))
    checks = re.findall(r"grep -qxF (\S+) <<< \"\$MARKET\" \|\|\n"
                        r"  o4o_permanent UnknownApp '(spec\.apps\[\d\]): [^']*named (\S+);", script)
    assert checks == [("signage", "spec.apps[0]", "signage"), ("forum-core", "spec.apps[1]", "forum-core"),
                      ("blog", "spec.apps[2]", "blog")]
    # every check comes before the first change
    assert script.index("o4o_permanent UnknownApp") < script.index("o4o_app_call deactivate")
    assert "o4o_app_call install signage 'spec.apps[0]'" in script
    assert "WANTED=(signage forum-core blog)" in script


def test_a_refusal_stalls_with_the_instances_bounded_words() -> None:
    script = render_script("apps", CONTEXT)
    assert ('o4o_permanent AppRefused "$3: the instance refused to $1 app $2 (HTTP $API_STATUS): $(o4o_words)"'
            in script)
    assert 'words=$(o4o_json message | o4o_redacted)\n  printf \'%s\' "${words:0:300}"' in script
    assert 'line=${line//"$O4O_ADMIN_PASSWORD"/[redacted]}' in script


def test_only_apps_this_operator_installed_are_removed_and_the_instance_report_is_the_result() -> None:
    script = render_script("apps", CONTEXT)
    assert 'for marker in "$APPS_STATE"/apps/*; do' in script
    assert 'o4o_result installed "$ACTIVE"' in script
    assert script.rstrip().endswith('o4o_result removed "$(IFS=,; printf \'%s\' "${REMOVED[*]}")"')


def test_no_post_install_steps_by_default_and_no_cms_init() -> None:
    assert DeploymentInstanceSpec.model_fields["post_install"].default == ()
    script = render_script("apps", CONTEXT)
    assert "PostInstallFailed" not in script and "seed" not in script and "cms" not in script.lower()
    assert not hasattr(CONTEXT, "cms_init_command")


def test_post_install_steps_name_their_field_and_run_once_per_digest() -> None:
    steps = (step(name="seed", command=["pnpm", "run", "seed"]),
             step(name="settings", request={"method": "PUT", "path": "/api/v1/settings", "body": {"t": "it's"}}))
    script = render_script("apps", dataclasses.replace(CONTEXT, post_install=steps))
    seed, settings = steps
    assert f'if [ -f "$APPS_STATE"/post-install/seed.{seed.digest} ]; then' in script
    assert f'"$APPS_STATE"/post-install/settings.{settings.digest}' in script
    assert "o4o_permanent PostInstallFailed 'spec.postInstall[0] (seed): command not found: pnpm'" in script
    assert "o4o_permanent PostInstallFailed 'spec.postInstall[0] (seed): exited with status '\"$status\"" in script
    assert """printf '%s' '{"t":"it'"'"'s"}' > "$WORK/body"\n  o4o_api PUT /api/v1/settings "$WORK/body\"""" in script
    assert "'spec.postInstall[1] (settings): PUT /api/v1/settings answered HTTP '" in script
    assert script.index("o4o_app_call activate") < script.index("Post-install step seed")


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
