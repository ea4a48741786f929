"""Configure's health gate (runner/health_gate.py) with a fake host: the attempts, the rollback, the
reasons users see, and an activation the operator did not see through (it died between the switch and
the settle) that the next pass finishes correctly.

:class:`FakeHost` plays the host scripts' contract (tests/host/test_activation_sandbox.py runs the real
scripts): configure switches ``current`` after recording what it replaces; check-health passes when nginx
answers 200 for the live release and the operator said the body was healthy; settle-release keeps, rolls
back, or finishes a rollback. Its tunnel leads to a real local HTTP server whose health body depends on
the live release.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

import pytest
from aiohttp import web
from stage_fakes import (
    FakeKube,
    RecordingConnector,
    RecordingSession,
    make_context,
    make_runtime,
    spec_body,
    static_resolver,
)

from o4o_operator.errors import PermanentError, TransientError
from o4o_operator.models import DeploymentInstanceStatus, ServerStatus, SourceStatus
from o4o_operator.pipeline.stages import StageName
from o4o_operator.providers.protocols import CommandResult, LogSink
from o4o_operator.rendering import HostContext
from o4o_operator.runner import health_gate
from o4o_operator.runner.health_gate import gate_release

OLD, NEW = "a" * 40, "b" * 40
FINGERPRINT = "SHA256:" + "A" * 43
HEALTHY = b'{"status":"alive","database":{"status":"healthy"}}'
NOT_INITIALIZED = b'{"status":"alive","database":{"status":"not_initialized"}}'


class OperatorDied(Exception):
    """The operator's process ended here (what a crash looks like to the code that was running)."""


class FakeHost(RecordingSession):
    def __init__(self, current: str | None) -> None:
        super().__init__({})
        self.current = current
        self.pending: str | None = None
        self.failed: set[str] = set()
        self.bodies: dict[str, bytes] = {}
        """The API's health body per live release (default healthy)."""
        self.nginx: dict[str, int] = {}
        """What nginx answers per live release (default 200)."""
        self.probes: list[tuple[str | None, Mapping[str, str]]] = []
        self.settles: list[str] = []
        self.die_at_probe: int | None = None

    @contextlib.asynccontextmanager
    async def tunnel(self, port: int) -> AsyncIterator[str]:
        self.tunnels.append(port)

        async def health(request: web.Request) -> web.StreamResponse:
            return web.Response(body=self.bodies.get(self.current or "", HEALTHY), content_type="application/json")

        app = web.Application()
        app.router.add_get("/api/health", health)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()

    async def run(self, script: str, *, timeout: float, log: LogSink,  # noqa: ASYNC109 - the protocol's
                  env: Mapping[str, str] | None = None,
                  public_env: Mapping[str, str] | None = None) -> CommandResult:
        if "o4o_result bootstrapStarted" in script:
            return await super().run(script, timeout=timeout, log=log, env=env, public_env=public_env)
        self.scripts.append(script)
        public = dict(public_env or {})
        commit = NEW if f"COMMIT={NEW}" in script else OLD
        if "# Stage \"configure\"" in script:
            return self._switch(commit)
        if "# The health probe" in script:
            return self._probe(public)
        if "# Settle the activation" in script:
            return self._settle(commit, public["O4O_SETTLE"], log)
        raise AssertionError("an unexpected script")

    def _switch(self, commit: str) -> CommandResult:
        if self.current != commit:
            self.pending = self.current
            self.current = commit
        return CommandResult(0, (), {"rollbackTo": self.pending or ""})

    def _probe(self, public: Mapping[str, str]) -> CommandResult:
        self.probes.append((self.current, public))
        if self.die_at_probe == len(self.probes):
            raise OperatorDied
        if self.nginx.get(self.current or "", 200) != 200 or public["O4O_HEALTH_BODY_OK"] != "1":
            raise TransientError("HealthCheckFailed", "shop.example.com did not answer 200 for every health path")
        return CommandResult(0, (), {"health": "ok"})

    def _settle(self, commit: str, mode: str, log: LogSink) -> CommandResult:
        self.settles.append(mode)
        if mode == "healthy":
            self.failed.discard(commit)
            self.pending = None
            return CommandResult(0, (), {"release": commit})
        if mode == "failed":
            self.failed.add(commit)
            if self.pending is None:
                return CommandResult(0, (), {"rolledBackTo": ""})
            self.current = self.pending
            return CommandResult(0, (), {"rolledBackTo": self.pending})
        assert mode == "rolled-back"
        rolled, self.pending = self.pending, None
        return CommandResult(0, (), {"release": rolled or ""})


def _host(commit: str = NEW) -> HostContext:
    return HostContext(domain="shop.example.com", instance_name="shop", repository="https://example.com/o4o.git",
                       revision="main", tls_email="ops@example.com", commit=commit, health_attempts=3,
                       health_interval_seconds=7)


class Sleeps:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


async def _activate(fake: FakeHost, sleep: Sleeps, commit: str = NEW) -> dict[str, str]:
    """One pass of configure's activation: the host script's switch, then the gate."""
    host = _host(commit)
    switched = await fake.run(f"# Stage \"configure\"\nCOMMIT={commit}\n", timeout=1, log=lambda line: None)
    return await gate_release(fake, host, lambda line: None, switched.results, sleep=sleep)


