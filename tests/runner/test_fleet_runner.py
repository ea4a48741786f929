"""runner/fleet.py and runner/fleet_source.py with a fake API and a real git repository (git ls-remote).

What crosses to the API is recorded, so these say: members are made owned by the fleet and pinned by
commit, a DeploymentInstance the fleet does not own is never written, a member dropped from the list is
deleted behind its uid, the target is resolved once, and a pass that changes nothing writes nothing.
"""

from __future__ import annotations

import asyncio
import datetime
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from o4o_operator import metrics
from o4o_operator.errors import PermanentError, TransientError
from o4o_operator.kubeapi_transport import ApiError
from o4o_operator.runner import fleet_source
from o4o_operator.runner.fleet import reconcile_fleet, summarize_member
from o4o_operator.runner.fleet_source import resolve_revision
from o4o_operator.testing.acme import make_endpoint_certificate
from o4o_operator.testing.git_server import GitHttpServer

NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)
FLEET_UID = "fleet-uid"


class FakeApi:
    """Records each write as (method, path, body)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        self.calls.append((method, path, body))
        return {}

    def writes(self, method: str) -> list[tuple[str, Any]]:
        return [(path, body) for verb, path, body in self.calls if verb == method]


async def _no_secret(*_: Any) -> Any:
    raise AssertionError("no Secret is referenced")


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    path = tmp_path_factory.mktemp("fleet-repo")
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "README").write_text("one\n")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    subprocess.run([*git, "tag", "-a", "v1", "-m", "v1"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    return Path(path).as_uri(), commit


def _fleet(repository: str, members: int = 3, status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "shops", "uid": FLEET_UID, "generation": 1},
            "spec": {"template": {"provider": {"lightsail": {"region": "ap-northeast-2"}},
                                  "ssh": {"privateKeySecretRef": {"name": "ssh", "key": "id"}},
                                  "tls": {"email": "ops@example.com"},
                                  "source": {"repository": repository, "revision": "main"}},
                     "members": [{"name": f"m{i}", "domain": f"m{i}.example.com"} for i in range(members)],
                     "strategy": {"waves": [{"name": "canary", "count": 1}, {"name": "rest", "percentage": 100}]}},
            "status": dict(status or {})}


def _di(name: str, *, owner: str | None = FLEET_UID, revision: str = "old", ready: bool = True) -> dict[str, Any]:
    owners = [{"uid": owner, "controller": True}] if owner else []
    return {"metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "7", "generation": 1,
                         "ownerReferences": owners},
            "spec": {"source": {"revision": revision}},
            "status": {"observedGeneration": 1, "source": {"commit": revision},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "x"}]}}


def _pass(api: FakeApi, fleet: dict[str, Any], dis: list[dict[str, Any]]) -> float | None:
    return asyncio.run(reconcile_fleet(api, _no_secret, fleet, [summarize_member(di) for di in dis], NOW))  # type: ignore[arg-type]


def test_the_revision_resolves_to_a_commit_by_branch_tag_or_sha(repository: tuple[str, str]) -> None:
    url, commit = repository
    assert asyncio.run(resolve_revision(url, "main")) == commit
    assert asyncio.run(resolve_revision(url, "v1")) == commit  # the annotated tag, peeled
    assert asyncio.run(resolve_revision(url, "f" * 40)) == "f" * 40
    with pytest.raises(PermanentError) as error:
        asyncio.run(resolve_revision(url, "nowhere"))
    assert error.value.reason == "RevisionNotFound"


def test_a_repository_behind_a_private_ca_resolves_with_the_git_trust_the_operator_is_given(
        repository: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An HTTPS git server whose certificate chains to a CA only the operator's ``GIT_SSL_CAINFO`` names (as a
    pod given a corporate CA bundle): the fleet's ``git ls-remote`` trusts what the operator was told to."""
    local, commit = repository
    root = tmp_path / "served"
    root.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", local, str(root / "shop.git")], check=True)
    (tmp_path / "tls").mkdir()
    tls = make_endpoint_certificate(tmp_path / "tls", ["127.0.0.1"])
    with GitHttpServer(root, certificate=tls.certificate, private_key=tls.private_key) as server:
        url = server.url_for("shop.git")
        monkeypatch.delenv("GIT_SSL_CAINFO", raising=False)
        with pytest.raises(TransientError) as untrusted:
            asyncio.run(resolve_revision(url, "main"))
        assert untrusted.value.reason == "SourceUnavailable"
        monkeypatch.setenv("GIT_SSL_CAINFO", str(tls.ca_bundle))
        assert asyncio.run(resolve_revision(url, "main")) == commit


def test_a_token_never_reaches_the_command_line_or_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, ...]] = []
    real = asyncio.create_subprocess_exec

    async def spy(*argv: str, **kwargs: Any) -> Any:
        seen.append(argv)
        return await real(*argv, **kwargs)

    monkeypatch.setattr(fleet_source.asyncio, "create_subprocess_exec", spy)
    with pytest.raises(Exception) as error:
        asyncio.run(resolve_revision("https://127.0.0.1:9/none.git", "main", token="s3cr3t-token"))
    assert "s3cr3t-token" not in str(error.value)
    assert seen and all("s3cr3t-token" not in " ".join(argv) for argv in seen)


