"""spec.build and the O4O defaults in the models: what a spec that says nothing deploys, and what is refused."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from o4o_operator.models import BUILD_RAM_GB, DeploymentInstanceSpec, LightsailSpec

MINIMAL: dict[str, Any] = {
    "domain": "shop.example.com",
    "provider": {"existing": {"host": "198.51.100.7"}},
    "ssh": {"privateKeySecretRef": {"name": "shop-ssh", "key": "ssh-privatekey"}},
    "tls": {"email": "ops@example.com"},
}


def spec_with(path: str, value: Any) -> dict[str, Any]:
    body: dict[str, Any] = {**MINIMAL, "build": {"site": {}, "api": {}}}
    *parents, leaf = path.split(".")
    node = body
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return body


def test_a_spec_that_says_nothing_deploys_o4o_from_its_public_repository() -> None:
    spec = DeploymentInstanceSpec.model_validate(MINIMAL)
    assert spec.source.repository == "https://github.com/Renagang21/o4o-platform.git"
    assert spec.source.revision == "main"
    assert spec.to_body()["build"] == {
        "installFlags": ["--frozen-lockfile"],
        "site": {"package": "@o4o/main-site-nextgen", "buildScript": "build", "outputDir": "apps/main-site/dist",
                 "apiUrlVariable": "VITE_API_URL", "env": {}},
        "api": {"package": "@o4o/api-server", "directory": "apps/api-server", "buildScript": "build",
                "bundleScript": "build:api", "entryPoint": "dist/main.js",
                "migrateCommand": ["node", "dist/migrate.js"], "keepAcrossBundle": ["dist/database"],
                "uploadsDir": "public/uploads",
                "adminCommand": ["npx", "tsx", "src/scripts/create-admin-user.ts", "--email=${O4O_ADMIN_EMAIL}",
                                 "--password=${O4O_ADMIN_PASSWORD}"],
                "dataSource": {"module": "dist/o4o-bootstrap/connection.js", "export": "AppDataSource",
                               "buildCommand": ["../../node_modules/.bin/tsup", "src/database/connection.ts",
                                                "--out-dir", "dist/o4o-bootstrap"]},
                "seedCommand": []},
        "health": {"path": "/api/health", "bodyField": "database.status", "expect": "healthy"},
    }


def test_the_default_bundle_can_build_o4o() -> None:
    assert LightsailSpec(region="ap-northeast-2").bundle_id == "small_3_0"
    assert BUILD_RAM_GB == 2.0


def test_a_fork_says_how_it_builds() -> None:
    spec = DeploymentInstanceSpec.model_validate(spec_with("build", {
        "installFlags": ["--frozen-lockfile", "--prefer-offline"],
        "site": {"package": "@acme/web", "outputDir": "web/build", "apiUrlVariable": "", "env": {"VITE_BRAND": "A"}},
        "api": {"package": "acme-api", "directory": "server", "bundleScript": "", "entryPoint": "out/index.js",
                "migrateCommand": ["node", "out/migrate.js", "--all"]},
    }))
    assert spec.build.site.package == "@acme/web" and spec.build.site.build_script == "build"
    assert spec.build.api.bundle_script == "" and spec.build.api.migrate_command[-1] == "--all"


@pytest.mark.parametrize(("path", "value", "location"), [
    ("build.site.package", "@o4o/main-site-nextgen...", ("build", "site", "package")),
    ("build.site.package", "$(reboot)", ("build", "site", "package")),
    ("build.site.package", "{apps/main-site}", ("build", "site", "package")),
    ("build.site.buildScript", "build; reboot", ("build", "site", "buildScript")),
    ("build.site.outputDir", "apps/../../../etc", ("build", "site", "outputDir")),
    ("build.site.outputDir", "/var/www", ("build", "site", "outputDir")),
    ("build.site.env", {"VITE_X": "line\nbreak"}, ("build", "site", "env", "VITE_X")),
    ("build.site.env", {"NOT-A-NAME": "x"}, ("build", "site", "env", "NOT-A-NAME", "[key]")),
    ("build.api.package", "@o4o/*", ("build", "api", "package")),
    ("build.api.buildScript", "", ("build", "api", "buildScript")),
    ("build.api.bundleScript", "build api", ("build", "api", "bundleScript")),
    ("build.api.entryPoint", "dist/../../main.js", ("build", "api", "entryPoint")),
    ("build.api.migrateCommand", [], ("build", "api", "migrateCommand")),
    ("build.api.migrateCommand", ["node", "`id`"], ("build", "api", "migrateCommand", 1)),
    ("build.installFlags", ["--frozen-lockfile", "-r"], ("build", "installFlags", 1)),
    ("build.api.keepAcrossBundle", ["dist/database", "../../etc"], ("build", "api", "keepAcrossBundle", 1)),
    ("build.api.uploadsDir", "/var/www/uploads", ("build", "api", "uploadsDir")),
    ("build.api.uploadsDir", "public/../../uploads", ("build", "api", "uploadsDir")),
    ("build.health.path", "api/health", ("build", "health", "path")),
    ("build.health.path", "/api/health;return", ("build", "health", "path")),
    ("build.health.bodyField", "database..status", ("build", "health", "bodyField")),
    ("build.health.bodyField", "$(id)", ("build", "health", "bodyField")),
    ("build.health.expect", "", ("build", "health", "expect")),
    ("build.health.expect", "healthy now", ("build", "health", "expect")),
])
def test_build_values_that_could_break_out_are_refused_naming_the_field(path: str, value: Any,
                                                                         location: tuple[Any, ...]) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        DeploymentInstanceSpec.model_validate(spec_with(path, value))
    assert caught.value.errors()[0]["loc"] == location
