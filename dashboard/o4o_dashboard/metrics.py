"""The dashboard's Prometheus metrics, in a registry of its own.

Owns: metric names, help texts and label sets, and the exposition. Each
:class:`DashboardMetrics` has its own registry, so several dashboards (tests)
can live in one process. Labels are bounded vocabularies (page names,
resource names, verbs, restart reasons); never object names or free text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class DashboardMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.page_views = Counter(
            "o4o_dashboard_page_views_total", "Pages and API documents served, by page.", ["page"],
            registry=self.registry)
        self.render_seconds = Histogram(
            "o4o_dashboard_render_seconds", "Time to build a page or API document from the cache.", ["page"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry)
        self.api_calls = Counter(
            "o4o_dashboard_kube_api_calls_total", "Requests made to the Kubernetes API, by verb.", ["verb"],
            registry=self.registry)
        self.cached_instances = Gauge(
            "o4o_dashboard_cached_instances", "DeploymentInstances in the cache.", registry=self.registry)
        self.cached_events = Gauge(
            "o4o_dashboard_cached_events", "Events about DeploymentInstances in the cache.",
            registry=self.registry)
        self.watch_restarts = Counter(
            "o4o_dashboard_watch_restarts_total", "Watches started again, by resource and reason.",
            ["resource", "reason"], registry=self.registry)
        self.relists = Counter(
            "o4o_dashboard_relists_total", "Full lists of a resource (first sync, and after 410 Gone).",
            ["resource"], registry=self.registry)
        self.stale = Gauge(
            "o4o_dashboard_stale", "1 while the API server is unreachable and cached data is served.",
            registry=self.registry)
        self.stale_since = Gauge(
            "o4o_dashboard_stale_since_timestamp_seconds",
            "When the cache went stale (Unix time), 0 when fresh.", registry=self.registry)
        self.live_clients = Gauge(
            "o4o_dashboard_live_clients", "Browsers connected to the Server-Sent Events stream.",
            registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def api_call_count(self) -> int:
        """All Kubernetes API requests so far (read back from the counter)."""
        total = 0.0
        for metric in self.api_calls.collect():
            total += sum(sample.value for sample in metric.samples if sample.name.endswith("_total"))
        return int(total)
