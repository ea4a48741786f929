"""Dashboard benchmark: list-page latency and Kubernetes API calls per page view with 1000 instances.

By default the 1000 DeploymentInstances go through a real local kube-apiserver
(``o4o_operator.testing.ControlPlane``, binaries from ``make testbin``): they are
created and given a status over HTTP, and the dashboard fills its cache by list+watch,
exactly as in production. ``--direct`` feeds the same bodies straight into the cache
instead (no control plane needed; API calls are then 0 by construction).

The load generator (an aiohttp client) runs in the same process and event loop as the
dashboard, so latencies include the client's own overhead. Prints the figures and writes
``bench/results/dashboard.json``. Asserts nothing.

    python bench/dashboard_bench.py [--instances 1000] [--requests 200] [--direct]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from o4o_dashboard.cache import InstanceCache
from o4o_dashboard.credentials import from_kubeconfig
from o4o_dashboard.metrics import DashboardMetrics
from o4o_dashboard.reflector import Backoff
from o4o_dashboard.service import Dashboard, DashboardConfig
from o4o_dashboard.web import create_app

REPO = Path(__file__).resolve().parent.parent
CRD = REPO / "crds" / "deploymentinstances.deploy.o4o.io.yaml"
RESULTS = REPO / "bench" / "results" / "dashboard.json"
NAMESPACE = "bench"
STAGES = ("provision", "dns", "runtime", "database", "source", "build-site", "build-api", "configure", "tls", "apps")
PHASES = ("Ready", "Ready", "Ready", "Building", "Configuring", "Provisioning", "Failed", "Pending")
MERGE_PATCH = "application/merge-patch+json"
COLLECTION = f"/apis/deploy.o4o.io/v1alpha1/namespaces/{NAMESPACE}/deploymentinstances"


def spec_for(index: int) -> dict[str, Any]:
    return {
        "domain": f"site{index:04d}.example.com", "description": f"Benchmark instance {index}",
        "apps": ["forum-core"],
        "provider": {"lightsail": {"region": "ap-northeast-2"}},
        "ssh": {"privateKeySecretRef": {"name": "deploy-key"}},
        "source": {"repository": "https://github.com/example/o4o-platform.git"},
        "tls": {"email": "ops@example.com"}, "paused": index % 25 == 0,
    }


def status_for(index: int) -> dict[str, Any]:
    phase = PHASES[index % len(PHASES)]
    done = {"Ready": 9, "Configuring": 7, "Building": 5, "Provisioning": 0, "Failed": 7, "Pending": 0}[phase]
    stamp = "2025-03-01T10:00:00Z"
    stages = [{"name": name, "state": "Succeeded" if n < done else "Pending",
               "attempts": 1 if n < done else 0, "startedAt": stamp, "finishedAt": stamp}
              for n, name in enumerate(STAGES)]
    if phase != "Ready" and done < len(STAGES):
        stages[done].update(state="Failed" if phase == "Failed" else "Running", message="working on it")
    failed = phase == "Failed"
    return {
        "phase": phase, "observedGeneration": 1, "stageProgress": f"{done}/9",
        "conditions": [
            {"type": "Ready", "status": "True" if phase == "Ready" else "False",
             "reason": "AllStagesSucceeded" if phase == "Ready" else "StageRunning",
             "lastTransitionTime": stamp},
            {"type": "Stalled", "status": "True" if failed else "False",
             "reason": "RateLimited" if failed else "Progressing", "lastTransitionTime": stamp}],
        "stages": stages,
        "server": {"name": f"o4o-{index}", "ipAddress": f"198.51.{index // 250}.{index % 250 + 1}"},
        "logTail": [f"[{n:02d}] step {n} of the deployment log for site{index:04d}, redacted"
                    for n in range(30)],
    }


def body_for(index: int) -> dict[str, Any]:
    return {"metadata": {"name": f"site-{index:04d}", "namespace": NAMESPACE, "uid": f"uid-{index}",
                         "generation": 1, "creationTimestamp": "2025-03-01T10:00:00Z"},
            "spec": spec_for(index), "status": status_for(index)}


async def load_through_apiserver(plane: Any, count: int) -> float:
    """Create ``count`` instances and set their status over HTTP (16 at a time); returns seconds taken."""
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(ssl=plane.ssl_context(), limit=16)
    semaphore = asyncio.Semaphore(16)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def create(index: int) -> None:
            name = f"site-{index:04d}"
            manifest = {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance",
                        "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec_for(index)}
            async with semaphore:
                async with session.post(plane.server + COLLECTION, json=manifest) as response:
                    response.raise_for_status()
                patch = json.dumps({"status": status_for(index)})
                async with session.patch(f"{plane.server}{COLLECTION}/{name}/status", data=patch,
                                         headers={"Content-Type": MERGE_PATCH}) as response:
                    response.raise_for_status()

        await asyncio.gather(*(create(index) for index in range(count)))
    return time.perf_counter() - started


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def measure(session: aiohttp.ClientSession, url: str, requests: int) -> dict[str, Any]:
    for _ in range(10):  # warm-up: template compilation, connection
        async with session.get(url) as response:
            await response.read()
    latencies = []
    size = 0
    statuses: set[int] = set()
    for _ in range(requests):
        started = time.perf_counter()
        async with session.get(url) as response:
            size = len(await response.read())
            statuses.add(response.status)
        latencies.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(latencies), 2), "p95_ms": round(percentile(latencies, 0.95), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2), "max_ms": round(max(latencies), 2),
            "bytes": size, "requests": requests, "statuses": sorted(statuses)}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


PAGES = {"list (default page, 100 rows)": "/", "list (all rows)": "/?limit=1000",
         "list filtered (phase=Failed)": "/?phase=Failed&limit=1000",
         "detail": f"/instances/{NAMESPACE}/site-0003", "api list (all rows)": "/api/instances?limit=1000"}


async def run_pages(base_url: str, requests: int, api_calls: Any) -> tuple[dict[str, Any], int, int]:
    views = 0
    before = api_calls()
    figures = {}
    async with aiohttp.ClientSession() as session:
        for label, path in PAGES.items():
            figures[label] = await measure(session, base_url + path, requests)
            views += requests + 10
    return figures, views, api_calls() - before


@contextlib.asynccontextmanager
async def direct_dashboard(count: int) -> AsyncIterator[tuple[str, Any, dict[str, Any]]]:
    from aiohttp import web

    cache = InstanceCache(DashboardMetrics())
    cache.replace_instances([body_for(index) for index in range(count)])
    runner = web.AppRunner(create_app(cache, DashboardMetrics()), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", lambda: 0, {"source": "direct"}
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def apiserver_dashboard(count: int) -> AsyncIterator[tuple[str, Any, dict[str, Any]]]:
    from o4o_operator.testing import ControlPlane

    with ControlPlane() as plane:
        plane.install_crds([CRD])
        plane.create_namespace(NAMESPACE)
        load_seconds = await load_through_apiserver(plane, count)
        started = time.perf_counter()
        config = DashboardConfig(namespace=NAMESPACE, port=0, backoff=Backoff(initial=0.1, maximum=1.0))
        async with Dashboard(from_kubeconfig(plane.kubeconfig), config) as dashboard:
            await asyncio.wait_for(dashboard.wait_synced(), 120)
            await asyncio.wait_for(dashboard.cache.wait_until(lambda c: len(c) == count), 120)
            context = {"source": "apiserver", "load_seconds": round(load_seconds, 1),
                       "sync_seconds": round(time.perf_counter() - started, 2),
                       "api_calls_to_sync": dashboard.api_calls, "cached_instances": len(dashboard.cache)}
            yield dashboard.url, lambda: dashboard.api_calls, context


async def bench(count: int, requests: int, direct: bool) -> dict[str, Any]:
    source = direct_dashboard(count) if direct else apiserver_dashboard(count)
    async with source as (base_url, api_calls, context):
        figures, views, calls = await run_pages(base_url, requests, api_calls)
        return {
            "benchmark": "dashboard", "instances": count, **context,
            "page_views": views, "api_calls_during_page_views": calls,
            "api_calls_per_page_view": round(calls / views, 6),
            "pages": figures, "process_rss_mib": rss_mib(),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            "note": "client and dashboard share one process and event loop",
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--direct", action="store_true", help="feed the cache directly (no control plane)")
    args = parser.parse_args()
    results = asyncio.run(bench(args.instances, args.requests, args.direct))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"dashboard bench: {results['instances']} instances via {results['source']}")
    if results["source"] == "apiserver":
        print(f"  loaded in {results['load_seconds']}s; dashboard synced in {results['sync_seconds']}s "
              f"with {results['api_calls_to_sync']} API calls")
    for label, page in results["pages"].items():
        print(f"  {label:32} p50 {page['p50_ms']:7.2f} ms  p95 {page['p95_ms']:7.2f} ms  "
              f"p99 {page['p99_ms']:7.2f} ms  {page['bytes'] / 1024:7.1f} KiB")
    print(f"  API calls per page view: {results['api_calls_per_page_view']} "
          f"({results['api_calls_during_page_views']} over {results['page_views']} views)")
    print(f"  process RSS: {results['process_rss_mib']} MiB; wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
