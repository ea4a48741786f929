"""Fakes for driving stage actions without a cluster, a cloud or a host.

- :class:`RecordingSession` / :class:`RecordingConnector`: a host that records each script and answers
  with the ``::o4o::result`` lines it was told to; its tunnel leads to a test's own HTTP server.
- :class:`FakeKube`: Secrets from a dict, status patches and Events recorded.
- :class:`StageDriver` / :func:`make_context`: runs stages over an :class:`InstanceContext` with an injected
  resolver, applying their steps as the worker does.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any

from aiohttp import web

from o4o_operator.errors import InvalidSpecError
from o4o_operator.kubeapi import OwnedKind, SecretData
from o4o_operator.models import DeploymentInstanceSpec, DeploymentInstanceStatus
from o4o_operator.providers.dns import NoDns, Resolver
from o4o_operator.providers.protocols import CommandResult, LogSink
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.settings import OperatorSettings
from o4o_operator.testing.stage_driver import StageDriver

FINGERPRINT = "SHA256:" + "A" * 43
HEALTHY_BODY = b'{"status":"alive","database":{"status":"healthy"}}'


@contextlib.asynccontextmanager
async def healthy_api() -> AsyncIterator[str]:
    """A real local HTTP server answering every request 200 with O4O's healthy health body."""
    async def healthy(request: web.Request) -> web.StreamResponse:
        return web.Response(body=HEALTHY_BODY, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", healthy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def static_resolver(answers: Mapping[str, Collection[str]]) -> Resolver:
    async def resolve(name: str) -> Collection[str]:
        return list(answers.get(name, ()))
    return resolve


SETTLED_FACTS = {"tables": "12", "migrationsTable": "public.migrations",
                 "bootstrapped": "migrate 2026-01-01T00:00:00Z " + "d" * 40, "bootstrapStarted": ""}
"""What ``database-facts.sh`` reports of a host whose database was bootstrapped long ago."""


class RecordingSession:
    """Answers every script with ``results``; the configure pre-step's ``database-facts`` with ``facts``
    (kept apart from ``scripts``, in ``fact_runs`` with their environments)."""

    def __init__(self, results: Mapping[str, str], facts: Mapping[str, str] | None = None) -> None:
        self.results = dict(results)
        self.facts = dict(SETTLED_FACTS if facts is None else facts)
        self.fact_runs: list[tuple[dict[str, str], dict[str, str]]] = []
        self.scripts: list[str] = []
        self.timeouts: list[float] = []
        self.envs: list[dict[str, str]] = []
        self.public_envs: list[dict[str, str]] = []
        self.uploads: list[str] = []
        self.contents: dict[str, bytes] = {}
        self.modes: dict[str, tuple[int, str | None]] = {}
        """Per uploaded path: its mode and owner."""
        self.api_url: str | None = None
        self.tunnels: list[int] = []

    @property
    def host_key_fingerprint(self) -> str:
        return FINGERPRINT

    async def run(self, script: str, *, timeout: float, log: LogSink,  # noqa: ASYNC109 - the protocol's
                  env: Mapping[str, str] | None = None,
                  public_env: Mapping[str, str] | None = None) -> CommandResult:
        if "o4o_result bootstrapStarted" in script:
            self.fact_runs.append((dict(env or {}), dict(public_env or {})))
            return CommandResult(exit_status=0, tail=(), results=dict(self.facts))
        self.scripts.append(script)
        self.timeouts.append(timeout)
        self.envs.append(dict(env or {}))
        self.public_envs.append(dict(public_env or {}))
        for key, value in self.results.items():
            log(f"::o4o::result {key}={value}")
        return CommandResult(exit_status=0, tail=(), results=dict(self.results))

    @contextlib.asynccontextmanager
    async def tunnel(self, port: int) -> AsyncIterator[str]:
        """To :attr:`api_url` (a test's local HTTP server), recording the port asked for; without one, to a
        local server that answers O4O's healthy health body to every request (the health gate's default)."""
        self.tunnels.append(port)
        if self.api_url is not None:
            yield self.api_url
            return
        async with healthy_api() as url:
            yield url

    async def upload(self, path: str, content: bytes, *, mode: int, owner: str | None = None) -> None:
        self.uploads.append(path)
        self.contents[path] = content
        self.modes[path] = (mode, owner)

    async def close(self) -> None:
        return None


class RecordingConnector:
    def __init__(self, session: RecordingSession) -> None:
        self.session = session
        self.targets: list[tuple[str, int, str | None]] = []

    async def connect(self, host: str, port: int, user: str, private_key_pem: str,
                      known_fingerprint: str | None, timeout: float) -> RecordingSession:  # noqa: ASYNC109
        self.targets.append((host, port, known_fingerprint))
        return self.session


class FakeKube:
    def __init__(self, secrets: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.secrets = dict(secrets or {"ssh-key": {"ssh-privatekey": "not a real key"}})
        self.status_patches: list[dict[str, Any]] = []
        self.owners: dict[str, str] = {}
        """Secret name -> the uid of the instance the operator made it for."""
        self.versions: dict[str, int] = {}
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}
        """(namespace, name) -> a DeploymentInstance's body, as a clone's source is read."""

    async def get_instance(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.instances.get((namespace, name))

    async def read_secret(self, namespace: str, name: str, field: str) -> SecretData:
        if name not in self.secrets:
            raise InvalidSpecError(field, f"Secret {name!r} not found", reason="SecretNotFound")
        owner = self.owners.get(name)
        return SecretData(name=name, resource_version=str(self.versions.get(name, 1)), data=self.secrets[name],
                          managed_by="o4o-operator" if owner else None, controller_uid=owner)

    async def create_secret(self, namespace: str, name: str, data: Mapping[str, str], owner: Mapping[str, Any],
                            labels: Mapping[str, str]) -> bool:
        if name in self.secrets:
            return False
        self.secrets[name], self.owners[name], self.versions[name] = dict(data), owner["metadata"]["uid"], 1
        return True

    async def add_secret_data(self, namespace: str, name: str, data: Mapping[str, str], owner_uid: str) -> bool:
        if self.owners.get(name) != owner_uid:
            return False
        self.secrets[name] = {**self.secrets[name], **data}
        self.versions[name] = self.versions.get(name, 1) + 1
        return True

    async def delete_secret(self, namespace: str, name: str, owner_uid: str) -> bool:
        if name in self.secrets and self.owners.get(name) != owner_uid:
            return False
        self.secrets.pop(name, None)
        self.owners.pop(name, None)
        return True

    async def release_owned(self, kind: OwnedKind, namespace: str, name: str, owner_uid: str) -> bool:
        if kind != "secrets" or self.owners.get(name) != owner_uid:
            return False
        del self.owners[name]
        return True

    async def adopt_released(self, kind: OwnedKind, namespace: str, name: str, owner: Mapping[str, Any],
                             labels: Mapping[str, str]) -> dict[str, Any] | None:
        return None  # these fakes hold no released object; tests/kubeapi adopts against the real apiserver

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.status_patches.append(dict(status))

    async def post_event(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def apply_configmap(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def read_owned_configmap(self, *args: Any, **kwargs: Any) -> dict[str, str] | None:
        return None


def spec_body(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "domain": "shop.example.com",
        "provider": {"existing": {"host": "shop-host.test"}},
        # An existing host needs a pin or an explicit trust on first use; these fakes trust it.
        "ssh": {"privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}, "trustOnFirstUse": True},
        "source": {"repository": "https://example.com/o4o/platform.git", "revision": "main"},
        "tls": {"email": "ops@example.com"},
    }
    spec.update(changes)
    return spec


def instance_body(spec: Mapping[str, Any], status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"namespace": "team", "name": "shop", "uid": "uid-1", "generation": 1},
                            "spec": dict(spec)}
    if status is not None:
        body["status"] = dict(status)
    return body


def make_runtime(kube: FakeKube, connector: RecordingConnector, resolver: Resolver) -> Runtime:
    import asyncio

    def dns_factory(kind: object, settings: object) -> NoDns:
        return NoDns(resolver)

    return Runtime(settings=OperatorSettings(), kube=kube, connector=connector,  # type: ignore[arg-type]
                   pipelines=asyncio.Semaphore(1), dns_factory=dns_factory, resolver=resolver,
                   clock=lambda: datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))


def make_context(runtime: Runtime, spec: Mapping[str, Any], status: DeploymentInstanceStatus) -> StageDriver:
    return StageDriver(runtime, instance_body(spec), DeploymentInstanceSpec.model_validate(spec), status)


def echo_api_steps(monkeypatch: Any) -> None:
    """The API steps report what the script reported (tests/runner/test_apps_step.py and test_health_gate.py
    run the real ones against an HTTP server), for tests about mapping results into status, message and
    inventory."""
    from o4o_operator.pipeline.stages import ApiStep
    from o4o_operator.runner import host_stages

    async def echo(instance: Any, host: Any, results: Mapping[str, str]) -> Mapping[str, str]:
        return dict(results)

    monkeypatch.setattr(host_stages, "API_STEPS", dict.fromkeys(ApiStep, echo))
