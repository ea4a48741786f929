"""The web app over a filled cache: pages, fragments, JSON, escaping, headers, methods, auth, SSE."""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from dashboard_samples import XSS, body, spec, status_failed

from o4o_dashboard.cache import InstanceCache

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]

ROW_KEYS = re.compile(r'<tr data-key="([^"]+)"')


def row_keys(html: str) -> list[str]:
    return ROW_KEYS.findall(html)


async def test_list_page_shows_every_instance_with_stats(client: Client) -> None:
    response = await client.get("/")
    html = await response.text()
    assert response.status == 200 and response.content_type == "text/html"
    assert row_keys(html) == ["shop/building", "shop/failed", "shop/paused", "shop/pending", "shop/ready"]
    for stat, value in {"total": 5, "ready": 2, "deploying": 2, "failed": 1}.items():
        assert re.search(rf'data-stat="{stat}"><span class="stat-value">{value}<', html), stat
    assert '<progress value="5" max="10">' in html and "5/10" in html
    assert 'class="badge badge-stalled">Stalled' in html and 'class="badge badge-paused">Paused' in html
    assert "203.0.113.20" in html and ">24h<" in html  # IP and age


@pytest.mark.parametrize(("query", "expected"), [
    ("phase=Ready", ["shop/paused", "shop/ready"]),
    ("namespace=elsewhere", []),
    ("q=broken", ["shop/failed"]),
    ("sort=progress&dir=desc", ["shop/paused", "shop/ready", "shop/failed", "shop/building", "shop/pending"]),
    ("limit=2&page=2", ["shop/paused", "shop/pending"]),
])
async def test_list_filters_sort_and_pages_by_query_parameters(client: Client, query: str,
                                                               expected: list[str]) -> None:
    assert row_keys(await (await client.get(f"/?{query}")).text()) == expected
    assert row_keys(await (await client.get(f"/fragments/instances?{query}")).text()) == expected


async def test_list_fragment_is_the_live_region_only(client: Client) -> None:
    html = await (await client.get("/fragments/instances")).text()
    assert "<html" not in html and 'class="stats"' in html and len(row_keys(html)) == 5


async def test_detail_page_shows_spec_stages_conditions_and_log(client: Client) -> None:
    html = await (await client.get("/instances/shop/failed")).text()
    assert html.count('class="stage stage-') == 10
    assert 'data-stage="tls" data-state="Failed"' in html and "5 attempts" in html
    assert 'data-condition="Stalled"' in html
    assert "Secret deploy-key (key ssh-privatekey)" in html
    assert re.search(r'<pre class="log" id="log-tail">Requesting certificate\n', html)


async def test_missing_instance_is_a_404_page_and_fragment(client: Client) -> None:
    page = await client.get("/instances/shop/nope")
    assert page.status == 404 and "<html" in await page.text()
    fragment = await client.get("/fragments/instances/shop/nope")
    assert fragment.status == 404 and "<html" not in await fragment.text()
    api = await client.get("/api/instances/shop/nope")
    assert api.status == 404 and (await api.json())["error"] == "no DeploymentInstance shop/nope"


async def test_json_list_and_detail(client: Client) -> None:
    listing = await (await client.get("/api/instances?phase=Failed")).json()
    assert [item["name"] for item in listing["items"]] == ["failed"]
    assert listing["stats"] == {"total": 5, "ready": 2, "deploying": 2, "failed": 1}
    assert listing["stale"] is False and listing["staleSince"] is None
    assert listing["items"][0]["stageProgress"] == "8/10" and listing["items"][0]["ageSeconds"] == 86400
    detail = await (await client.get("/api/instances/shop/failed")).json()
    assert detail["instance"]["stages"][8]["state"] == "Failed"
    assert detail["instance"]["logTail"][-1].startswith("error: ACME")


@pytest.mark.parametrize("path", ["/", "/instances/shop/xss", "/fragments/instances",
                                  "/fragments/instances/shop/xss", "/api/instances/shop/xss"])
async def test_user_controlled_strings_are_escaped(cache: InstanceCache, client: Client, path: str) -> None:
    hostile = body("xss", "shop", spec("xss.example.com", description=XSS), status_failed(message=XSS))
    hostile["status"]["logTail"].append(f"</pre>{XSS}")
    hostile["status"]["conditions"][0]["reason"] = "Bad"
    cache.apply_instance("ADDED", hostile)
    cache.apply_event("ADDED", {"metadata": {"name": "e", "namespace": "shop"}, "message": XSS,
                                "reason": "Hostile", "involvedObject": {"namespace": "shop", "name": "xss"}})
    text = await (await client.get(path)).text()
    assert "<img" not in text and "</pre>" + XSS not in text
    if path.startswith("/api"):
        assert "\\u003cimg src=x onerror=window.__xss=1\\u003e" in text
    else:
        assert "&lt;img src=x onerror=window.__xss=1&gt;" in text


