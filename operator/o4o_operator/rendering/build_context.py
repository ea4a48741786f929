"""The part of a host's context that ``spec.build`` decides: the fields, and their validation again.

Owns: :func:`build_fields` (``spec.build`` to :class:`~o4o_operator.rendering.host_context.HostContext`
fields), :func:`validate_build` (the models' rules checked again on the context, so that a value built
by hand can never break out of a script), and :func:`migrate_script` (the file a ``node <script>``
migration runs, which the API's build must leave behind). Purely computational: no I/O, and nothing
here renders a template or knows a host.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from o4o_operator.errors import InvalidSpecError
from o4o_operator.models import (
    BODY_FIELD_PATTERN,
    COMMAND_WORD_PATTERN,
    ENV_NAME_PATTERN,
    EXPORT_NAME_PATTERN,
    HEALTH_VALUE_PATTERN,
    INSTALL_FLAG_PATTERN,
    PACKAGE_NAME_PATTERN,
    RELATIVE_PATH_PATTERN,
    SCRIPT_NAME_PATTERN,
    URL_PATH_PATTERN,
    BuildSpec,
)
from o4o_operator.spec_install import DECLARED_WORD_PATTERN

_PACKAGE = re.compile(PACKAGE_NAME_PATTERN)
_SCRIPT = re.compile(SCRIPT_NAME_PATTERN)
_RELATIVE = re.compile(RELATIVE_PATH_PATTERN)
_INSTALL_FLAG = re.compile(INSTALL_FLAG_PATTERN)
_ENV_NAME = re.compile(ENV_NAME_PATTERN)
_COMMAND_WORD = re.compile(COMMAND_WORD_PATTERN)
_DECLARED_WORD = re.compile(DECLARED_WORD_PATTERN)
_URL_PATH = re.compile(URL_PATH_PATTERN)
_BODY_FIELD = re.compile(BODY_FIELD_PATTERN)
_HEALTH_VALUE = re.compile(HEALTH_VALUE_PATTERN)
_EXPORT_NAME = re.compile(EXPORT_NAME_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NODE = re.compile(r"^(.*/)?node(js)?$")


class BuildValues(Protocol):
    """What :func:`validate_build` reads (a HostContext)."""

    @property
    def install_flags(self) -> tuple[str, ...]: ...

    @property
    def site_package(self) -> str: ...

    @property
    def admin_command(self) -> tuple[str, ...]: ...

    @property
    def site_build_script(self) -> str: ...

    @property
    def site_dist(self) -> str: ...

    @property
    def site_api_url_variable(self) -> str: ...

    @property
    def site_env(self) -> tuple[tuple[str, str], ...]: ...

    @property
    def api_package(self) -> str: ...

    @property
    def api_dir(self) -> str: ...

    @property
    def api_build_script(self) -> str: ...

    @property
    def api_bundle_script(self) -> str: ...

    @property
    def api_entry(self) -> str: ...

    @property
    def api_migrate_command(self) -> tuple[str, ...]: ...

    @property
    def api_keep_across_bundle(self) -> tuple[str, ...]: ...

    @property
    def api_uploads_dir(self) -> str: ...

    @property
    def api_data_source_module(self) -> str: ...

    @property
    def api_data_source_export(self) -> str: ...

    @property
    def api_data_source_build(self) -> tuple[str, ...]: ...

    @property
    def api_seed_command(self) -> tuple[str, ...]: ...

    @property
    def health_path(self) -> str: ...

    @property
    def health_body_field(self) -> str: ...

    @property
    def health_expect(self) -> str: ...


def build_fields(build: BuildSpec) -> dict[str, Any]:
    """The :class:`HostContext` fields that ``spec.build`` decides, by field name."""
    site, api, health = build.site, build.api, build.health
    return {
        "install_flags": build.install_flags, "site_package": site.package, "site_build_script": site.build_script,
        "site_dist": site.output_dir, "site_api_url_variable": site.api_url_variable,
        "site_env": tuple(sorted(site.env.items())), "api_package": api.package, "api_dir": api.directory,
        "api_build_script": api.build_script, "api_bundle_script": api.bundle_script,
        "api_entry": api.entry_point, "api_migrate_command": api.migrate_command,
        "api_keep_across_bundle": api.keep_across_bundle, "api_uploads_dir": api.uploads_dir,
        "health_path": health.path, "health_body_field": health.body_field, "health_expect": health.expect,
        "admin_command": api.admin_command, "api_data_source_module": api.data_source.module,
        "api_data_source_export": api.data_source.export, "api_data_source_build": api.data_source.build_command,
        "api_seed_command": api.seed_command,
    }


def migrate_script(command: tuple[str, ...]) -> str | None:
    """The script a ``node [options] <script> ...`` migration runs, relative to the API directory; None
    when the command is something else (its file is then not checked after the build)."""
    if not command or not _NODE.fullmatch(command[0]):
        return None
    for word in command[1:]:
        if word.startswith("-"):
            continue
        return word if _RELATIVE.fullmatch(word) else None
    return None


def _overlaps(one: str, other: str) -> bool:
    return one == other or other.startswith(f"{one}/") or one.startswith(f"{other}/")


def validate_build(values: BuildValues) -> None:
    """The same rules as the models' (``spec.build``), again: nothing breaks out of a script."""
    checks: list[tuple[str, str, re.Pattern[str], bool]] = [
        ("spec.build.site.package", values.site_package, _PACKAGE, False),
        ("spec.build.site.buildScript", values.site_build_script, _SCRIPT, False),
        ("spec.build.site.outputDir", values.site_dist, _RELATIVE, False),
        ("spec.build.site.apiUrlVariable", values.site_api_url_variable, _ENV_NAME, True),
        ("spec.build.api.package", values.api_package, _PACKAGE, False),
        ("spec.build.api.directory", values.api_dir, _RELATIVE, False),
        ("spec.build.api.buildScript", values.api_build_script, _SCRIPT, False),
        ("spec.build.api.bundleScript", values.api_bundle_script, _SCRIPT, True),
        ("spec.build.api.entryPoint", values.api_entry, _RELATIVE, False),
        ("spec.build.api.uploadsDir", values.api_uploads_dir, _RELATIVE, False),
        ("spec.build.api.dataSource.module", values.api_data_source_module, _RELATIVE, False),
        ("spec.build.api.dataSource.export", values.api_data_source_export, _EXPORT_NAME, False),
        ("spec.build.health.path", values.health_path, _URL_PATH, False),
        ("spec.build.health.bodyField", values.health_body_field, _BODY_FIELD, True),
        ("spec.build.health.expect", values.health_expect, _HEALTH_VALUE, False),
    ]
    checks += [(f"spec.build.installFlags[{i}]", flag, _INSTALL_FLAG, False)
               for i, flag in enumerate(values.install_flags)]
    checks += [(f"spec.build.api.migrateCommand[{i}]", word, _COMMAND_WORD, False)
               for i, word in enumerate(values.api_migrate_command)]
    checks += [(f"spec.build.api.adminCommand[{i}]", word, _DECLARED_WORD, False)
               for i, word in enumerate(values.admin_command)]
    checks += [(f"spec.build.api.dataSource.buildCommand[{i}]", word, _COMMAND_WORD, False)
               for i, word in enumerate(values.api_data_source_build)]
    checks += [(f"spec.build.api.seedCommand[{i}]", word, _COMMAND_WORD, False)
               for i, word in enumerate(values.api_seed_command)]
    checks += [(f"spec.build.api.keepAcrossBundle[{i}]", path, _RELATIVE, False)
               for i, path in enumerate(values.api_keep_across_bundle)]
    checks += [(f"spec.build.site.env.{name}", name, _ENV_NAME, False) for name, _ in values.site_env]
    for field, value, pattern, may_be_empty in checks:
        if value == "" and may_be_empty:
            continue
        if len(value) > 255 or not pattern.fullmatch(value):
            raise InvalidSpecError(field, f"{value!r} is not allowed here (plain characters only)")
    if not values.api_migrate_command:
        raise InvalidSpecError("spec.build.api.migrateCommand", "needs at least one word")
    built = (values.api_entry, *values.api_keep_across_bundle, migrate_script(values.api_migrate_command) or "")
    for path in built:
        if path and _overlaps(values.api_uploads_dir, path):
            raise InvalidSpecError("spec.build.api.uploadsDir",
                                   f"{values.api_uploads_dir!r} overlaps {path!r}, which the build writes")
    for name, value in values.site_env:
        if _CONTROL.search(value):
            raise InvalidSpecError(f"spec.build.site.env.{name}", "must not contain control characters")
