"""The aiohttp application: routes, page and JSON handlers, templates, static files.

Owns: the URL space (``/``, ``/instances/{namespace}/{name}``, ``/fleets``,
``/fleets/{namespace}/{name}``, ``/fragments/...`` for live refreshes,
``/api/instances[...]``, ``/events``, ``/healthz``, ``/readyz``, ``/metrics``,
``/static/...``), the Jinja2 environment (autoescape always on), and the
page-view metrics.

Must not: call the Kubernetes API (every response is built from the cache),
mark any user-controlled string safe, or accept a method other than GET/HEAD.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from aiohttp.typedefs import Middleware

from o4o_dashboard import live, security
from o4o_dashboard.cache import InstanceCache, utc_now
from o4o_dashboard.detail import instance_detail
from o4o_dashboard.fleets import fleet_detail
from o4o_dashboard.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from o4o_dashboard.metrics import DashboardMetrics
from o4o_dashboard.views import (
    DEFAULT_PER_PAGE,
    PHASE_ORDER,
    ListQuery,
    format_age,
    format_timestamp,
    iso,
    namespaces_of,
    select_rows,
    stats_of,
)

PACKAGE_DIR = Path(__file__).parent
STATIC_DIR = PACKAGE_DIR / "static"
COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "Name"), ("namespace", "Namespace"), ("domain", "Domain"), ("phase", "Phase"),
    ("progress", "Progress"), ("ip", "IP"), ("age", "Age"),
)
NO_STORE = {"Cache-Control": "no-store"}


@dataclasses.dataclass(frozen=True)
class Site:
    """Everything the handlers read: the cache, metrics, templates and a clock."""

    cache: InstanceCache
    metrics: DashboardMetrics
    templates: jinja2.Environment
    scope_label: str
    clock: Callable[[], datetime.datetime]
    ready: Callable[[], bool]


SITE = web.AppKey("site", Site)


def _static_versions() -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            for path in STATIC_DIR.iterdir() if path.is_file()}


def template_environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("o4o_dashboard", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    versions = _static_versions()
    environment.globals["static_url"] = lambda name: f"/static/{name}?v={versions.get(name, '0')}"
    environment.filters["age"] = format_age
    environment.filters["timestamp"] = format_timestamp
    environment.filters["iso"] = lambda moment: iso(moment) or ""
    return environment


def _site(request: web.Request) -> Site:
    return request.app[SITE]


def _render(site: Site, template: str, page: str, context: dict[str, Any], status: int = 200) -> web.Response:
    started = time.perf_counter()
    html = site.templates.get_template(template).render(
        scope_label=site.scope_label, stale_since=site.cache.stale_since, revision=site.cache.revision,
        boot=site.cache.boot_id,
        **context)
    site.metrics.page_views.labels(page).inc()
    site.metrics.render_seconds.labels(page).observe(time.perf_counter() - started)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status, headers=NO_STORE)


def _list_context(site: Site, request: web.Request) -> dict[str, Any]:
    rows = site.cache.rows()
    query = ListQuery.from_params(request.query)
    return {
        "query": query, "page": select_rows(rows, query), "stats": stats_of(rows),
        "namespaces": namespaces_of(rows), "phases": PHASE_ORDER, "columns": COLUMNS, "now": site.clock(),
        "default_per_page": DEFAULT_PER_PAGE,
    }


async def list_page(request: web.Request) -> web.Response:
    site = _site(request)
    return _render(site, "list.html", "list", _list_context(site, request))


async def list_fragment(request: web.Request) -> web.Response:
    site = _site(request)
    return _render(site, "_instances.html", "list_fragment", _list_context(site, request))


def _detail_or_404(site: Site, request: web.Request, template: str, page: str,
                   missing_template: str) -> web.Response:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    cached = site.cache.get(namespace, name)
    if cached is None:
        return _render(site, missing_template, "not_found", {"namespace": namespace, "name": name,
                                                             "kind": "DeploymentInstance", "back": "/"}, 404)
    now = site.clock()
    detail = instance_detail(cached.body, site.cache.events_for(namespace, name), now)
    return _render(site, template, page, {"detail": detail, "now": now})


async def detail_page(request: web.Request) -> web.Response:
    return _detail_or_404(_site(request), request, "detail.html", "detail", "not_found.html")


async def detail_fragment(request: web.Request) -> web.Response:
    return _detail_or_404(_site(request), request, "_detail.html", "detail_fragment", "_not_found.html")


async def fleets_page(request: web.Request) -> web.Response:
    site = _site(request)
    return _render(site, "fleets.html", "fleets", {"fleets": site.cache.fleet_rows()})


async def fleets_fragment(request: web.Request) -> web.Response:
    site = _site(request)
    return _render(site, "_fleets.html", "fleets_fragment", {"fleets": site.cache.fleet_rows()})


def _fleet_or_404(site: Site, request: web.Request, template: str, page: str,
                  missing_template: str) -> web.Response:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    cached = site.cache.get_fleet(namespace, name)
    if cached is None:
        return _render(site, missing_template, "not_found", {"namespace": namespace, "name": name,
                                                             "kind": "DeploymentFleet", "back": "/fleets"}, 404)

    def member(member_name: str) -> Mapping[str, Any] | None:
        found = site.cache.get(namespace, member_name)
        return found.body if found is not None else None

    return _render(site, template, page, {"detail": fleet_detail(cached.body, member)})


async def fleet_page(request: web.Request) -> web.Response:
    return _fleet_or_404(_site(request), request, "fleet.html", "fleet", "not_found.html")


async def fleet_fragment(request: web.Request) -> web.Response:
    return _fleet_or_404(_site(request), request, "_fleet.html", "fleet_fragment", "_not_found.html")


def _json(site: Site, page: str, document: dict[str, Any], status: int = 200) -> web.Response:
    site.metrics.page_views.labels(page).inc()
    body = {**document, "stale": site.cache.stale, "staleSince": iso(site.cache.stale_since),
            "revision": site.cache.revision}
    return web.json_response(body, status=status, headers=NO_STORE, dumps=_html_safe_json)


def _html_safe_json(data: Any) -> str:
    """JSON with <, > and & escaped, so no document can ever be read as markup."""
    text = json.dumps(data, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


async def api_list(request: web.Request) -> web.Response:
    site = _site(request)
    rows = site.cache.rows()
    query = ListQuery.from_params(request.query)
    page = select_rows(rows, query)
    now = site.clock()
    return _json(site, "api_list", {
        "items": [row.to_json(now) for row in page.rows], "matching": page.matching, "page": page.page,
        "pages": page.pages, "stats": stats_of(rows).to_json(),
    })


async def api_detail(request: web.Request) -> web.Response:
    site = _site(request)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    cached = site.cache.get(namespace, name)
    if cached is None:
        return _json(site, "api_detail", {"error": f"no DeploymentInstance {namespace}/{name}"}, 404)
    now = site.clock()
    detail = instance_detail(cached.body, site.cache.events_for(namespace, name), now)
    return _json(site, "api_detail", {"instance": detail.to_json(now)})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers=NO_STORE)


async def readyz(request: web.Request) -> web.Response:
    if _site(request).ready():
        return web.json_response({"status": "ready"}, headers=NO_STORE)
    return web.json_response({"status": "waiting for the first list"}, status=503, headers=NO_STORE)


async def metrics(request: web.Request) -> web.Response:
    site = _site(request)
    site.metrics.cached_instances.set(len(site.cache))
    site.metrics.cached_events.set(site.cache.event_count)
    return web.Response(body=site.metrics.exposition(), headers={"Content-Type": METRICS_CONTENT_TYPE})


def create_app(cache: InstanceCache, metrics_registry: DashboardMetrics, *, token: str | None = None,
               loopback_only: bool = False, scope_label: str = "",
               clock: Callable[[], datetime.datetime] = utc_now,
               ready: Callable[[], bool] = lambda: True) -> web.Application:
    """The dashboard's web application, serving ``cache``.

    With ``token``, every path but the probes needs it. With ``loopback_only``, requests
    must be addressed to a loopback name (for a token-less dashboard on loopback).
    """
    middlewares: list[Middleware] = [security.only_get_and_head]
    if loopback_only:
        middlewares.append(security.only_loopback_hosts)
    if token is not None:
        middlewares.append(security.require_token(token))
    app = web.Application(middlewares=middlewares)
    app[SITE] = Site(cache=cache, metrics=metrics_registry, templates=template_environment(),
                     scope_label=scope_label, clock=clock, ready=ready)
    app.on_response_prepare.append(security.add_security_headers)

    async def close_streams(app: web.Application) -> None:
        cache.close_subscriptions()

    app.on_shutdown.append(close_streams)
    router = app.router
    router.add_get("/", list_page)
    router.add_get("/instances/{namespace}/{name}", detail_page)
    router.add_get("/fragments/instances", list_fragment)
    router.add_get("/fragments/instances/{namespace}/{name}", detail_fragment)
    router.add_get("/fleets", fleets_page)
    router.add_get("/fleets/{namespace}/{name}", fleet_page)
    router.add_get("/fragments/fleets", fleets_fragment)
    router.add_get("/fragments/fleets/{namespace}/{name}", fleet_fragment)
    router.add_get("/api/instances", api_list)
    router.add_get("/api/instances/{namespace}/{name}", api_detail)
    router.add_get("/events", live.event_stream_handler(cache, metrics_registry))
    router.add_get("/healthz", healthz)
    router.add_get("/readyz", readyz)
    router.add_get("/metrics", metrics)
    router.add_static("/static", STATIC_DIR, follow_symlinks=False)
    return app
