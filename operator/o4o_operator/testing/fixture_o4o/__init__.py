"""The ``o4o`` flavour of the fixture repository: O4O's contract for real, small enough to build in a minute.

Owns: the flavour's files (the literal tree under ``tree/``, read as it is, plus the site page and
``.gitignore``), its names (tables, apps, the refusal text, the admin role), and the commits a test makes to it
(a migration that fails, a new migration). What the tree holds, all compiled by real ``tsc`` from TypeScript,
with ``typescript`` 5.4.5 and ``pg`` ^8.16.3 (O4O's own pins) as the only registry packages and a
``pnpm-lock.yaml`` written by pnpm 10.25.0 (regenerate with ``python -m o4o_operator.testing.fixture_o4o.lockfile``):

- ``@o4o/types`` (``packages/types``), which both apps import: ``pnpm --filter @o4o/api-server run build`` alone
  fails with TS2307, as O4O's does, until it is built (``--filter "@o4o/api-server..."``);
- ``@o4o/main-site-nextgen`` (``apps/main-site``): ``tsc`` then ``dist/index.html`` with ``$VITE_API_URL`` baked in;
- ``@o4o/api-server`` (``apps/api-server``): ``build`` (``tsc``, all of ``src`` into ``dist``, migrations included
  in ``dist/database/migrations``), then ``build:api``, which like tsup empties ``dist`` first and emits only the
  entry points ``dist/main.js``, ``dist/migrate.js``, ``dist/create-admin.js`` and ``dist/seed.js``; like tsup's
  command line, ``node scripts/bundle.js <entry> --out-dir <dir>`` bundles one more entry (the data source, for
  a bootstrap); ``create-admin`` takes ``--email=... --password=...``. The API answers as O4O's does where the
  operator looks (its words when ``JWT_SECRET`` is missing, ``DB_*``, TLS forced under ``NODE_ENV=production``,
  ``/api/health``'s database status, ``POST /api/v1/auth/login``, ``/api/v1/admin/apps/*`` over
  ``app_registry``); see the sources' headers.
- O4O's database shape: the schema's truth is the entities (``src/database/entities.ts``, with O4O's four entity
  defects), which ``src/database/data-source.ts`` (``AppDataSource``, a stand-in for a TypeORM ``DataSource``)
  synchronizes; the migrations are changes on top of that schema and fail on an empty database; ``dist/seed.js``
  adds the home page and an account whose password is ``SEED_BOOTSTRAP_PASSWORD`` (refusing to run without one).
  So a fresh database needs ``spec.database.bootstrap`` mode ``synchronize`` with :data:`BUILD_API`.

Must not: be imported by shipped code; touch anything outside the directory it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from o4o_operator.testing.fixture_repo import (
    SITE_MARKER,
    SITE_PAGE,
    commit_files,
    commit_to_branch,
    init_repo,
    site_page,
)

TREE = Path(__file__).with_name("tree")
"""The flavour's files as they are committed (``tree/<path>``), lockfile included."""

REGISTRY_PACKAGES = ("pg", "typescript")
API_DIR = "apps/api-server"
API_MAIN_TS = f"{API_DIR}/src/main.ts"
MIGRATIONS_DIR = f"{API_DIR}/src/database/migrations"
BUILT_MIGRATIONS_DIR = f"{API_DIR}/dist/database/migrations"
"""Where ``node dist/migrate.js`` reads migrations from; ``build`` writes them there and ``build:api`` wipes them."""
KEEP_ACROSS_BUNDLE = "dist/database"
HEALTH_PATH = "/api/health"
LOGIN_PATH = "/api/v1/auth/login"
APPS_PATH = "/api/v1/admin/apps"
MIGRATED_TABLE = "fixture_pages"
"""Made from the entities (mode synchronize); the home page in it comes from the seed."""
MIGRATIONS_TABLE = "typeorm_migrations"
FIXTURE_MIGRATIONS = ("AddFixturePagesSummary1700000000001", "IndexAppRegistryStatus1700000000002")
"""The tree's migrations, each a change on top of the entities' schema: on an empty database the first fails
with :data:`EMPTY_DATABASE_FAILURE`."""
EMPTY_DATABASE_FAILURE = 'relation "fixture_pages" does not exist'
ENTITY_TABLES = ("public.users", "public.role_assignments", "public.app_registry", "public.fixture_pages",
                 "catalog.fixture_notes")
DATA_SOURCE_DIR = "dist/o4o-bootstrap"
DATA_SOURCE = {"module": f"{DATA_SOURCE_DIR}/data-source.js", "export": "AppDataSource",
               "buildCommand": ["node", "scripts/bundle.js", "src/database/data-source.ts", "--out-dir",
                                DATA_SOURCE_DIR]}
