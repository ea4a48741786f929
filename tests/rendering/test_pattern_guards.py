"""Every pattern that guards rendering or input matches the whole value: a trailing newline is refused.

Python's ``re.match(r"^...$")`` accepts ``"x\\n"`` (``$`` matches before a final newline), and such a
value once reached a rendered script as a ``domain``. Each guard is called here with a value it accepts
and the same value with a newline appended; and the source keeps no ``.match(`` that could slip back.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest

from o4o_dashboard.cli import _namespace
from o4o_operator.errors import InvalidSpecError
from o4o_operator.markers import parse_failure, parse_results
from o4o_operator.models import DeploymentInstanceSpec
from o4o_operator.models_database import DatabaseSecretRef
from o4o_operator.providers.ssh_session import _wrap, owner_upload_command
from o4o_operator.rendering.build_context import migrate_script
from o4o_operator.rendering.env_values import database_identifier, external_database
from o4o_operator.rendering.host_context import HostContext
from o4o_operator.spec_install import check_word

REPO = Path(__file__).resolve().parents[2]


def _host(**changes: Any) -> HostContext:
    fields: dict[str, Any] = {"domain": "shop.example.com", "instance_name": "shop", "namespace": "team-a",
                              "repository": "https://example.com/o4o.git", "revision": "main",
                              "tls_email": "ops@example.com"}
    return HostContext(**{**fields, **changes})


def _spec(path: str, value: Any) -> DeploymentInstanceSpec:
    spec: dict[str, Any] = {
        "domain": "shop.example.com", "provider": {"existing": {"host": "198.51.100.7"}},
        "ssh": {"privateKeySecretRef": {"name": "k", "key": "k"}}, "tls": {"email": "ops@example.com"},
        "env": [{"name": "app-env"}],
        "postInstall": [{"name": "seed", "command": ["node", "seed.js"]}, {"name": "title",
                                                                            "request": {"path": "/api/v1/x"}}],
    }
    *parents, leaf = path.split(".")
    node: Any = spec
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return DeploymentInstanceSpec.model_validate(spec)


EXTERNAL = {"host": "db.example.net", "port": "5432", "name": "shop", "user": "app", "password": "p-0123456789",
            "sslMode": "require"}

# (what, a call with the accepted value, the same with a trailing newline: value -> raises)
GUARDS: list[tuple[str, str, Callable[[str], object]]] = [
    ("host domain", "shop.example.com", lambda v: _host(domain=v)),
    ("host instance name", "shop", lambda v: _host(instance_name=v)),
    ("host namespace", "team-a", lambda v: _host(namespace=v)),
    ("host app user", "o4o-team-a-shop", lambda v: _host(app_user=v)),
    ("host web group", "www-data", lambda v: _host(web_group=v)),
    ("host commit", "c" * 40, lambda v: _host(commit=v)),
    ("host node version", "22.18.0", lambda v: _host(node_version=v)),
    ("host node mirror", "https://nodejs.org/dist", lambda v: _host(node_mirror=v)),
    ("host base dir", "/srv/o4o/team-a.shop", lambda v: _host(base_dir=v)),
    ("host app", "forum", lambda v: _host(apps=(v,))),
    ("host site package", "@o4o/site", lambda v: _host(site_package=v)),
    ("host site script", "build", lambda v: _host(site_build_script=v)),
    ("host site output", "apps/site/dist", lambda v: _host(site_dist=v)),
    ("host site api url variable", "VITE_API_URL", lambda v: _host(site_api_url_variable=v)),
    ("host site env name", "SITE_NAME", lambda v: _host(site_env=((v, "x"),))),
    ("host api directory", "apps/api", lambda v: _host(api_dir=v)),
    ("host api bundle script", "build:api", lambda v: _host(api_bundle_script=v)),
    ("host api entry", "dist/main.js", lambda v: _host(api_entry=v)),
    ("host uploads", "public/uploads", lambda v: _host(api_uploads_dir=v)),
    ("host health path", "/api/health", lambda v: _host(health_path=v)),
    ("host health field", "database.status", lambda v: _host(health_body_field=v)),
    ("host health value", "healthy", lambda v: _host(health_expect=v)),
    ("host install flag", "--frozen-lockfile", lambda v: _host(install_flags=(v,))),
    ("host migrate word", "dist/migrate.js", lambda v: _host(api_migrate_command=("node", v))),
    ("host admin word", "--email=${O4O_ADMIN_EMAIL}", lambda v: _host(admin_command=("npx", v))),
    ("database identifier", "o4o-team-a-shop", database_identifier),
    ("external database port", "5432", lambda v: external_database({**EXTERNAL, "port": v}, "db")),
    ("ssh environment name", "O4O_DB_NAME", lambda v: _wrap("true", {v: "x"})),
    ("upload owner", "o4o-team-a-shop", lambda v: owner_upload_command("/srv/o4o/x/.env", 0o600, v, "t")),
    ("declared word", "--password=${O4O_ADMIN_PASSWORD}", check_word),
    ("dashboard namespace", "team-a", _namespace),
    ("spec ssh secret name", "shop-ssh", lambda v: _spec("ssh.privateKeySecretRef.name", v)),
    ("spec ssh secret key", "id_ed25519", lambda v: _spec("ssh.privateKeySecretRef.key", v)),
    ("spec env secret", "app-env", lambda v: _spec("env.0.name", v)),
    ("spec external database secret", "db", lambda v: DatabaseSecretRef(name=v)),
    ("spec database extension", "pg_trgm", lambda v: _spec("database.extensions", [v])),
    ("spec tls email", "ops@example.com", lambda v: _spec("tls.email", v)),
    ("spec site package", "@o4o/site", lambda v: _spec("build.site.package", v)),
    ("spec site output", "apps/site/dist", lambda v: _spec("build.site.outputDir", v)),
    ("spec site env name", "SITE_NAME", lambda v: _spec("build.site.env", {v: "x"})),
    ("spec api script", "build:api", lambda v: _spec("build.api.bundleScript", v)),
    ("spec install flag", "--prefer-offline", lambda v: _spec("build.installFlags", [v])),
    ("spec migrate word", "dist/migrate.js", lambda v: _spec("build.api.migrateCommand", ["node", v])),
    ("spec health path", "/api/health", lambda v: _spec("build.health.path", v)),
    ("spec health field", "database.status", lambda v: _spec("build.health.bodyField", v)),
    ("spec health value", "healthy", lambda v: _spec("build.health.expect", v)),
    ("spec post-install step name", "seed", lambda v: _spec("postInstall.0.name", v)),
    ("spec post-install word", "seed.js", lambda v: _spec("postInstall.0.command", ["node", v])),
    ("spec post-install path", "/api/v1/x", lambda v: _spec("postInstall.1.request.path", v)),
]


@pytest.mark.parametrize(("what", "value", "guard"), GUARDS, ids=[g[0] for g in GUARDS])
def test_a_trailing_newline_is_refused(what: str, value: str, guard: Callable[[str], object]) -> None:
    guard(value)  # accepted as it is
    with pytest.raises((ValueError, InvalidSpecError, pydantic.ValidationError, argparse.ArgumentTypeError)):
        guard(value + "\n")


def test_a_migration_script_with_a_trailing_newline_is_not_the_one_checked() -> None:
    assert migrate_script(("node", "dist/migrate.js")) == "dist/migrate.js"
    assert migrate_script(("node", "dist/migrate.js\n")) is None
    assert migrate_script(("node\n", "dist/migrate.js")) is None


def test_markers_are_whole_lines() -> None:
    assert parse_results(["::o4o::result health=ok\n"]) == {"health": "ok"}
    failure = parse_failure("::o4o::permanent reason=BuildFailed it broke\r\n")
    assert failure is not None and (failure.reason, failure.message) == ("BuildFailed", "it broke")


def test_no_guard_uses_match_which_lets_a_trailing_newline_through() -> None:
    sources = [*(REPO / "operator" / "o4o_operator").rglob("*.py"),
               *(REPO / "dashboard" / "o4o_dashboard").rglob("*.py")]
    found = [f"{path.relative_to(REPO)}:{number}" for path in sources if "testing" not in path.parts
             for number, line in enumerate(path.read_text().splitlines(), start=1)
             if re.search(r"\.match\(", line)]
    assert not found, f"use fullmatch (or \\Z): {found}"
