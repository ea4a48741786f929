"""A tiny O4O-shaped git repository for tests: a pnpm workspace with a main site and an API server.

Owns: the fixture's layout (``apps/main-site``, ``apps/api-server``, a
``pnpm-lock.yaml``, package scripts the sandbox's pnpm shim runs with
``/bin/sh``) and committing to it. Runs the real ``git`` with a private
configuration; touches nothing outside the given directory.
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
    return json.dumps({"name": name, "version": "1.0.0", "private": True, "scripts": dict(scripts)}, indent=2)


FILES: Mapping[str, str] = {
    "package.json": json.dumps({"name": "o4o-platform", "private": True, "packageManager": "pnpm@9.12.0",
                                "scripts": {"build": "pnpm -r build"}}, indent=2),
    "pnpm-workspace.yaml": "packages:\n  - 'apps/*'\n",
    "pnpm-lock.yaml": "lockfileVersion: '9.0'\n",
    "apps/main-site/package.json": _package("@o4o/main-site", {
        "build": "mkdir -p dist && cp public/index.html dist/index.html"}),
    "apps/main-site/public/index.html": "<!doctype html><title>O4O</title><h1>O4O fixture site</h1>\n",
    "apps/api-server/package.json": _package("@o4o/api-server", {
        "build": "mkdir -p dist && cp src/main.js dist/main.js",
        "apps:install": "sh scripts/app.sh install",
        "apps:pages": "sh scripts/app.sh pages",
        "apps:remove": "sh scripts/app.sh remove",
        "seed": "sh scripts/app.sh seed",
    }),
    "apps/api-server/src/main.js": (
        "const http = require('node:http');\n"
        "http.createServer((req, res) => res.end(req.url === '/api/health' ? 'ok' : 'o4o'))"
        ".listen(Number(process.env.PORT || 3001), '127.0.0.1');\n"),
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