async def test_a_healthy_release_is_kept_at_the_first_healthy_attempt() -> None:
    fake, sleep = FakeHost(OLD), Sleeps()
    fake.bodies[NEW] = NOT_INITIALIZED
    calls = 0

    async def heal_after_one(seconds: float) -> None:
        nonlocal calls
        calls += 1
        await sleep(seconds)
        fake.bodies[NEW] = HEALTHY  # the API finished starting

    assert await gate_release(fake, _host(), lambda line: None,
                              (await fake.run(f"# Stage \"configure\"\nCOMMIT={NEW}\n", timeout=1,
                                              log=lambda line: None)).results, sleep=heal_after_one) == {
        "release": NEW}
    assert [public["O4O_HEALTH_ATTEMPT"] for _, public in fake.probes] == ["1/3", "2/3"]
    assert [public["O4O_HEALTH_SAID"] for _, public in fake.probes] == [
        "database.status=not_initialized, expected healthy", "database.status=healthy"]
    assert sleep.seconds == [7]  # health_interval_seconds, between attempts only
    assert (fake.current, fake.pending, fake.settles) == (NEW, None, ["healthy"])
    assert fake.tunnels == [3001]  # spec.apiPort, one tunnel for all the attempts


async def test_an_unhealthy_release_is_rolled_back_and_the_old_one_checked() -> None:
    fake, sleep = FakeHost(OLD), Sleeps()
    fake.bodies[NEW] = NOT_INITIALIZED
    with pytest.raises(PermanentError) as caught:
        await _activate(fake, sleep)
    assert caught.value.reason == "RolledBack"
    assert caught.value.message == (
        f"Release {NEW} failed its health check; rolled back to {OLD} (healthy). Its log is on the host in "
        f"/var/lib/o4o/instances/default.shop/activations/{NEW}.log")
    assert [release for release, _ in fake.probes] == [NEW, NEW, NEW, OLD]
    assert sleep.seconds == [7, 7]  # no sleep after the last attempt; the old release was healthy at once
    assert (fake.current, fake.pending, fake.failed, fake.settles) == (OLD, None, {NEW}, ["failed", "rolled-back"])


async def test_a_rollback_to_a_release_that_is_unhealthy_too_says_so() -> None:
    fake, sleep = FakeHost(OLD), Sleeps()
    fake.nginx[NEW] = fake.nginx[OLD] = 502
    with pytest.raises(PermanentError) as caught:
        await _activate(fake, sleep)
    assert f"rolled back to {OLD} (also unhealthy)" in caught.value.message
    assert len(fake.probes) == 6 and fake.current == OLD


async def test_with_nothing_to_roll_back_to_the_check_fails_and_is_retried() -> None:
    fake, sleep = FakeHost(None), Sleeps()
    fake.bodies[NEW] = b"<html>not json</html>"
    with pytest.raises(TransientError) as caught:
        await _activate(fake, sleep)
    assert (caught.value.reason, caught.value.message) == (
        "HealthCheckFailed", f"Release {NEW} failed its health check and there is no earlier release to roll back to")
    assert fake.probes[0][1]["O4O_HEALTH_SAID"] == "the body is not JSON, expected database.status=healthy"
    assert (fake.current, fake.settles) == (NEW, ["failed"])


@pytest.mark.parametrize("healthy", [True, False])
async def test_an_activation_cut_between_switch_and_settle_is_finished_by_the_next_pass(healthy: bool) -> None:
    fake, sleep = FakeHost(OLD), Sleeps()
    if not healthy:
        fake.bodies[NEW] = NOT_INITIALIZED
    fake.die_at_probe = 1
    with pytest.raises(OperatorDied):
        await _activate(fake, sleep)
    assert (fake.current, fake.pending, fake.settles) == (NEW, OLD, [])  # switched, not settled
    fake.die_at_probe = None
    if healthy:
        assert await _activate(fake, sleep) == {"release": NEW}
        assert (fake.current, fake.pending) == (NEW, None)
    else:  # current already is the new release, and still the old one is what it rolls back to
        with pytest.raises(PermanentError) as caught:
            await _activate(fake, sleep)
        assert f"rolled back to {OLD} (healthy)" in caught.value.message
        assert (fake.current, fake.pending) == (OLD, None)


async def test_an_activation_cut_during_its_rollback_is_finished_by_the_next_pass() -> None:
    fake, sleep = FakeHost(OLD), Sleeps()
    fake.bodies[NEW] = NOT_INITIALIZED
    fake.die_at_probe = 4  # the old release's first check, after current went back to it
    with pytest.raises(OperatorDied):
        await _activate(fake, sleep)
    assert (fake.current, fake.pending, fake.settles) == (OLD, OLD, ["failed"])
    fake.die_at_probe = None
    with pytest.raises(PermanentError) as caught:
        await _activate(fake, sleep)
    assert caught.value.reason == "RolledBack" and f"rolled back to {OLD} (healthy)" in caught.value.message
    assert (fake.current, fake.pending) == (OLD, None)


async def test_configure_runs_the_gate_as_its_api_step(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, sleep = FakeHost(OLD), Sleeps()
    monkeypatch.setattr(health_gate, "pause", sleep)
    status = DeploymentInstanceStatus(
        server=ServerStatus(name="shop-host.test", ip_address="198.51.100.5", host_key_fingerprint=FINGERPRINT,
                            host_key_fingerprints=(FINGERPRINT,)),
        source=SourceStatus(repository="https://example.com/o4o/platform.git", revision="main", commit=NEW))
    driver = make_context(make_runtime(FakeKube(), RecordingConnector(fake), static_resolver({})), spec_body(),
                          status)
    assert await driver.run(StageName.CONFIGURE) == f"Configured nginx, PM2 and .env; serving release {NEW[:12]}"
    assert (fake.current, fake.settles) == (NEW, ["healthy"])
    fake.bodies[NEW] = NOT_INITIALIZED
    fake.current = None  # as if nothing had been served before
    fake.pending = None
    with pytest.raises(TransientError) as caught:
        await driver.run(StageName.CONFIGURE)
    assert caught.value.reason == "HealthCheckFailed"
    assert sleep.seconds == [3] * 9  # the defaults: 10 attempts, 3 seconds apart