def test_a_new_fleet_makes_only_its_canary_owned_and_pinned(repository: tuple[str, str]) -> None:
    url, commit = repository
    api = FakeApi()
    _pass(api, _fleet(url), [])
    created = api.writes("POST")
    assert len(created) == 1
    body = created[0][1]
    assert body["metadata"]["name"] == "m0"
    assert body["metadata"]["ownerReferences"][0] | {} == {
        "apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentFleet", "name": "shops", "uid": FLEET_UID,
        "controller": True, "blockOwnerDeletion": True}
    assert body["spec"]["source"]["revision"] == commit and body["spec"]["domain"] == "m0.example.com"
    status = api.writes("PATCH")[-1][1]["status"]
    assert status["target"]["commit"] == commit and status["currentWave"] == "canary"


def test_pins_go_behind_the_resource_version_and_an_unowned_instance_is_never_written(
        repository: tuple[str, str]) -> None:
    url, commit = repository
    api = FakeApi()
    _pass(api, _fleet(url), [_di("m0"), _di("m1", owner="someone-else"), _di("m2")])
    assert not [path for path, _ in api.writes("PATCH") if "/deploymentinstances/" in path]
    assert not api.writes("POST") and not api.writes("DELETE")
    stalled = next(c for c in api.writes("PATCH")[-1][1]["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["message"].startswith("spec.members[1].name")
    api = FakeApi()
    _pass(api, _fleet(url), [_di("m0"), _di("m1"), _di("m2")])
    pins = [(path, body) for path, body in api.writes("PATCH") if "/deploymentinstances/" in path]
    assert pins == [("/apis/deploy.o4o.io/v1alpha1/namespaces/ns/deploymentinstances/m0",
                     {"metadata": {"resourceVersion": "7"}, "spec": {"source": {"revision": commit}}})]


def test_a_promotion_that_released_its_wave_is_taken_away_after_the_status_is_written(
        repository: tuple[str, str]) -> None:
    url, commit = repository
    fleet = _fleet(url)
    fleet["spec"]["strategy"]["waves"][1]["maxUnavailable"] = 0
    fleet["metadata"]["annotations"] = {"deploy.o4o.io/promote": "rest"}
    api = FakeApi()
    _pass(api, fleet, [_di("m0", revision=commit), _di("m1"), _di("m2")])
    patches = [(path, body) for path, body in api.writes("PATCH")]
    assert [path.rsplit("/", 1)[-1] for path, _ in patches] == ["m1", "m2", "status", "shops"]
    assert patches[-1][1] == [{"op": "test", "path": "/metadata/annotations/deploy.o4o.io~1promote", "value": "rest"},
                              {"op": "remove", "path": "/metadata/annotations/deploy.o4o.io~1promote"}]
    started = {w["name"]: w for w in patches[2][1]["status"]["waves"]}["rest"]
    assert started["state"] == "Rolling" and started["startedAt"]


def test_a_member_dropped_from_the_list_is_deleted_behind_its_uid(repository: tuple[str, str]) -> None:
    url, _ = repository
    api = FakeApi()
    _pass(api, _fleet(url, members=1), [_di("m0"), _di("m9")])
    assert api.writes("DELETE") == [("/apis/deploy.o4o.io/v1alpha1/namespaces/ns/deploymentinstances/m9",
                                     {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "uid-m9"}})]


def test_the_target_is_resolved_once_and_a_quiet_pass_writes_nothing(repository: tuple[str, str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    url, commit = repository
    api = FakeApi()
    dis = [_di(f"m{i}", revision=commit) for i in range(3)]
    _pass(api, _fleet(url), dis)
    status = api.writes("PATCH")[-1][1]["status"]
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["reason"] == "RolloutComplete"

    async def no_git(*_: Any, **__: Any) -> str:
        raise AssertionError("resolved again")

    monkeypatch.setattr("o4o_operator.runner.fleet.resolve_revision", no_git)
    quiet = FakeApi()
    _pass(quiet, _fleet(url, status=status), dis)
    assert quiet.calls == []


def test_a_member_the_instance_schema_refuses_stalls_the_fleet_with_the_apiservers_words(
        repository: tuple[str, str]) -> None:
    url, _ = repository

    class RefusingApi(FakeApi):
        async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
            self.calls.append((method, path, body))
            if method == "POST":
                raise ApiError(422, 'DeploymentInstance "m0" is invalid: spec.tls.email: Invalid value')
            return {}

    api = RefusingApi()
    _pass(api, _fleet(url), [])
    stalled = next(c for c in api.writes("PATCH")[-1][1]["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "MemberRefused"
    assert "member m0" in stalled["message"] and "spec.tls.email" in stalled["message"]


def test_a_pass_sets_the_fleets_gauges(repository: tuple[str, str]) -> None:
    url, commit = repository
    failed = _di("m0", revision=commit, ready=False)
    failed["status"]["conditions"].append({"type": "Stalled", "status": "True", "reason": "BuildFailed"})
    _pass(FakeApi(), _fleet(url), [failed, _di("m1"), _di("m2")])
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in metrics.REGISTRY.collect() for s in family.samples if s.name.startswith("o4o_fleet")}
    assert samples[("o4o_fleet_rollout_halted", (("fleet", "shops"), ("namespace", "ns")))] == 1
    assert samples[("o4o_fleet_members", (("fleet", "shops"), ("namespace", "ns"), ("state", "failed")))] == 1
    assert samples[("o4o_fleet_members", (("fleet", "shops"), ("namespace", "ns"), ("state", "pending")))] == 2
