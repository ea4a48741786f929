"""``spec.build``: how the repository is built, and how its API's health is asked.

Owns: the pydantic models of ``spec.build`` (:class:`BuildSpec` with its site, API and health parts,
mirroring the CRD), the value patterns their fields must match and the least memory a build needs.
The defaults are O4O's (Renagang21/o4o-platform at main); forks say otherwise in the spec. Purely
computational: no I/O, no Kopf, no clients, and it imports nothing of the operator but ``spec_install``
(``models`` builds on it and re-exports its names; import them from there).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from o4o_operator.spec_install import ADMIN_COMMAND_DEFAULT, MAX_WORDS, DeclaredWord


class _BuildModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    def to_body(self) -> dict[str, Any]:
        """The camelCase dict for the Kubernetes API, without unset optionals."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


PACKAGE_NAME_PATTERN = r"^(@[a-z0-9][a-z0-9_~-]*(\.[a-z0-9_~-]+)*/)?[a-z0-9][a-z0-9_~-]*(\.[a-z0-9_~-]+)*$"
"""An npm package name: lowercase, an optional scope, dots only between other characters (so never a
pnpm filter selector such as ``...``, ``{dir}``, ``!`` or ``*``)."""
SCRIPT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9:._-]*$"
"""A package.json script name such as ``build`` or ``build:api``."""
RELATIVE_PATH_PATTERN = r"^[A-Za-z0-9_@+-][A-Za-z0-9._@+-]*(/[A-Za-z0-9_@+-][A-Za-z0-9._@+-]*)*$"
"""A path inside the repository: relative, plain characters, no empty, ``.`` or ``..`` segment."""
INSTALL_FLAG_PATTERN = r"^--[a-z][a-z0-9-]*(=[A-Za-z0-9._/@:+-]+)?$"
"""One long option of ``pnpm install``, e.g. ``--frozen-lockfile`` or ``--network-concurrency=4``."""
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
COMMAND_WORD_PATTERN = r"^[A-Za-z0-9_@%+=:,./-]+$"
"""One word of a command run on the server (shell-quoted when rendered)."""
URL_PATH_PATTERN = r"^/[A-Za-z0-9._~/-]*$"
"""A URL path such as ``/api/health``: no query, no spaces, nothing nginx or a shell would read."""
BODY_FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$"
"""A dotted path into a JSON body, such as ``database.status``."""
HEALTH_VALUE_PATTERN = r"^[A-Za-z0-9_.:-]+$"
"""The value a health body's field must hold, such as ``healthy``."""
EXPORT_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""A JavaScript module's export, such as ``AppDataSource`` (``default`` for the default export)."""
DATA_SOURCE_BUILD_DEFAULT = ("../../node_modules/.bin/tsup", "src/database/connection.ts", "--out-dir",
                             "dist/o4o-bootstrap")
"""O4O's: its ``build:api`` (tsup) bundles only its entry points, and Node cannot load the ``tsc`` output of its
entities (workspace packages exported as TypeScript sources), so its data source is bundled with upstream's own
tsup configuration (externals, decorator metadata) into a directory of its own."""
MAX_BUILD_VALUE = 214
MAX_ENV_VALUE = 1024

BUILD_RAM_GB = 2.0
"""The least memory a Lightsail bundle needs to build O4O (``tsc`` for the API peaks at about 1.6 GB)."""


def _matching(pattern: str, what: str, max_length: int = MAX_BUILD_VALUE, *,
              allow_empty: bool = False) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if allow_empty and value == "":
            return value
        if len(value) > max_length or not compiled.fullmatch(value):
            raise ValueError(f"must be {what} (at most {max_length} characters)")
        return value

    return AfterValidator(check)


PackageName = Annotated[str, _matching(PACKAGE_NAME_PATTERN, "an npm package name such as @o4o/api-server")]
ScriptName = Annotated[str, _matching(SCRIPT_NAME_PATTERN, "a package.json script name such as build:api", 100)]
OptionalScriptName = Annotated[str, _matching(SCRIPT_NAME_PATTERN, "empty or a package.json script name such as "
                                              "build:api", 100, allow_empty=True)]
RelativePath = Annotated[str, _matching(RELATIVE_PATH_PATTERN, "a relative path of plain characters without "
                                        "'.' or '..' segments, such as apps/main-site/dist", 255)]
InstallFlag = Annotated[str, _matching(INSTALL_FLAG_PATTERN, "a long option such as --frozen-lockfile", 100)]
EnvName = Annotated[str, _matching(ENV_NAME_PATTERN, "an environment variable name such as VITE_API_URL", 100)]
OptionalEnvName = Annotated[str, _matching(ENV_NAME_PATTERN, "empty or an environment variable name such as "
                                           "VITE_API_URL", 100, allow_empty=True)]
CommandWord = Annotated[str, _matching(COMMAND_WORD_PATTERN, "a word of plain characters such as dist/migrate.js",
                                       255)]
ExportName = Annotated[str, _matching(EXPORT_NAME_PATTERN, "a JavaScript export name such as AppDataSource", 100)]
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _env_value(value: str) -> str:
    if len(value) > MAX_ENV_VALUE or _CONTROL_CHARACTERS.search(value):
        raise ValueError(f"must be at most {MAX_ENV_VALUE} characters without control characters")
    return value