async def test_security_headers_on_pages_static_errors_and_stream(client: Client) -> None:
    for path in ("/", "/static/dashboard.js", "/nope", "/api/instances", "/healthz"):
        response = await client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Server"] == "o4o-dashboard"  # no framework name or version
    html = await (await client.get("/instances/shop/ready")).text()
    assert "<script>" not in html and " style=" not in html and "onclick" not in html  # nothing inline


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"])
@pytest.mark.parametrize("path", ["/", "/api/instances", "/instances/shop/ready", "/no-such-path"])
async def test_only_get_and_head_are_allowed(client: Client, method: str, path: str) -> None:
    response = await client.request(method, path)
    assert response.status == 405
    assert response.headers["Allow"] == "GET,HEAD"


async def test_head_is_answered_without_a_body(client: Client) -> None:
    for path in ("/", "/api/instances", "/events", "/healthz"):
        response = await client.head(path)
        assert response.status == 200 and await response.read() == b""


async def test_probes_and_metrics(client: Client) -> None:
    assert (await (await client.get("/healthz")).json()) == {"status": "ok"}
    assert (await client.get("/readyz")).status == 200
    await client.get("/")
    text = await (await client.get("/metrics")).text()
    assert 'o4o_dashboard_page_views_total{page="list"} 1.0' in text
    assert "o4o_dashboard_cached_instances 5.0" in text
    assert "o4o_dashboard_stale 0.0" in text


async def test_readyz_waits_for_the_first_list(make_client: ClientFactory) -> None:
    client = await make_client(ready=lambda: False)
    assert (await client.get("/readyz")).status == 503


TOKEN = "s3cret-token-0123456789"


@pytest.mark.parametrize(("authorization", "status"), [
    (None, 401),
    ("Bearer wrong-token-0123456789", 401),
    (f"Bearer {TOKEN}", 200),
    ("Basic " + base64.b64encode(f"anyone:{TOKEN}".encode()).decode(), 200),
    ("Basic " + base64.b64encode(b"anyone:nope").decode(), 401),
    ("Basic !!!", 401),
])
async def test_token_auth(make_client: ClientFactory, authorization: str | None, status: int) -> None:
    client = await make_client(token=TOKEN)
    headers = {"Authorization": authorization} if authorization else {}
    for path in ("/", "/api/instances", "/metrics", "/static/dashboard.css", "/events"):
        response = await client.head(path, headers=headers)
        assert response.status == status, path
    unauthorized = await client.get("/", headers=headers)
    if status == 401:
        assert unauthorized.headers.getall("WWW-Authenticate")[0].startswith("Basic ")
        assert TOKEN not in await unauthorized.text()
    assert (await client.get("/healthz")).status == 200  # probes stay open


async def test_event_stream_says_hello_then_announces_changes(cache: InstanceCache, client: Client) -> None:
    response = await client.get("/events")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    hello = await response.content.readuntil(b"\n\n")
    boot = cache.boot_id.encode()
    assert hello.startswith(b'retry: 3000\nevent: hello\ndata: {"boot":"%s","revision":5,' % boot)
    cache.apply_instance("MODIFIED", body("ready", "shop", spec("shop.example.com"), status_failed()))
    change = await response.content.readuntil(b"\n\n")
    assert change == b'event: change\ndata: {"kind":"instance","key":"shop/ready","revision":6}\n\n'
    cache.mark_unreachable("deploymentinstances")
    status = await response.content.readuntil(b"\n\n")
    assert status.startswith(b'event: status\ndata: {"boot":"%s","revision":7,"stale":true,"staleSince":"' % boot)
    response.close()


async def test_stale_data_is_still_served_with_a_banner(cache: InstanceCache, client: Client) -> None:
    cache.mark_unreachable("deploymentinstances")
    html = await (await client.get("/")).text()
    assert '<div class="stale-banner" id="stale-banner" role="status">' in html  # not hidden
    assert len(row_keys(html)) == 5
    listing = await (await client.get("/api/instances")).json()
    assert listing["stale"] is True and listing["staleSince"].endswith("Z")


@pytest.mark.parametrize(("host", "status"), [
    ("127.0.0.1:8080", 200), ("localhost:8080", 200), ("[::1]:8080", 200), ("localhost", 200),
    ("attacker.example:8080", 403), ("10.0.0.5", 403), ("", 403),
])
async def test_loopback_only_dashboards_refuse_other_host_names(make_client: ClientFactory, host: str,
                                                                status: int) -> None:
    """A rebinding attacker's page reaches 127.0.0.1 under its own name; it must get nothing."""
    client = await make_client(loopback_only=True)
    assert (await client.get("/api/instances", headers={"Host": host})).status == status
    assert (await client.get("/healthz", headers={"Host": host})).status == 200
