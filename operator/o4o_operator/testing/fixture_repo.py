"""A tiny O4O-shaped git repository for tests: a pnpm workspace with a main site and an API server.

Owns: the fixture's layout, O4O's names and shape (``@o4o/main-site-nextgen`` in ``apps/main-site``, whose build
writes ``dist/index.html`` from ``public/index.html`` with ``$VITE_API_URL`` baked in; ``@o4o/api-server`` in
``apps/api-server``, whose ``build`` needs its workspace dependency ``@o4o/types`` (``packages/types``) built
first, as O4O's ``tsc`` build does, and whose ``build:api`` writes the bundle ``dist/main.js``, a plain Node.js
HTTP server on ``$PORT``, and ``dist/migrate.js``), O4O's toolchain pins (``.nvmrc`` and ``engines.node``
22.18.0, pnpm 10.25.0 in devDependencies and ``volta``), a ``pnpm-lock.yaml`` that real pnpm 10.25.0 accepts
with ``--frozen-lockfile``, package scripts that are plain ``sh`` so the sandbox's pnpm shim and real pnpm run
them alike (the ``plain`` flavour, the default), choosing the flavour (``o4o``, real TypeScript and
PostgreSQL, lives in :mod:`o4o_operator.testing.fixture_o4o`), and committing to it. Runs the real ``git``
with a private configuration; touches nothing outside the given directory.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

_GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "O4O Fixture",
    "GIT_AUTHOR_EMAIL": "fixture@example.invalid",
    "GIT_COMMITTER_NAME": "O4O Fixture",
    "GIT_COMMITTER_EMAIL": "fixture@example.invalid",
}


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, **_GIT_ENV}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def _package(name: str, scripts: Mapping[str, str], dependencies: Mapping[str, str] | None = None) -> str:
    manifest: dict[str, object] = {"name": name, "version": "1.0.0", "private": True, "scripts": dict(scripts)}
    if dependencies:
        manifest["dependencies"] = dict(dependencies)
    return json.dumps(manifest, indent=2) + "\n"


PNPM_VERSION = "10.25.0"
SITE_PACKAGE = "@o4o/main-site-nextgen"
API_PACKAGE = "@o4o/api-server"
TYPES_PACKAGE = "@o4o/types"
"""A workspace package both apps depend on: it must be built before them (``pnpm --filter "<app>..."``)."""
NODE_VERSION = "22.18.0"
SITE_PAGE = "apps/main-site/public/index.html"
API_MAIN = "apps/api-server/src/main.js"
SITE_MARKER = "O4O fixture site"

# Written by pnpm 10.25.0 for the manifests below (``pnpm install`` in a copy); only dependencies matter to it,
# so scripts may change freely. pnpm itself is the one locked package, pinned as O4O pins it.
_PNPM_INTEGRITY = "sha512-XoJjkCevN8+DIGG8xtY5whljRIjg8rrr54UCink957Ul/80/f/V09emGBlTgmP6FK6isXdXO/hdn0joCCpL1AQ=="
PNPM_LOCK = f"""lockfileVersion: '9.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

importers:

  .:
    devDependencies:
      pnpm:
        specifier: {PNPM_VERSION}
        version: {PNPM_VERSION}

  apps/api-server:
    dependencies:
      '@o4o/types':
        specifier: workspace:*
        version: link:../../packages/types

  apps/main-site:
    dependencies:
      '@o4o/types':
        specifier: workspace:*
        version: link:../../packages/types

  packages/types: {{}}

packages:

  pnpm@{PNPM_VERSION}:
    resolution: {{integrity: {_PNPM_INTEGRITY}}}
    engines: {{node: '>=18.12'}}
    hasBin: true

snapshots:

  pnpm@{PNPM_VERSION}: {{}}
"""


def api_main(greeting: str = "ok", database_status: str = "healthy") -> str:
    """A plain Node.js HTTP server on $PORT: ``/api/health`` answers 200 with JSON, the rest 404.

    It has no database: its health body says ``database.status`` is ``database_status`` in O4O's shape,
    which is what ``spec.build.health`` reads (the o4o flavour reports a real one)."""
    return (
        "'use strict';\n"
        "const http = require('node:http');\n"
        "const port = Number(process.env.PORT || 3001);\n"
        "http.createServer((req, res) => {\n"
        "  const healthy = req.url === '/api/health' || req.url === '/health';\n"
        "  const body = JSON.stringify(healthy\n"
        f"    ? {{status: {json.dumps(greeting)}, uptime: process.uptime(), pid: process.pid,\n"
        f"       database: {{status: {json.dumps(database_status)}}}}}\n"
        "    : {error: 'not found', path: req.url});\n"
        "  res.writeHead(healthy ? 200 : 404, {'content-type': 'application/json'});\n"
        "  res.end(body);\n"
        "}).listen(port, '127.0.0.1', () => console.log(`api listening on 127.0.0.1:${port}`));\n")


# An API whose process exits as it starts (a broken release: its health check must fail).
CRASHING_API_MAIN = "'use strict';\nconsole.error('fatal: refusing to start');\nprocess.exit(1);\n"


API_URL_PLACEHOLDER = "__O4O_API_URL__"
"""The site's build replaces it with ``$VITE_API_URL``, as Vite bakes ``import.meta.env`` into the bundle."""