EnvValue = Annotated[str, AfterValidator(_env_value)]


class SiteBuildSpec(_BuildModel):
    """The static main site: a workspace package built with its workspace dependencies."""

    package: PackageName = "@o4o/main-site-nextgen"
    build_script: ScriptName = "build"
    """Run as ``pnpm --filter "<package>..." run <buildScript>``: the package and its dependencies."""
    output_dir: RelativePath = "apps/main-site/dist"
    """From the repository root; must hold ``index.html`` after the build. nginx serves it."""
    api_url_variable: OptionalEnvName = "VITE_API_URL"
    """Set to ``https://<domain>`` at build time (O4O's client appends ``/api/v1/...``); empty: not set."""
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    """More build-time variables (not secrets: they are baked into public files)."""


class DataSourceSpec(_BuildModel):
    """The API's TypeORM ``DataSource`` (its entities, its migrations and their table), which the database's
    bootstrap ``synchronize`` loads from the release's API directory. The defaults are O4O's."""

    module: RelativePath = "dist/o4o-bootstrap/connection.js"
    """From ``directory``: the compiled module (CommonJS or ES) that exports the data source."""
    export: ExportName = "AppDataSource"
    """The export holding the ``DataSource`` (``default`` for the default export)."""
    build_command: tuple[CommandWord, ...] = Field(default=DATA_SOURCE_BUILD_DEFAULT, max_length=16)
    """Run first, once, in ``directory`` (with the .env loaded), when the build leaves no ``module``; empty: none."""


class ApiBuildSpec(_BuildModel):
    """The API server: a workspace package, built with its dependencies, then bundled."""

    package: PackageName = "@o4o/api-server"
    directory: RelativePath = "apps/api-server"
    build_script: ScriptName = "build"
    """Run as ``pnpm --filter "<package>..." run <buildScript>``: the package and its dependencies."""
    bundle_script: OptionalScriptName = "build:api"
    """Then ``pnpm --filter <package> run <bundleScript>`` (O4O's tsup bundle); empty: no bundle step."""
    entry_point: RelativePath = "dist/main.js"
    """From ``directory``; PM2 runs it. Must exist after the build."""
    migrate_command: tuple[CommandWord, ...] = Field(default=("node", "dist/migrate.js"), min_length=1,
                                                     max_length=16)
    """Run in ``directory`` of the new release, with the instance's .env, before traffic switches to it."""
    keep_across_bundle: tuple[RelativePath, ...] = Field(default=("dist/database",), max_length=16)
    """From ``directory``: kept from the build step across the bundle step, which cleans ``dist`` (O4O's
    tsup bundle wipes the tsc-built ``dist/database/migrations`` that ``dist/migrate.js`` reads)."""
    uploads_dir: RelativePath = "public/uploads"
    """From ``directory``: where the API writes uploads (O4O: ``process.cwd()/public/uploads``). Each
    release links it to the instance's shared uploads directory, which nginx serves at ``/uploads/``."""

    admin_command: tuple[DeclaredWord, ...] = Field(default=ADMIN_COMMAND_DEFAULT, min_length=1,
                                                    max_length=MAX_WORDS)
    """Creates the operator's admin account once, in ``directory`` with the .env loaded (see spec_install)."""
    data_source: DataSourceSpec = Field(default_factory=DataSourceSpec)
    """What ``spec.database.bootstrap`` mode ``synchronize`` makes the schema from and records migrations with."""
    seed_command: tuple[CommandWord, ...] = Field(default=(), max_length=MAX_WORDS)
    """With bootstrap mode ``synchronize``: run once, in ``directory`` with the .env loaded, after the schema is
    made and every migration recorded (the seeds an installation needs); empty: none (O4O has no seed at HEAD
    that runs: its reference data came from migrations)."""


class HealthSpec(_BuildModel):
    """What activation and the drift check ask the API, beside ``/``: O4O answers 200 even without a
    database, so its body's ``database.status`` must say ``healthy`` too."""

    path: Annotated[str, _matching(URL_PATH_PATTERN, "a URL path such as /api/health", 255)] = "/api/health"
    body_field: Annotated[str, _matching(BODY_FIELD_PATTERN, "empty or a dotted JSON field such as "
                                         "database.status", 255, allow_empty=True)] = "database.status"
    """Empty: the status code alone decides."""
    expect: Annotated[str, _matching(HEALTH_VALUE_PATTERN, "a plain value such as healthy", 100)] = "healthy"


class BuildSpec(_BuildModel):
    """How the repository is built. The defaults are O4O's (Renagang21/o4o-platform at main)."""

    install_flags: tuple[InstallFlag, ...] = Field(default=("--frozen-lockfile",), max_length=16)
    """Flags of ``pnpm install``."""
    site: SiteBuildSpec = Field(default_factory=SiteBuildSpec)
    api: ApiBuildSpec = Field(default_factory=ApiBuildSpec)
    health: HealthSpec = Field(default_factory=HealthSpec)