"""``spec.build.api.dataSource`` for this flavour: its data source bundled as O4O's default bundles O4O's."""
SEED_COMMAND = ("node", "dist/seed.js")
SEED_ACCOUNT = "seed-admin@fixture.invalid"
"""Made by the seed, with ``SEED_BOOTSTRAP_PASSWORD`` as its password."""
APP_REGISTRY_TABLE = "app_registry"
ADMIN_ROLE = "platform:super_admin"
ADMIN_COMMAND = ("node", "dist/create-admin.js", "--email=${O4O_ADMIN_EMAIL}", "--password=${O4O_ADMIN_PASSWORD}")
"""``spec.build.api.adminCommand`` for this flavour: its ``build:api`` bundles ``create-admin`` into ``dist``
(O4O itself runs ``npx tsx src/scripts/create-admin-user.ts``, the operator's default)."""
BUILD_API = {"adminCommand": list(ADMIN_COMMAND), "dataSource": DATA_SOURCE, "seedCommand": list(SEED_COMMAND)}
"""``spec.build.api`` for this flavour (with ``spec.database.bootstrap: {mode: synchronize}``)."""
KNOWN_APP = "forum-core"
"""In the market, with a manifest: install answers ``{ok: true}`` and the row is ``active``."""
REFUSED_APP = "signage"
"""In the market, without a manifest: install answers 500 ``INSTALL_FAILED`` with :data:`REFUSAL`."""
REFUSAL = f"No manifest found for app: {REFUSED_APP}"
MISSING_JWT_SECRET = "Missing required environment variables: JWT_SECRET"  # noqa: S105 (O4O's words)
BROKEN_MIGRATION = f"{MIGRATIONS_DIR}/1700000000999-BrokenFixtureMigration.ts"
CRASHING_API_MAIN_TS = "console.error('fatal: refusing to start');\nprocess.exit(1);\n"
"""A ``src/main.ts`` that compiles and exits as it starts (a broken release: its health check must fail)."""

_GITIGNORE = "node_modules/\ndist/\n"


def o4o_files(marker: str = SITE_MARKER) -> dict[str, str]:
    """The flavour's files by repository path: the tree, the site page (showing ``marker``) and ``.gitignore``."""
    files = {path.relative_to(TREE).as_posix(): path.read_text()
             for path in sorted(TREE.rglob("*")) if path.is_file() and "__pycache__" not in path.parts}
    files[SITE_PAGE] = site_page(marker)
    files[".gitignore"] = _GITIGNORE
    return files


def make_o4o_fixture_repo(path: Path) -> tuple[Path, str]:
    """A repository of the ``o4o`` flavour on branch ``main``; returns its path and first commit."""
    init_repo(path)
    return path, commit_files(path, o4o_files(), "Initial O4O fixture (o4o flavour)")


def migration_source(class_name: str, timestamp: int, statements: tuple[str, ...]) -> str:
    """A TypeORM-shaped migration class ``<class_name><timestamp>`` whose ``up`` runs ``statements`` in order."""
    name = f"{class_name}{timestamp}"
    body = "".join(f"    await queryRunner.query({_ts_string(statement)});\n" for statement in statements)
    return (f"export class {name} {{\n  name = '{name}';\n\n"
            "  async up(queryRunner: { query(sql: string, params?: unknown[]): Promise<unknown> }): Promise<void> {\n"
            f"{body}  }}\n}}\n")


def _ts_string(text: str) -> str:
    return "`" + text.replace("\\", "\\\\").replace("`", "\\`").replace("${", "\\${") + "`"


def commit_migration(repo: Path, class_name: str, timestamp: int, statements: tuple[str, ...], message: str,
                     branch: str | None = None) -> str:
    """Commit a new migration (on ``branch`` if given, HEAD staying where it is); returns the commit."""
    files: Mapping[str, str] = {
        f"{MIGRATIONS_DIR}/{timestamp}-{class_name}.ts": migration_source(class_name, timestamp, statements)}
    if branch is None:
        return commit_files(repo, files, message)
    return commit_to_branch(repo, branch, files, message)


def commit_broken_migration(repo: Path, branch: str | None = None,
                            message: str = "A migration that fails (fixture)") -> str:
    """Commit a migration that compiles but fails in PostgreSQL, so ``node dist/migrate.js`` exits 1.

    Its first statement creates a table and its second fails, so the test can also see that the migration's
    transaction was rolled back (``fixture_broken`` must not exist afterwards).
    """
    files = {BROKEN_MIGRATION: migration_source("BrokenFixtureMigration", 1700000000999, (
        'CREATE TABLE "fixture_broken" ("id" SERIAL PRIMARY KEY)',
        'ALTER TABLE "no_such_table" ADD COLUMN "x" integer'))}
    if branch is None:
        return commit_files(repo, files, message)
    return commit_to_branch(repo, branch, files, message)
