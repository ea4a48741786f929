"""The dashboard against a real kube-apiserver: list+watch, filters, JSON, zero API calls per view,
405s, 410 relists, stale data while the API server is away, and a least-privilege ServiceAccount."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from dashboard_cluster import (
    apply_spec,
    create_states,
    patch_status,
    phases,
    post_event,
    run,
    running_dashboard,
    until,
)
from dashboard_fleet_samples import FLEET, fleet_manifest, fleet_spec
from dashboard_proxy import TcpProxy
from dashboard_samples import spec, status_failed, status_ready

from o4o_dashboard.credentials import from_kubeconfig
from o4o_dashboard.service import Dashboard
from o4o_operator.testing import ControlPlane

REPO = Path(__file__).resolve().parents[2]
ALL_STATES = {"pending": "Pending", "building": "Building", "ready": "Ready", "failed": "Failed",
              "paused": "Ready"}
ROW_KEYS = re.compile(r'<tr data-key="([^"]+)"')


@pytest.fixture
async def dashboard(control_plane: ControlPlane, namespace: str) -> AsyncIterator[Dashboard]:
    await run(create_states, control_plane, namespace)
    async with running_dashboard(None, control_plane, namespace) as running:
        await until(running.cache, lambda c: phases(c) == ALL_STATES)
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def fetch(http: aiohttp.ClientSession, dashboard: Dashboard, path: str) -> str:
    async with http.get(dashboard.url + path) as response:
        assert response.status == 200, path
        return await response.text()


async def test_list_shows_every_state_and_filters_work(dashboard: Dashboard, namespace: str,
                                                       http: aiohttp.ClientSession) -> None:
    html = await fetch(http, dashboard, "/")
    assert ROW_KEYS.findall(html) == [f"{namespace}/{name}" for name in sorted(ALL_STATES)]
    assert 'data-stat="failed"><span class="stat-value">1<' in html
    assert ROW_KEYS.findall(await fetch(http, dashboard, "/?phase=Building")) == [f"{namespace}/building"]
    assert ROW_KEYS.findall(await fetch(http, dashboard, "/?q=quiet")) == [f"{namespace}/paused"]
    assert ROW_KEYS.findall(await fetch(http, dashboard, "/?namespace=other")) == []


async def test_json_api_reflects_the_cluster(dashboard: Dashboard, namespace: str,
                                             http: aiohttp.ClientSession) -> None:
    async with http.get(f"{dashboard.url}/api/instances?sort=progress&dir=desc") as response:
        listing = await response.json()
    assert [item["name"] for item in listing["items"]] == ["paused", "ready", "failed", "building", "pending"]
    assert listing["stats"] == {"total": 5, "ready": 2, "deploying": 2, "failed": 1}
    assert listing["items"][0]["paused"] is True and listing["stale"] is False
    async with http.get(f"{dashboard.url}/api/instances/{namespace}/building") as response:
        detail = (await response.json())["instance"]
    assert detail["uid"] and detail["generation"] == 1
    assert [s["state"] for s in detail["stages"]][:6] == ["Succeeded"] * 5 + ["Running"]
    assert detail["logTail"][-1] == "$ pnpm build"


async def test_a_page_view_makes_no_api_call(dashboard: Dashboard, namespace: str,
                                             http: aiohttp.ClientSession) -> None:
    calls_before = dashboard.api_calls
    paths = ["/", "/?phase=Ready", "/?sort=ip&dir=desc", f"/instances/{namespace}/failed",
             "/fragments/instances", f"/fragments/instances/{namespace}/ready", "/api/instances",
             f"/api/instances/{namespace}/building", "/metrics", "/healthz", "/static/dashboard.js", "/fleets",
             "/fragments/fleets"]
    for _ in range(5):
        for path in paths:
            await fetch(http, dashboard, path)
    assert dashboard.api_calls == calls_before
    assert dashboard.metrics.api_call_count() == calls_before


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_writes_are_refused(dashboard: Dashboard, namespace: str, http: aiohttp.ClientSession,
                                  method: str) -> None:
    for path in ("/", f"/api/instances/{namespace}/ready", f"/instances/{namespace}/ready"):
        async with http.request(method, dashboard.url + path, json={"spec": {"paused": True}}) as response:
            assert response.status == 405 and response.headers["Allow"] == "GET,HEAD"


async def test_status_changes_reach_pages_and_the_event_stream(
        dashboard: Dashboard, control_plane: ControlPlane, namespace: str,
        http: aiohttp.ClientSession) -> None:
    async with http.get(dashboard.url + "/events") as stream:
        assert (await stream.content.readuntil(b"\n\n")).startswith(b"retry: 3000\nevent: hello\n")
        await run(patch_status, control_plane, namespace, "building", status_ready())
        change = await stream.content.readuntil(b"\n\n")
        assert f'"key":"{namespace}/building"'.encode() in change
    await until(dashboard.cache, lambda c: phases(c)["building"] == "Ready")
    assert ROW_KEYS.findall(await fetch(http, dashboard, "/?phase=Building")) == []


async def test_detail_shows_events_about_the_instance(dashboard: Dashboard, control_plane: ControlPlane,
                                                      namespace: str, http: aiohttp.ClientSession) -> None:
    await run(post_event, control_plane, namespace, "failed", "StageFailed", "tls failed: <b>429</b>")
    await until(dashboard.cache, lambda c: bool(c.events_for(namespace, "failed")))
    html = await fetch(http, dashboard, f"/instances/{namespace}/failed")
    assert "StageFailed" in html and "tls failed: &lt;b&gt;429&lt;/b&gt;" in html


async def test_relists_after_410_gone(dashboard: Dashboard, control_plane: ControlPlane,
                                      namespace: str) -> None:
    assert dashboard.instances.relists == 1
    await run(patch_status, control_plane, namespace, "pending", status_failed())
    dashboard.instances.restart_watch("1")  # far older than the watch cache holds: the server says 410
    await dashboard.instances.wait_until(lambda r: r.relists == 2 and r.watches_opened >= 2)
    assert phases(dashboard.cache)["pending"] == "Failed"
    expired = dashboard.metrics.registry.get_sample_value(
        "o4o_dashboard_watch_restarts_total", {"resource": "deploymentinstances", "reason": "expired"})
    assert expired == 1
    await run(patch_status, control_plane, namespace, "pending", status_ready())  # and the new watch works
    await until(dashboard.cache, lambda c: phases(c)["pending"] == "Ready")


@pytest.fixture
async def proxied(control_plane: ControlPlane, namespace: str) -> AsyncIterator[tuple[Dashboard, TcpProxy]]:
    """A dashboard that reaches the API server through a proxy the test can cut."""
    await run(create_states, control_plane, namespace, ("building", "ready", "failed"))
    target = urlsplit(control_plane.server)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 443)
    await proxy.start()
    admin = from_kubeconfig(control_plane.kubeconfig)
    credentials = type(admin)(server=f"https://127.0.0.1:{proxy.port}", ssl_context=admin.ssl_context,
                              tokens=None, namespace=namespace)
    try:
        async with running_dashboard(credentials, control_plane, namespace) as running:
            await until(running.cache, lambda c: len(c) == 3 and phases(c)["building"] == "Building")
            yield running, proxy
    finally:
        await proxy.stop()


@pytest.mark.parametrize("expire", [False, True], ids=["resume", "expired-relist"])
async def test_serves_stale_data_while_the_api_server_is_away(
        proxied: tuple[Dashboard, TcpProxy], control_plane: ControlPlane, namespace: str,
        http: aiohttp.ClientSession, expire: bool) -> None:
    dashboard, proxy = proxied
    await proxy.stop()
    await until(dashboard.cache, lambda c: c.stale)
    html = await fetch(http, dashboard, "/")
    assert '<div class="stale-banner" id="stale-banner" role="status">' in html
    assert len(ROW_KEYS.findall(html)) == 3
    async with http.get(dashboard.url + "/api/instances") as response:
        listing = await response.json()
    assert listing["stale"] is True and listing["staleSince"] and len(listing["items"]) == 3
    # Meanwhile the cluster moves on.
    await run(control_plane.kubectl, "delete", "deploymentinstance", "failed", "-n", namespace)
    await run(patch_status, control_plane, namespace, "building", status_ready())
    await run(apply_spec, control_plane, namespace, "late", spec("late.example.com"))
    if expire:
        dashboard.instances.restart_watch("1")  # resume from a version the server no longer has
    await proxy.start()
    await until(dashboard.cache, lambda c: not c.stale and sorted(phases(c)) == ["building", "late", "ready"]
                and phases(c)["building"] == "Ready")
    assert dashboard.instances.relists == (2 if expire else 1)
    html = await fetch(http, dashboard, "/")
    assert '<div class="stale-banner" id="stale-banner" role="status" hidden>' in html


async def test_least_privilege_service_account(control_plane: ControlPlane, namespace: str, tmp_path: Path,
                                               http: aiohttp.ClientSession) -> None:
    """The shipped read-only role is enough: list and watch DeploymentInstances, Events and DeploymentFleets,
    nothing else."""
    await run(control_plane.kubectl, "apply", "-f", str(REPO / "manifests/rbac/dashboard_role.yaml"))
    await run(control_plane.kubectl, "create", "rolebinding", "dashboard", "-n", namespace,
              "--clusterrole=o4o-dashboard-viewer", f"--serviceaccount={namespace}:dashboard")
    token = await run(control_plane.token_for, "dashboard", namespace)
    kubeconfig = control_plane.kubeconfig_for_token(token, tmp_path / "kubeconfig")
    await run(create_states, control_plane, namespace, ("ready",))
    await run(post_event, control_plane, namespace, "ready", "Deployed", "all stages succeeded")
    await run(control_plane.kubectl, "apply", "-f", "-", input=fleet_manifest(namespace, fleet_spec()))
    async with running_dashboard(from_kubeconfig(kubeconfig), control_plane, namespace) as dashboard:
        await until(dashboard.cache, lambda c: phases(c) == {"ready": "Ready"}
                    and bool(c.events_for(namespace, "ready")) and len(c.fleet_rows()) == 1)
        assert not dashboard.cache.stale
        assert "all stages succeeded" in await fetch(http, dashboard, f"/instances/{namespace}/ready")
        assert f'href="/fleets/{namespace}/{FLEET}"' in await fetch(http, dashboard, "/fleets")
    account = f"--as=system:serviceaccount:{namespace}:dashboard"
    for verb, resource, allowed in [("watch", "deploymentfleets", "yes"), ("patch", "deploymentfleets", "no"),
                                    ("update", "deploymentfleets/status", "no"), ("get", "secrets", "no")]:
        answer = await run(control_plane.kubectl, "auth", "can-i", verb, resource, "-n", namespace, account,
                           check=False)
        assert answer.stdout.strip() == allowed, (verb, resource)


async def test_the_command_serves_and_stops_on_sigterm(control_plane: ControlPlane, namespace: str,
                                                       http: aiohttp.ClientSession) -> None:
    """``python -m o4o_dashboard`` as users run it: flags, logs, serving, a clean stop."""
    await run(create_states, control_plane, namespace, ("ready",))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "o4o_dashboard", "--kubeconfig", str(control_plane.kubeconfig),
        "--namespace", namespace, "--port", "0", stderr=asyncio.subprocess.PIPE)
    try:
        assert process.stderr is not None
        # The serving line and three reflectors' "Listed" lines come in any order; /readyz waits for the
        # instances' first list only.
        url, listed = "", b""
        while not url or b"deploymentinstances" not in listed:
            line = await asyncio.wait_for(process.stderr.readline(), 60)
            assert line, "the dashboard stopped before it served and listed the instances"
            if match := re.search(rb"Serving the dashboard .* on (http://127\.0\.0\.1:\d+)/", line):
                url = match.group(1).decode()
            elif b"deploymentinstances" in line:
                listed = line
        assert b"Listed 1 deploymentinstances" in listed, listed
        async with http.get(url + "/readyz") as response:
            assert response.status == 200
        async with http.get(url + "/api/instances") as response:
            assert [item["name"] for item in (await response.json())["items"]] == ["ready"]
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