def site_page(marker: str = SITE_MARKER) -> str:
    return (f"<!doctype html>\n<title>O4O</title>\n<meta name=\"o4o-api-url\" content=\"{API_URL_PLACEHOLDER}\">\n"
            f"<h1>{marker}</h1>\n")


_NEEDS_TYPES = ("test -f ../../packages/types/dist/index.js || "
                "{ echo 'error TS2307: Cannot find module @o4o/types: build it first' >&2; exit 2; }")


FILES: Mapping[str, str] = {
    "package.json": json.dumps({"name": "o4o-platform", "private": True, "engines": {"node": f">={NODE_VERSION}"},
                                "scripts": {"build": "pnpm -r build"},
                                "devDependencies": {"pnpm": PNPM_VERSION},
                                "volta": {"node": NODE_VERSION, "pnpm": PNPM_VERSION}}, indent=2) + "\n",
    ".nvmrc": f"{NODE_VERSION}\n",
    "pnpm-workspace.yaml": "packages:\n  - 'apps/*'\n  - 'packages/*'\n",
    "pnpm-lock.yaml": PNPM_LOCK,
    ".gitignore": "node_modules/\ndist/\n",
    "packages/types/package.json": _package(TYPES_PACKAGE, {
        "build": "mkdir -p dist && echo 'export const platform = \"o4o\";' > dist/index.js"}),
    "apps/main-site/package.json": _package(SITE_PACKAGE, {
        "build": f"{_NEEDS_TYPES}; mkdir -p dist && "
                 f"sed \"s#{API_URL_PLACEHOLDER}#${{VITE_API_URL:-}}#g\" public/index.html > dist/index.html"},
        {TYPES_PACKAGE: "workspace:*"}),
    SITE_PAGE: site_page(),
    "apps/api-server/package.json": _package(API_PACKAGE, {
        "build": f"{_NEEDS_TYPES}; mkdir -p dist/database && echo compiled > dist/database/.tsc",
        "build:api": "mkdir -p dist && cp src/main.js dist/main.js && cp src/migrate.js dist/migrate.js",
        "apps:install": "sh scripts/app.sh install",
        "apps:pages": "sh scripts/app.sh pages",
        "apps:remove": "sh scripts/app.sh remove",
        "seed": "sh scripts/app.sh seed",
    }, {TYPES_PACKAGE: "workspace:*"}),
    API_MAIN: api_main(),
    "apps/api-server/src/migrate.js": "'use strict';\nconsole.log('no migrations to run');\n",
    "apps/api-server/scripts/app.sh": 'echo "app $*"\n',
}


def commit_files(repo: Path, files: Mapping[str, str], message: str) -> str:
    """Write the files, commit them, and return the new commit's SHA."""
    for relative, content in files.items():
        target = repo / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    _git(repo, "add", "--all")
    _git(repo, "commit", "--quiet", "--no-gpg-sign", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def commit_to_branch(repo: Path, branch: str, files: Mapping[str, str], message: str) -> str:
    """Commit the files on ``branch`` (made from HEAD if new), then return to the branch HEAD was on."""
    previous = _git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    exists = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
                            capture_output=True, check=False).returncode == 0
    _git(repo, "switch", "--quiet", *(() if exists else ("--create",)), branch)
    try:
        return commit_files(repo, files, message)
    finally:
        _git(repo, "switch", "--quiet", previous)


def tag_commit(repo: Path, tag: str, commit: str) -> None:
    """A lightweight tag ``tag`` on ``commit``."""
    _git(repo, "tag", tag, commit)


def init_repo(path: Path) -> None:
    """An empty repository at ``path`` (made if missing) on branch ``main``."""
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "--quiet", "--initial-branch=main")


PLAIN = "plain"
O4O = "o4o"
FLAVOURS = (PLAIN, O4O)


def make_fixture_repo(path: Path, flavour: str = PLAIN) -> tuple[Path, str]:
    """A repository with the O4O layout on branch ``main``; returns its path and first commit.

    ``plain`` (the default, for the shim sandbox): package scripts in plain ``sh``, nothing to install.
    ``o4o``: real TypeScript, PostgreSQL and the admin apps API (:mod:`o4o_operator.testing.fixture_o4o`).
    """
    if flavour == O4O:
        from o4o_operator.testing.fixture_o4o import make_o4o_fixture_repo  # late: it imports this module
        return make_o4o_fixture_repo(path)
    if flavour != PLAIN:
        raise ValueError(f"unknown fixture flavour {flavour!r}; known: {', '.join(FLAVOURS)}")
    init_repo(path)
    return path, commit_files(path, FILES, "Initial O4O fixture")
