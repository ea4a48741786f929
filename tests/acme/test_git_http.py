"""The fixture repository served over smart HTTP by ``git http-backend``: clone, fetch new commits, no pushes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from o4o_operator.testing.fixture_repo import commit_files, make_fixture_repo
from o4o_operator.testing.git_server import GitHttpServer, publish_bare

GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid"}


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=check)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[GitHttpServer, Path, Path]]:
    """(server, the author's working repository, the bare repository behind the server)."""
    work, _ = make_fixture_repo(tmp_path / "work")
    root = tmp_path / "served"
    root.mkdir()
    bare = publish_bare(work, root, "fixture.git")
    with GitHttpServer(root) as server:
        yield server, work, bare


def test_clone_then_fetch_a_pushed_commit(served: tuple[GitHttpServer, Path, Path], tmp_path: Path) -> None:
    server, work, bare = served
    clone = tmp_path / "clone"

    git("clone", "--quiet", server.url_for("fixture.git"), str(clone))
    first = git("rev-parse", "HEAD", cwd=clone).stdout.strip()
    new_commit = commit_files(work, {"apps/main-site/public/index.html": "<h1>v2</h1>\n"}, "Release v2")
    git("push", "--quiet", str(bare), "main", cwd=work)
    git("fetch", "--quiet", "origin", cwd=clone)
    fetched = git("rev-parse", "origin/main", cwd=clone).stdout.strip()

    assert first == git("rev-parse", "HEAD~1", cwd=work).stdout.strip()
    assert fetched == new_commit
    assert (clone / "apps" / "api-server" / "src" / "main.js").exists()


def test_shallow_clone_of_a_branch_works(served: tuple[GitHttpServer, Path, Path], tmp_path: Path) -> None:
    server, work, _ = served

    git("clone", "--quiet", "--depth", "1", "--branch", "main", server.url_for("fixture.git"), str(tmp_path / "s"))

    head = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert git("rev-parse", "HEAD", cwd=tmp_path / "s").stdout.strip() == head


def test_pushes_are_refused(served: tuple[GitHttpServer, Path, Path]) -> None:
    server, work, bare = served
    commit_files(work, {"README.md": "pushed over http\n"}, "Try to push")

    pushed = git("push", server.url_for("fixture.git"), "main", cwd=work, check=False)

    assert pushed.returncode != 0
    assert git("rev-parse", "main", cwd=bare).stdout.strip() != git("rev-parse", "HEAD", cwd=work).stdout.strip()


def test_unknown_repository_is_not_found(served: tuple[GitHttpServer, Path, Path], tmp_path: Path) -> None:
    server, _, _ = served

    cloned = git("clone", server.url_for("nothing.git"), str(tmp_path / "n"), check=False)

    assert cloned.returncode != 0
    assert "not found" in cloned.stderr.lower() or "404" in cloned.stderr


def test_a_negotiation_too_big_for_one_buffer_arrives_chunked(served: tuple[GitHttpServer, Path, Path],
                                                             tmp_path: Path) -> None:
    """1500 distinct branch tips make the clone's want list larger than git's post buffer, so git sends it
    with ``Transfer-Encoding: chunked``."""
    server, _, bare = served
    stream = "".join(f"commit refs/heads/branch-{n:05d}\ncommitter t <t@example.invalid> 1700000000 +0000\n"
                     f"data {len(str(n))}\n{n}\n" for n in range(1500))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=bare, input=stream, text=True, check=True, env=GIT_ENV)

    cloned = git("-c", "http.postBuffer=70000", "clone", "--quiet", "--mirror", server.url_for("fixture.git"),
                 str(tmp_path / "m"), check=False, cwd=tmp_path)

    assert cloned.returncode == 0, cloned.stderr
    assert git("rev-parse", "refs/heads/branch-01499", cwd=tmp_path / "m").stdout.strip() == git(
        "rev-parse", "refs/heads/branch-01499", cwd=bare).stdout.strip()
