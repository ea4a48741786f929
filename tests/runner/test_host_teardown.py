"""Deleting an instance on an existing host runs teardown-host.sh there once (Lightsail servers are deleted
whole, Retain keeps everything, and a host the instance never reached is left alone); its errors propagate."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from cloud_fakes import FakeCloud
from stage_fakes import (
    FakeKube,
    RecordingConnector,
    RecordingSession,
    instance_body,
    make_runtime,
    spec_body,
    static_resolver,
)

from o4o_operator.errors import PermanentError, TransientError
from o4o_operator.models import DeploymentInstanceSpec
from o4o_operator.rendering import HostContext, render_script
from o4o_operator.runner import host_teardown
from o4o_operator.runner.teardown import teardown

DONE = {"pm2": "removed", "nginx": "site removed, reloaded", "certificate": "deleted", "database": "dropped x",
        "teardown": "finished"}
REACHED = {"server": {"name": "shop-host.test", "ipAddress": "198.51.100.5"},
           "stages": [{"name": "provision", "state": "Succeeded", "startedAt": "2026-01-01T00:00:00Z"},
                      {"name": "runtime", "state": "Failed", "startedAt": "2026-01-01T00:01:00Z"}]}


class TeardownKube(FakeKube):
    """What teardown calls besides: the log ConfigMap and the Secret holds."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted_configmaps: list[str] = []
        self.released: list[str] = []

    async def delete_configmap(self, namespace: str, name: str, owner_uid: str) -> bool:
        self.deleted_configmaps.append(name)
        return True

    async def set_secret_finalizer(self, namespace: str, name: str, finalizer: str, *, present: bool) -> bool:
        self.released.append(name)
        return True


@dataclasses.dataclass
class World:
    session: RecordingSession
    connector: RecordingConnector
    kube: TeardownKube
    cloud: FakeCloud

    async def delete(self, spec: dict[str, Any], status: dict[str, Any] | None = None) -> str:
        runtime = make_runtime(self.kube, self.connector, static_resolver({}))
        runtime = dataclasses.replace(runtime, cloud_factory=lambda *args: self.cloud)
        return await teardown(runtime, instance_body(spec, REACHED if status is None else status))


@pytest.fixture
def world() -> World:
    session = RecordingSession(DONE)
    return World(session, RecordingConnector(session), TeardownKube(), FakeCloud())


def expected_script(spec: dict[str, Any]) -> str:
    parsed = DeploymentInstanceSpec.model_validate(spec)
    return render_script("teardown-host", HostContext(
        domain=parsed.domain, instance_name="shop", namespace="team", repository=parsed.source.repository,
        revision=parsed.source.revision, tls_email=parsed.tls.email))


async def test_an_existing_host_runs_its_teardown_script_once_then_the_rest_goes(world: World) -> None:
    spec = spec_body()

    message = await world.delete(spec)

    assert world.session.scripts == [expected_script(spec)]
    assert world.session.timeouts == [host_teardown.TIMEOUT_SECONDS]
    assert world.session.public_envs == [{"O4O_DB_MODE": "local"}] and world.session.envs == [{}]
    assert [target[:2] for target in world.connector.targets] == [("shop-host.test", 22)]
    assert "team.shop on shop-host.test" in message and "database: dropped x" in message
    assert world.kube.deleted_configmaps and "shop-database" not in world.kube.secrets
    assert world.cloud.calls == []


async def test_an_external_database_reaches_the_script_as_external(world: World) -> None:
    spec = spec_body(database={"external": {"secretRef": {"name": "db"}}})

    await world.delete(spec)

    assert world.session.public_envs == [{"O4O_DB_MODE": "external"}]


async def test_a_lightsail_server_is_deleted_whole_and_no_script_runs(world: World) -> None:
    spec = spec_body(provider={"lightsail": {"region": "eu-central-1"}})

    message = await world.delete(spec)

    assert world.session.scripts == [] and world.connector.targets == []
    assert "server" in message and any(call.startswith("delete server") for call in world.cloud.calls)


async def test_retain_runs_nothing_on_the_host(world: World) -> None:
    message = await world.delete(spec_body(deletionPolicy="Retain"))

    assert world.session.scripts == [] and world.connector.targets == []
    assert "Retained what it made on host shop-host.test" in message


@pytest.mark.parametrize("status", [
    {},
    {"server": {"name": "shop-host.test"}},  # recorded, but no host stage ever started
    {"stages": REACHED["stages"]},  # no server recorded
], ids=["nothing", "no-host-stage", "no-server"])
async def test_a_host_never_reached_is_left_alone(world: World, status: dict[str, Any]) -> None:
    await world.delete(spec_body(), status)

    assert world.session.scripts == [] and world.connector.targets == []
    assert world.kube.deleted_configmaps


@pytest.mark.parametrize("error", [TransientError("HostTeardownFailed", "userdel failed"),
                                   PermanentError("HostTeardownFailed", "not an identifier")])
async def test_a_failing_script_fails_the_teardown_so_it_is_retried(world: World, error: Exception) -> None:
    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise error
    world.session.run = failing  # type: ignore[method-assign]
    world.kube.secrets["shop-database"] = {"DB_PASSWORD": "x"}
    world.kube.owners["shop-database"] = "uid-1"

    with pytest.raises(type(error)):
        await world.delete(spec_body())

    assert "shop-database" in world.kube.secrets  # nothing after the host step went yet
    assert world.kube.released == []


async def test_a_script_that_does_not_say_it_finished_fails_the_teardown(world: World) -> None:
    world.session.results = {"pm2": "removed"}

    with pytest.raises(TransientError) as caught:
        await world.delete(spec_body())

    assert caught.value.reason == "HostTeardownFailed"
