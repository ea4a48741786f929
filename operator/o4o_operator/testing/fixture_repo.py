"""A tiny O4O-shaped git repository for tests: a pnpm workspace with a main site and an API server.

Owns: the fixture's layout, O4O's names and shape (``@o4o/main-site-nextgen`` in ``apps/main-site``, whose build
writes ``dist/index.html`` from ``public/index.html``; ``@o4o/api-server`` in ``apps/api-server``, whose build
writes ``dist/main.js``, a plain Node.js HTTP server on ``$PORT``), a ``pnpm-lock.yaml`` that real pnpm
10.25.0 accepts with ``--frozen-lockfile`` (pnpm pinned in devDependencies, as O4O pins it), package scripts
that are plain ``sh`` so the sandbox's pnpm shim and real pnpm run them alike, and committing to it.
Runs the real ``git`` with a private configuration; touches nothing outside the given directory.
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


def _package(name: str, scripts: Mapping[str, str]) -> str:
    return json.dumps({"name": name, "version": "1.0.0", "private": True, "scripts": dict(scripts)}, indent=2) + "\n"


PNPM_VERSION = "10.25.0"
SITE_PACKAGE = "@o4o/main-site-nextgen"
API_PACKAGE = "@o4o/api-server"
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

  apps/api-server: {{}}

  apps/main-site: {{}}

packages:

  pnpm@{PNPM_VERSION}:
    resolution: {{integrity: {_PNPM_INTEGRITY}}}
    engines: {{node: '>=18.12'}}
    hasBin: true

snapshots:

  pnpm@{PNPM_VERSION}: {{}}
"""


def api_main(greeting: str = "ok") -> str:
    """A plain Node.js HTTP server on $PORT: ``/api/health`` answers 200 with JSON, the rest 404."""
    return (
        "'use strict';\n"
        "const http = require('node:http');\n"
        "const port = Number(process.env.PORT || 3001);\n"
        "http.createServer((req, res) => {\n"
        "  const healthy = req.url === '/api/health' || req.url === '/health';\n"
        "  const body = JSON.stringify(healthy\n"
        f"    ? {{status: {json.dumps(greeting)}, uptime: process.uptime(), pid: process.pid}}\n"
        "    : {error: 'not found', path: req.url});\n"
        "  res.writeHead(healthy ? 200 : 404, {'content-type': 'application/json'});\n"
        "  res.end(body);\n"
        "}).listen(port, '127.0.0.1', () => console.log(`api listening on 127.0.0.1:${port}`));\n")


# An API whose process exits as it starts (a broken release: its health check must fail).
CRASHING_API_MAIN = "'use strict';\nconsole.error('fatal: refusing to start');\nprocess.exit(1);\n"


def site_page(marker: str = SITE_MARKER) -> str:
    return f"<!doctype html>\n<title>O4O</title>\n<h1>{marker}</h1>\n"


FILES: Mapping[str, str] = {
    "package.json": json.dumps({"name": "o4o-platform", "private": True, "engines": {"node": ">=22.18.0"},
                                "scripts": {"build": "pnpm -r build"},
                                "devDependencies": {"pnpm": PNPM_VERSION},
                                "volta": {"node": "22.18.0", "pnpm": PNPM_VERSION}}, indent=2) + "\n",
    "pnpm-workspace.yaml": "packages:\n  - 'apps/*'\n",
    "pnpm-lock.yaml": PNPM_LOCK,
    ".gitignore": "node_modules/\ndist/\n",
    "apps/main-site/package.json": _package(SITE_PACKAGE, {
        "build": "mkdir -p dist && cp public/index.html dist/index.html"}),
    SITE_PAGE: site_page(),
    "apps/api-server/package.json": _package(API_PACKAGE, {
        "build": "mkdir -p dist && cp src/main.js dist/main.js",
        "apps:install": "sh scripts/app.sh install",
        "apps:pages": "sh scripts/app.sh pages",
        "apps:remove": "sh scripts/app.sh remove",
        "seed": "sh scripts/app.sh seed",
    }),
    API_MAIN: api_main(),
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


def make_fixture_repo(path: Path) -> tuple[Path, str]:
    """A repository with the O4O layout on branch ``main``; returns its path and first commit."""
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "--quiet", "--initial-branch=main")
    return path, commit_files(path, FILES, "Initial O4O fixture")
