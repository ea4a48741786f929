"""Rendering: golden files, strictness, quoting of hostile values and the marker protocol.

Regenerate the golden files after an intended template change with
``O4O_UPDATE_GOLDEN=1 pytest tests/rendering/test_rendering.py`` and review the diff.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import pytest
from test_rendered_configs import CLONE, RESTORE_IN_PLACE

from o4o_operator.errors import InvalidSpecError
from o4o_operator.markers import last_failure, parse_results
from o4o_operator.pipeline.stages import StageName, script_for
from o4o_operator.rendering import (
    SCRIPT_NAMES,
    HostContext,
    dotenv_quote,
    environment,
    render_ecosystem,
    render_env,
    render_nginx_site,
    render_script,
    shquote,
)

GOLDEN = Path(__file__).parent / "golden"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CONTEXT = HostContext(domain="shop.example.com", instance_name="shop", namespace="team-a",
                      repository="https://github.com/o4o/platform.git", revision="main",
                      tls_email="ops@example.com", commit=COMMIT, apps=("forum-core", "signage"))

RENDERINGS: dict[str, Callable[[], str]] = {
    **{f"{name}.sh": functools.partial(render_script, name, CONTEXT) for name in SCRIPT_NAMES},
    "configure.backup.sh": lambda: render_script(
        "configure", dataclasses.replace(CONTEXT, backup_id="20261206T120000Z-0123456789ab")),
    "configure.restore.sh": lambda: render_script("configure", dataclasses.replace(CONTEXT, **RESTORE_IN_PLACE)),
    "configure.clone.sh": lambda: render_script("configure", dataclasses.replace(CONTEXT, **CLONE)),
    "nginx-site.http.conf": lambda: render_nginx_site(CONTEXT, certificate_present=False),
    "nginx-site.https.conf": lambda: render_nginx_site(CONTEXT, certificate_present=True),
    "ecosystem.config.js": lambda: render_ecosystem(CONTEXT),
    "env": lambda: render_env({"DATABASE_URL": "postgres://o4o@localhost/o4o", "JWT_SECRET": "s3cr3t"}),
}


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_rendering_matches_its_golden_file(name: str) -> None:
    rendered = RENDERINGS[name]()
    golden = GOLDEN / name
    if os.environ.get("O4O_UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text(), f"{name} changed; see the module docstring to regenerate"


def test_every_golden_file_is_still_rendered() -> None:
    assert sorted(p.name for p in GOLDEN.iterdir()) == sorted(RENDERINGS)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_every_script_starts_strict_and_prefixes_paths(name: str) -> None:
    script = render_script(name, CONTEXT)
    assert script.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in script.split("R=")[0]
    assert 'R="${O4O_ROOT:-}"' in script
    for line in script.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for logical in ("/srv/o4o", "/var/lib/o4o", "/etc/nginx", "/etc/letsencrypt", "/etc/apt"):
            if logical in line:
                assert f'"$R"{logical}' in line or f"$R{logical}" in line or "signed-by=" in line, line


def test_missing_variables_raise() -> None:
    with pytest.raises(jinja2.UndefinedError):
        environment().from_string("{{ ctx.domain }} {{ not_given }}").render(ctx=CONTEXT)
    with pytest.raises(jinja2.UndefinedError):
        environment().from_string("{{ ctx.no_such_field }}").render(ctx=CONTEXT)


def test_shquote_refuses_what_is_not_text() -> None:
    assert shquote("a b") == "'a b'"
    assert shquote(3001) == "3001"
    for value in (None, True, ["a"]):
        with pytest.raises(TypeError):
            shquote(value)


HOSTILE: dict[str, Any] = {
    "repository": "https://example.com/$(touch /tmp/pwned)`id`;'\"x\"\\ || true",
    "revision": "main;$(reboot)`id`'\"",
    "tls_email": "ops@example.com';reboot;'$(id)",
    "acme_server": "https://acme.example/dir?x=$(id)&y='1'",
}


@pytest.mark.parametrize("stage", [StageName.SOURCE, StageName.TLS])
def test_hostile_values_arrive_in_bash_unchanged(stage: StageName) -> None:
    context = dataclasses.replace(CONTEXT, **HOSTILE)
    script = render_script(script_for(stage), context)
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    names = {"REPOSITORY": "repository", "REVISION": "revision", "EMAIL": "tls_email",
             "ACME_SERVER": "acme_server"}
    assignments = [line for line in script.splitlines() if line.split("=", 1)[0] in names]
    assert assignments
    for line in assignments:
        name = line.split("=", 1)[0]
        shown = subprocess.run(["bash", "-c", f'{line}\nprintf %s "${name}"'], capture_output=True,
                               text=True, check=True).stdout
        assert shown == HOSTILE[names[name]]


@pytest.mark.parametrize(("field", "value"), [
    ("domain", "shop.example.com; include /etc/shadow"),
    ("domain", "Shop.Example.com"),
    ("instance_name", "shop/../../etc"),
    ("instance_name", "team.shop"),
    ("namespace", "team/../a"),
    ("namespace", "team.a"),
    ("app_user", "root;id"),
    ("web_group", "www data"),
    ("health_path", "/api/health; return 200"),
    ("revision", "--upload-pack=touch /tmp/x"),
    ("repository", "https://example.com/x.git\nreboot"),
    ("commit", "main"),
    ("base_dir", "/srv/o4o/a b"),
    ("apps", ("forum-core", "Forum!")),
])
def test_values_that_could_escape_a_config_file_are_refused(field: str, value: Any) -> None:
    with pytest.raises(InvalidSpecError):
        dataclasses.replace(CONTEXT, **{field: value})


def test_base_dir_follows_the_namespace_and_the_instance_name() -> None:
    assert CONTEXT.base_dir == "/srv/o4o/team-a.shop"
    assert CONTEXT.release_dir(COMMIT) == f"/srv/o4o/team-a.shop/releases/{COMMIT}"


def test_scripts_that_build_or_activate_need_a_commit() -> None:
    for name in ("build-site", "build-api", "configure", "activate-release"):
        with pytest.raises(ValueError, match="commit"):
            render_script(name, dataclasses.replace(CONTEXT, commit=None))
    with pytest.raises(ValueError, match="No script"):
        render_script(StageName.PROVISION, CONTEXT)


ENV_VALUES = {
    "PLAIN": "value",
    "SINGLE": "it's",
    "BOTH": "it's \"quoted\"",
    "BACKSLASH_AND_QUOTE": "a'b\\nc",
    "DOLLAR": "$HOME and ${PATH} and $(id)",
    "HASH": "a # not a comment",
    "NEWLINES": "line one\nline two",
    "SPACES": "  padded  ",
    "EMPTY": "",
    "UNICODE": "비밀 ✓",
}


def test_env_values_round_trip_through_node_env_file(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    env_file = tmp_path / ".env"
    env_file.write_text(render_env(ENV_VALUES))
    keys = json.dumps(sorted(ENV_VALUES))
    program = f"console.log(JSON.stringify(Object.fromEntries({keys}.map(k => [k, process.env[k]]))))"
    shown = subprocess.run(
        [node, f"--env-file={env_file}", "-e", program],
        capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]}).stdout
    assert json.loads(shown) == ENV_VALUES


def test_env_refuses_what_it_cannot_quote() -> None:
    with pytest.raises(ValueError):
        dotenv_quote("'\"`\\")
    with pytest.raises(ValueError):
        dotenv_quote("nul\x00")
    with pytest.raises(InvalidSpecError):
        render_env({"BAD-NAME": "x"})


def test_env_refusal_names_the_field_and_key_but_never_the_value() -> None:
    value = "canary-'\"`\\-value"
    origins = {"API_TOKEN": "spec.env[1]", "OTHER": "spec.env[0]"}
    with pytest.raises(InvalidSpecError) as caught:
        render_env({"OTHER": "fine", "API_TOKEN": value}, origins)
    assert caught.value.reason == "EnvValueUnquotable" and not caught.value.transient
    assert caught.value.field == "spec.env[1]"
    assert "API_TOKEN" in caught.value.message
    assert "canary" not in str(caught.value)
    with pytest.raises(InvalidSpecError) as caught:
        render_env({"BAD-NAME": "canary"}, {"BAD-NAME": "spec.env[0]"})
    assert caught.value.field == "spec.env[0]" and "canary" not in str(caught.value)


def test_the_tls_email_cannot_become_a_certbot_option() -> None:
    script = render_script(script_for(StageName.TLS), CONTEXT)
    assert '--email="$EMAIL"' in script
    assert '--email "$EMAIL"' not in script
    with pytest.raises(InvalidSpecError) as caught:
        dataclasses.replace(CONTEXT, tls_email="--register-unsafely-without-email@x.example")
    assert caught.value.field == "spec.tls.email"


def test_marker_lines_parse() -> None:
    lines = ["noise", "::o4o::result commit=abc", "::o4o::result notAfter=2026-01-01T00:00:00Z",
             "::o4o::result issuer=C = US, O = Let's Encrypt", "::o4o::result commit=def"]
    assert parse_results(lines) == {"commit": "def", "notAfter": "2026-01-01T00:00:00Z",
                                    "issuer": "C = US, O = Let's Encrypt"}
    failure = last_failure(["::o4o::transient reason=Early first", "::o4o::permanent reason=RolledBack why"])
    assert failure is not None and failure.permanent and failure.reason == "RolledBack"
    assert failure.message == "why"
    assert last_failure(["::o4o::permanent reason=not-camel x"]) is None
