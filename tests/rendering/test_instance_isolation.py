"""Instances sharing a host: names that never collide, and scripts where root never writes as the app.

The shim sandbox and the real-user tests (tests/host) run these scripts; this module checks what can be
checked on the rendered text alone.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import pytest

from o4o_operator.rendering import SCRIPT_NAMES, HostContext, render_script
from o4o_operator.rendering.host_context import instance_user
from o4o_operator.spec_install import PostInstallStep

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LONG = "n" * 63


def context(namespace: str, name: str) -> HostContext:
    return HostContext(domain=f"{name}.{namespace}.example.com", instance_name=name, namespace=namespace,
                       repository="https://github.com/o4o/platform.git", revision="main",
                       tls_email="ops@example.com", commit=COMMIT)


def per_instance_names(ctx: HostContext) -> dict[str, str]:
    return {
        "user": ctx.app_user, "base_dir": ctx.base_dir, "state_dir": ctx.state_dir, "webroot": ctx.webroot,
        "pm2": ctx.pm2_app_name, "nginx_http": ctx.nginx_site_name(False), "nginx_https": ctx.nginx_site_name(True),
        "nginx_enabled": ctx.nginx_enabled_path, "nginx_stem": ctx.nginx_site_stem,
    }


PAIRS = [
    (("a", "shop"), ("b", "shop")),          # the same name in two namespaces
    (("a-b", "c"), ("a", "b-c")),            # "<ns>-<name>" alone would be equal
    ((LONG, LONG), (LONG, LONG[:-1] + "m")),  # equal once shortened to a user name
    ((LONG, "shop"), (LONG[:-1] + "m", "shop")),
]


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=["same-name", "dash", "long-name", "long-namespace"])
def test_two_instances_share_no_user_path_process_or_site(first: tuple[str, str], second: tuple[str, str]) -> None:
    one, other = per_instance_names(context(*first)), per_instance_names(context(*second))
    for kind in one:
        assert one[kind] != other[kind], kind
    for ctx in (context(*first), context(*second)):
        assert len(ctx.app_user) <= 32
        assert re.fullmatch(r"o4o-[a-z0-9-]*[a-z0-9]-[0-9a-f]{8}", ctx.app_user), ctx.app_user


def test_names_carry_the_namespace_and_stay_readable() -> None:
    ctx = context("team-a", "shop")
    assert ctx.app_user == instance_user("team-a", "shop")
    assert ctx.app_user.startswith("o4o-team-a-shop-")
    assert ctx.base_dir == "/srv/o4o/team-a.shop"
    assert ctx.pm2_app_name == "o4o-team-a.shop-api"
    assert ctx.nginx_enabled_path == "/etc/nginx/sites-enabled/o4o-team-a.shop.conf"
    assert ctx.state_dir == "/var/lib/o4o/instances/team-a.shop"
    assert ctx.webroot == "/var/lib/o4o/acme/team-a.shop"
    # Root's own files stay out of the directory the instance user controls.
    for root_owned in (ctx.state_dir, ctx.webroot, ctx.apps_state_dir, ctx.activation_log(COMMIT),
                       ctx.nginx_applied_marker):
        assert not root_owned.startswith(ctx.base_dir + "/"), root_owned


def test_users_stay_unique_over_many_namespaces() -> None:
    names = [f"{a}-{b}" for a, b in itertools.product("abcdefghij", repeat=2)]
    users = {instance_user(namespace, name) for namespace in names for name in ("shop", "shop-1", "1-shop")}
    assert len(users) == len(names) * 3


# ---- root never writes through a path the instance user controls ------------------------

APP_PATHS = ("$BASE_DIR", "$RELEASE_DIR", "$RELEASES_DIR", "${RELEASES_DIR", "$REPO_DIR", "$CURRENT", "$ENV_FILE",
             "$askpass")
WRITERS = re.compile(r"(?<![\w-])(rm|mv|touch|install|ln|tee|chmod|chown|cp|mkdir|tar|git|o4o_relink)(?![\w-])")
REDIRECT_INTO_APP = re.compile(r">>?\s*\"(" + "|".join(re.escape(p) for p in APP_PATHS) + r")")
ROOT_OWNED_NAME = {
    # The base directory's own entry lives in root-owned /srv/o4o, so root may create it and give it away.
    'install -d -m 0750 "$BASE_DIR"',
    'chown -h "$APP_USER:$WEB_GROUP" "$BASE_DIR"',
}


def all_scripts() -> dict[str, str]:
    scripts = {name: render_script(name, context("team-a", "shop")) for name in SCRIPT_NAMES}
    steps = (PostInstallStep.model_validate({"name": "seed", "command": ["pnpm", "run", "seed"]}),
             PostInstallStep.model_validate({"name": "ping", "request": {"path": "/api/v1/ping", "body": {}}}))
    scripts["apps-with-post-install"] = render_script("apps", dataclasses.replace(context("team-a", "shop"),
                                                                                    post_install=steps))
    return scripts


def root_writes_into_app_paths(script: str) -> list[str]:
    found = []
    for raw in script.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line in ROOT_OWNED_NAME:
            continue
        if REDIRECT_INTO_APP.search(line):
            found.append(line)
            continue
        if not any(path in line for path in APP_PATHS) or not WRITERS.search(line):
            continue
        commands = re.split(r"\|\||&&|\||;|\bthen\b|\belse\b|\$\(", line)
        for command in commands:
            words = command.strip().lstrip("(!{ ").split()
            if words and WRITERS.fullmatch(words[0]) and any(path in command for path in APP_PATHS):
                found.append(line)
                break
            if words and words[0] == "if" and len(words) > 2 and WRITERS.fullmatch(words[1 + (words[1] == "!")]):
                found.append(line)
                break
    return found


@pytest.mark.parametrize("name", sorted(all_scripts()))
def test_root_writes_in_app_directories_only_through_the_app_user(name: str) -> None:
    assert root_writes_into_app_paths(all_scripts()[name]) == []


def test_the_write_check_catches_what_it_should() -> None:
    bad = ['touch "$BASE_DIR/$TARGET/.o4o-failed"', 'chown -R "$APP_USER:$APP_USER" "$RELEASE_DIR.staging"',
           '  if ! git clone --no-checkout --quiet "$REPOSITORY" "$REPO_DIR.staging" 2> "$errors"; then',
           'printf x > "$BASE_DIR/x"', 'as_app pm2 logs >> "$CURRENT/log"', 'o4o_relink "$TARGET" "$CURRENT"',
           'rm -rf "${RELEASES_DIR:?}/$name"']
    good = ['as_app touch "$BUILT_MARKER"', '[ -f "$RELEASE_DIR/.o4o-source" ]', 'cd "$RELEASE_DIR"',
            '  as_app git -C "$REPO_DIR" fetch', 'previous="$(readlink "$CURRENT" 2>/dev/null || true)"',
            'o4o_relink_as_app "$TARGET" "$CURRENT"', 'as_app rm -rf -- "${RELEASES_DIR:?}/$name"']
    assert root_writes_into_app_paths("\n".join(bad)) == [line.strip() for line in bad]
    assert root_writes_into_app_paths("\n".join(good)) == []


def test_every_chown_leaves_links_alone() -> None:
    for name, script in all_scripts().items():
        for line in script.splitlines():
            if re.search(r"(?<![\w-])chown\s", line) and not line.strip().startswith("#"):
                assert "chown -h " in line, (name, line)


def test_the_teardown_context_renders_what_the_full_context_renders() -> None:
    """Teardown renders from the namespace, name and recorded domain alone (issue 19): whatever else a spec
    said (source, ACME contact, apps, build) never reaches teardown-host.sh."""
    full = dataclasses.replace(context("team", "shop"), apps=("forum-core",), api_port=4000,
                               acme_server="https://acme.test/dir")

    alone = HostContext.for_teardown("team", "shop", full.domain)

    assert render_script("teardown-host", alone) == render_script("teardown-host", full)
    assert (alone.app_user, alone.base_dir, alone.state_dir) == (full.app_user, full.base_dir, full.state_dir)
