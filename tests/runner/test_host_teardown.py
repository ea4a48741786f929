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
REACHED = {"server": {"name": "shop-host.test", "ipAddress": "198.51.100.5", "hostKeyFingerprint": "SHA256:" + "C" * 43,
                      "hostKeyFingerprints": ["SHA256:" + "C" * 43], "hostKeySource": "TrustedOnFirstUse"},
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


# ---- from the inventory alone (issue 19) ------------------------------------------------------------

HOST = HostContext(domain="shop.example.com", instance_name="shop", namespace="team",
                   repository="https://example.com/o4o/platform.git", revision="main", tls_email="ops@example.com")


def recorded(*, database: bool = True, pins: tuple[str, ...] = ("SHA256:" + "B" * 43,),
             user: str = HOST.app_user) -> dict[str, Any]:
    """The status of an instance on an existing host that got as far as tls, as the inventory records it."""
    items: list[dict[str, Any]] = [
        {"kind": "Host", "name": "shop-host.test", "state": "Present", "value": "198.51.100.5", "adopted": True,
         "ssh": {"port": 2222, "user": "deploy", "hostKeyFingerprints": list(pins),
                 "privateKeySecret": "old-ssh-key", "privateKeyKey": "id_ed25519"}},
        {"kind": "HostUser", "name": user, "state": "Present"},
        *({"kind": "HostDirectory", "name": path, "state": "Present"}
          for path in (HOST.base_dir, HOST.app_home, HOST.state_dir, HOST.webroot)),
        {"kind": "Certificate", "name": "shop.example.com", "state": "Pending"},
        {"kind": "Secret", "name": "shop-database", "state": "Present"},
        {"kind": "ConfigMap", "name": "shop-log", "state": "Present"}]
    if database:
        items += [{"kind": "Database", "name": "o4o_team_shop", "state": "Present"},
                  {"kind": "DatabaseRole", "name": "o4o_team_shop", "state": "Present"}]
    return {**REACHED, "inventory": items}


UNPARSEABLE = spec_body(tls={"email": "ops@example.com", "acmeCABundle": "not a certificate"})


async def test_a_spec_that_no_longer_parses_still_gets_its_host_teardown_from_the_inventory(world: World) -> None:
    with pytest.raises(ValueError, match="validation error"):
        DeploymentInstanceSpec.model_validate(UNPARSEABLE)
    world.kube.secrets["old-ssh-key"] = {"id_ed25519": "the recorded key"}

    message = await world.delete(UNPARSEABLE, recorded())

    assert world.session.scripts == [expected_script(spec_body())]
    assert world.connector.targets == [("shop-host.test", 2222, ("SHA256:" + "B" * 43,))]
    assert world.session.public_envs == [{"O4O_DB_MODE": "local"}]
    assert "team.shop on shop-host.test" in message and "database: dropped x" in message
    assert "nothing on existing host" not in message


async def test_the_host_teardown_uses_what_the_inventory_recorded_not_what_the_spec_says_now(world: World) -> None:
    world.kube.secrets["old-ssh-key"] = {"id_ed25519": "the recorded key"}
    now = spec_body(provider={"existing": {"host": "other-host.test"}}, database={"external": {"secretRef": {
        "name": "db"}}})

    await world.delete(now, recorded())

    assert [target[:2] for target in world.connector.targets] == [("shop-host.test", 2222)]
    assert world.session.public_envs == [{"O4O_DB_MODE": "local"}], "the local database it made is dropped"


async def test_without_a_recorded_database_the_script_leaves_the_database_alone(world: World) -> None:
    world.kube.secrets["old-ssh-key"] = {"id_ed25519": "the recorded key"}

    await world.delete(UNPARSEABLE, recorded(database=False))

    assert world.session.public_envs == [{"O4O_DB_MODE": "external"}]


async def test_names_on_the_host_derive_from_the_instance_never_from_an_edited_status(world: World) -> None:
    """The user and directories recorded are for reading; an edited one cannot aim teardown at another's."""
    world.kube.secrets["old-ssh-key"] = {"id_ed25519": "the recorded key"}

    await world.delete(UNPARSEABLE, recorded(user="o4o-other-tenant-00000000"))

    assert world.session.scripts == [expected_script(spec_body())]


async def test_a_host_whose_key_was_never_pinned_is_not_connected_to(world: World) -> None:
    """Nothing pinned: no session ever reached it (trust on first use pins the first key seen), so nothing
    of the instance is there, and teardown never trusts a key itself."""
    world.kube.secrets["old-ssh-key"] = {"id_ed25519": "the recorded key"}

    message = await world.delete(UNPARSEABLE, recorded(pins=()))

    assert world.connector.targets == [] and world.session.scripts == []
    assert "no host key was ever pinned" in message


async def test_after_a_move_to_another_host_the_host_named_last_is_cleaned(world: World) -> None:
    world.kube.secrets["old-ssh-key"] = {"id_ed25519": "the recorded key"}
    status = recorded()
    before = {**status["inventory"][0], "name": "first-host.test"}
    status["inventory"] = [before, *status["inventory"]]

    await world.delete(UNPARSEABLE, status)

    assert [target[:2] for target in world.connector.targets] == [("shop-host.test", 2222)]
