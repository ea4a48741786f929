"""A change of spec.source deploys the commit it names: a new branch, a tag, a raw SHA, another repository.

Each case starts Ready on the fixture's ``main`` and ends Ready with ``status.source.commit`` the new commit
and the host serving that release. The module's fixture repository keeps ``main`` where it was (other
changes go to branches), so the cases do not disturb each other.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from e2e_support import wait_for

from o4o_operator.rendering.host_context import instance_slug
from o4o_operator.testing.fixture_repo import FILES, commit_files, commit_to_branch, make_fixture_repo, tag_commit
from o4o_operator.testing.world import LocalWorld

SITE = "apps/main-site/public/index.html"
SERVED_SITE = "apps/main-site/dist/index.html"


def _marked_site(marker: str) -> dict[str, str]:
    return {SITE: f"<!doctype html><title>O4O</title><h1>{marker}</h1>\n"}


def _change(world: LocalWorld, kind: str, marker: str) -> tuple[dict[str, Any], str]:
    """The spec.source to switch to, and the commit it must resolve to."""
    repository = world.repository
    token = uuid.uuid4().hex[:8]
    if kind == "branch":
        commit = commit_to_branch(repository, f"feature-{token}", _marked_site(marker), "A feature")
        return {"revision": f"feature-{token}"}, commit
    if kind == "tag":
        commit = commit_to_branch(repository, f"release-line-{token}", _marked_site(marker), "A release")
        tag_commit(repository, f"v1.{token}", commit)
        return {"revision": f"v1.{token}"}, commit
    if kind == "sha":
        commit = commit_to_branch(repository, f"side-{token}", _marked_site(marker), "A side commit")
        return {"revision": commit}, commit
    other, _ = make_fixture_repo(world.directory / f"second-repo-{token}")
    commit = commit_files(other, {**FILES, **_marked_site(marker)}, "The second repository's own commit")
    return {"repository": other.as_uri(), "revision": "main"}, commit


def _served(world: LocalWorld, obj: dict[str, Any]) -> tuple[str, str]:
    """The release the host's ``current`` link points at, and the main site it serves."""
    slug = instance_slug(obj["metadata"]["namespace"], obj["metadata"]["name"])
    host = world.fleet.host_for(obj["status"]["server"]["name"])
    release = Path(host.path(f"/srv/o4o/{slug}/current").readlink()).name
    return release, host.path(f"/srv/o4o/{slug}/current/{SERVED_SITE}").read_text()


@pytest.mark.parametrize("kind", ["branch", "tag", "sha", "repository"])
def test_a_source_change_deploys_the_commit_it_names(world: LocalWorld, namespace: str, kind: str) -> None:
    name = f"src-{kind[:4]}"
    world.create_secrets(namespace)
    world.apply(world.manifest(name, namespace, apps=()))
    before = wait_for(world, namespace, name, "condition=Ready")
    assert before["status"]["source"]["commit"] == world.commit
    assert before["status"]["source"]["repository"] == world.repository.as_uri()
    marker = f"{kind} marker {uuid.uuid4().hex[:6]}"
    source, commit = _change(world, kind, marker)
    assert commit != world.commit

    world.control_plane.kubectl("patch", "di", name, "-n", namespace, "--type=merge",
                                "-p", json.dumps({"spec": {"source": source}}))
    wait_for(world, namespace, name, "jsonpath={.status.observedGeneration}=2")
    after = wait_for(world, namespace, name, "condition=Ready")

    assert after["status"]["source"]["commit"] == commit
    assert after["status"]["source"]["repository"] == source.get("repository", world.repository.as_uri())
    assert after["status"]["source"]["revision"] == source.get("revision")
    release, site = _served(world, after)
    assert release == commit
    assert marker in site
