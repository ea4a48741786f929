"""The inventory beyond the cloud (issue 19): the local database and its role, the operator-owned Secret and
the log ConfigMap, and on an existing host the host, the instance's user, directories and certificate. Each is
written as an intent in the start write of the stage that makes it and confirmed in its end write, so a whole
run still writes status twice per stage. A worker over fakes (no processes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from stage_fakes import (
    FINGERPRINT,
    FakeKube,
    RecordingConnector,
    RecordingSession,
    echo_api_steps,
    instance_body,
    make_runtime,
)
from stage_fakes import spec_body as base_spec
from stage_fakes import static_resolver as resolver

from o4o_operator.models import DeploymentInstanceStatus
from o4o_operator.models_inventory import HostAccess, ItemKind, ItemState
from o4o_operator.pipeline.stages import STAGES
from o4o_operator.rendering import HostContext
from o4o_operator.rendering.env_values import database_identifier
from o4o_operator.runner.worker import InstanceWorker

HOST = HostContext(domain="shop.example.com", instance_name="shop", namespace="team",
                   repository="https://example.com/o4o/platform.git", revision="main", tls_email="ops@example.com")
RESULTS = {"database": "shop", "commit": "c" * 40, "release": "c" * 12, "notAfter": "2026-03-01T00:00:00Z",
           "issuer": "Test CA", "server": "https://acme.test/dir", "installed": "", "added": "", "removed": ""}
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----"


class ConfigMapKube(FakeKube):
    """Makes the log ConfigMap (the base fake never says it did)."""

    def __init__(self) -> None:
        super().__init__({"ssh-key": {"ssh-privatekey": PRIVATE_KEY}, "db": {
            "host": "db.example.com", "port": "5432", "name": "shop", "user": "shop", "password": "db-password",
            "sslMode": "require"}})
        self.configmaps = 0

    async def apply_configmap(self, *args: Any, **kwargs: Any) -> bool:
        self.configmaps += 1
        return True


@pytest.fixture(autouse=True)
def api_step_echoes_the_script(monkeypatch: pytest.MonkeyPatch) -> None:
    echo_api_steps(monkeypatch)


def spec_body(**changes: Any) -> dict[str, Any]:
    return base_spec(provider={"existing": {"host": "shop-host.test", "port": 2222}},
                     ssh={"user": "deploy", "privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"},
                          "hostKeyFingerprint": FINGERPRINT}, **changes)


async def run_to_ready(spec: Mapping[str, Any]) -> tuple[ConfigMapKube, DeploymentInstanceStatus]:
    kube = ConfigMapKube()
    runtime = make_runtime(kube, RecordingConnector(RecordingSession(RESULTS)),
                           resolver({"shop-host.test": ["198.51.100.5"], "shop.example.com": ["198.51.100.5"]}))
    body = instance_body(spec)
    worker = InstanceWorker(runtime, lambda: body, body.get("status"))
    for _ in range(3 * len(STAGES)):
        await worker.step(body)
        if all(worker.status.stage(stage.name.value) is not None
               and worker.status.stage(stage.name.value).state.value == "Succeeded"  # type: ignore[union-attr]
               for stage in STAGES):
            return kube, worker.status
    raise AssertionError(f"not Ready: {[(s.name, s.state.value, s.message) for s in worker.status.stages]}")


def listed(status: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    return {(item["kind"], item["name"]): item["state"] for item in status.get("inventory", [])}


async def test_an_existing_host_lists_the_host_user_directories_database_certificate_secret_and_configmap() -> None:
    _, status = await run_to_ready(spec_body())

    items = {(item.kind, item.name): item for item in status.inventory}
    database = database_identifier(HOST.app_user)
    assert set(items) == {
        (ItemKind.HOST, "shop-host.test"), (ItemKind.HOST_USER, HOST.app_user),
        *((ItemKind.HOST_DIRECTORY, path) for path in (HOST.base_dir, HOST.app_home, HOST.state_dir, HOST.webroot)),
        (ItemKind.DATABASE, database), (ItemKind.DATABASE_ROLE, database), (ItemKind.CERTIFICATE, HOST.domain),
        (ItemKind.SECRET, "shop-database"), (ItemKind.CONFIG_MAP, "shop-log")}
    assert {item.state for item in items.values()} == {ItemState.PRESENT}
    host = items[(ItemKind.HOST, "shop-host.test")]
    assert host.value == "198.51.100.5" and host.adopted
    assert host.ssh == HostAccess(port=2222, user="deploy", host_key_fingerprints=(FINGERPRINT,),
                                  private_key_secret="ssh-key", private_key_key="ssh-privatekey")
    assert all(item.access is None for item in items.values())
    assert "not-a-real-key" not in repr(status.to_body())


async def test_each_is_an_intent_in_its_stage_start_write_and_present_in_its_end_write_with_no_write_added() -> None:
    """One write per stage, plus the first start: a stage's end write starts the next one (runner/handoff.py),
    so what the next stage makes is listed as an intent in the same write that confirms what this one made."""
    kube, _ = await run_to_ready(spec_body())

    writes = kube.status_patches
    assert len(writes) == len(STAGES) + 1, [sorted(w) for w in writes]
    merged: list[dict[tuple[str, str], str]] = []
    current: dict[str, Any] = {}
    for patch in writes:  # the patches are merge patches: keep the inventory each one leaves
        if "inventory" in patch:
            current = {"inventory": patch["inventory"]}
        merged.append(listed(current))
    starts, ends = merged[:-1], merged[1:]
    by_stage = {stage.name.value: (start, end) for stage, start, end in zip(STAGES, starts, ends, strict=True)}
    made = {"provision": (ItemKind.HOST, "shop-host.test"), "runtime": (ItemKind.HOST_USER, HOST.app_user),
            "database": (ItemKind.DATABASE, database_identifier(HOST.app_user)),
            "tls": (ItemKind.CERTIFICATE, HOST.domain)}
    for stage, (kind, name) in made.items():
        start, end = by_stage[stage]
        assert start.get((kind.value, name)) == "Pending", (stage, start)
        assert end.get((kind.value, name)) == "Present", (stage, end)
    # The Secret is made before the first write (its values decide the facts), the ConfigMap after the first end.
    assert starts[0][("Secret", "shop-database")] == "Present"
    assert merged[1][("ConfigMap", "shop-log")] == "Pending" and merged[2][("ConfigMap", "shop-log")] == "Present"


async def test_an_external_database_lists_no_database() -> None:
    _, status = await run_to_ready(spec_body(database={"external": {"secretRef": {"name": "db"}}}))

    kinds = {item.kind for item in status.inventory}
    assert ItemKind.DATABASE not in kinds and ItemKind.DATABASE_ROLE not in kinds
    assert ItemKind.HOST in kinds


async def test_a_key_trusted_on_first_use_is_recorded_with_the_host_even_when_the_stage_then_fails() -> None:
    """Teardown connects only with a recorded pin: one learnt before a failure must not be lost."""
    import asyncssh

    kube = ConfigMapKube()
    session = RecordingSession(RESULTS)
    runtime = make_runtime(kube, RecordingConnector(session),
                           resolver({"shop-host.test": ["198.51.100.5"], "shop.example.com": ["198.51.100.5"]}))

    async def lost(*args: Any, **kwargs: Any) -> Any:
        raise asyncssh.ConnectionLost("reset by peer")
    session.run = lost  # type: ignore[method-assign]
    body = instance_body(base_spec())  # trusts the host's key on first use
    worker = InstanceWorker(runtime, lambda: body, body.get("status"))

    for _ in range(4):
        await worker.step(body)
        runtime_stage = worker.status.stage("runtime")
        if runtime_stage is not None and runtime_stage.state.value == "Failed":
            break
    else:
        raise AssertionError("the runtime stage never failed")

    items = {(item.kind, item.name): item for item in worker.status.inventory}
    host = items[(ItemKind.HOST, "shop-host.test")]
    assert host.ssh is not None and host.ssh.host_key_fingerprints == (FINGERPRINT,)
    assert items[(ItemKind.HOST_USER, HOST.app_user)].state is ItemState.PENDING
    written = [patch["inventory"] for patch in kube.status_patches if "inventory" in patch][-1]
    assert [item["ssh"]["hostKeyFingerprints"] for item in written if item["kind"] == "Host"] == [[FINGERPRINT]]
