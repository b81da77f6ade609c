"""Prometheus metrics for requests, source calls, breakers and the cache; ``GET /metrics``.

Correct with several Sanic workers through prometheus-client's multiprocess mode (``prepare_multiprocess_dir``).
Every label value comes from a closed set (the route table, known methods, status codes, fixed outcome and
source names): whatever a client sends, the number of series, and so the size of ``/metrics``, stays bounded.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from sanic import Blueprint, HTTPResponse, Request, Sanic
from sanic_ext import openapi
from sanic_routing.route import Route

from api.health import PROBE_TIMEOUT
from api.ops import dependency_states
from api.routing import read
from api.services import services

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
BREAKER_LEVELS = {"closed": 0, "half-open": 1, "half_open": 1, "open": 2}
OUTCOMES = ("ok", "timeout", "unreachable", "circuit open", "overloaded", "query failed", "deadline exceeded")
CACHE_EVENTS = ("hit", "miss", "stale", "bypass", "singleflight_wait", "oversize", "snapshot")
UNMATCHED = "unmatched"
# What a request with an unknown method, or a route this process never learned, is counted under.
OTHER = "other"
KNOWN_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"))
_PATH_PARAM = re.compile(r"<([^:>]+)(?::[^>]*)?>")

metrics_bp = Blueprint("metrics")


def prepare_multiprocess_dir() -> str:
    """Point prometheus-client at a fresh per-server directory; call before any worker starts or app is built.

    Worker processes inherit the variable. The library picks its value store when first imported, so this
    process (and forked workers) re-pick it here; metrics created before this call would stay per process.
    """
    path = tempfile.mkdtemp(prefix="bizfed-metrics-")
    os.environ[MULTIPROC_ENV] = path
    prometheus_values.ValueClass = prometheus_values.get_value_class()  # type: ignore[no-untyped-call]
    atexit.register(shutil.rmtree, path, True)
    return path


def multiprocess_enabled() -> bool:
    """True when values are shared through files, i.e. the variable was set before the library loaded."""
    return bool(os.environ.get(MULTIPROC_ENV)) and prometheus_values.ValueClass is not prometheus_values.MutexValue


def outcome_label(outcome: str) -> str:
    """A bounded label value for a policy outcome: connector messages are free text."""
    return (outcome if outcome in OUTCOMES else "error").replace(" ", "_")


def route_label(request: Request) -> str:
    """The route's pattern (``/v1/orders/<order_no:str>``), never the raw path with its ids."""
    route = request.route
    if route is None:
        return UNMATCHED
    return "/" + route.path.lstrip("/")


def public_template(pattern: str) -> str:
    """A route pattern as the OpenAPI document writes it: ``/v1/orders/<order_no:str>`` → ``/v1/orders/{order_no}``."""
    return "/" + _PATH_PARAM.sub(r"{\1}", pattern.lstrip("/"))


def method_label(method: str) -> str:
    """The method itself when it is a standard one, else ``other``: clients may send any token as a method."""
    return method if method in KNOWN_METHODS else OTHER


class Metrics:
    """This app's metric objects; in multiprocess mode their values live in the shared directory."""

    def __init__(self) -> None:
        self.multiprocess = multiprocess_enabled()
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("bizfed_http_requests", "HTTP requests answered, by route pattern and status",
                                ["route", "method", "status"], registry=r)
        self.request_seconds = Histogram("bizfed_http_request_duration_seconds",
                                         "Time to answer an HTTP request, by route pattern and status",
                                         ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.source_calls = Counter("bizfed_source_calls", "Source calls through the resilience policy, by outcome",
                                    ["source", "outcome"], registry=r)
        self.source_seconds = Histogram("bizfed_source_call_duration_seconds",
                                        "Source call time including retries, by outcome",
                                        ["source", "outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.retries = Counter("bizfed_source_retries", "Retries of a failed source call", ["source"], registry=r)
        self.bulkhead_rejections = Counter("bizfed_source_bulkhead_rejections",
                                           "Calls refused because the source's bulkhead stayed full",
                                           ["source"], registry=r)
        # Breakers are per worker: the worst live worker is what an operator needs to see.
        self.breaker_state = Gauge("bizfed_source_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
                                   ["source"], multiprocess_mode="livemax", registry=r)
        self.breaker_transitions = Counter("bizfed_source_breaker_transitions",
                                           "Circuit breaker state changes, by the state entered",
                                           ["source", "state"], registry=r)
        self.source_up = Gauge("bizfed_source_up", "1 when the source answered its last health probe",
                               ["source"], multiprocess_mode="livemostrecent", registry=r)
        self.redis_up = Gauge("bizfed_redis_up", "1 when the Redis cache answered its last health probe",
                              multiprocess_mode="livemostrecent", registry=r)
        self.cache_events = {
            "hit": Counter("bizfed_cache_hits", "Answers served fresh from the cache", ["source"], registry=r),
            "miss": Counter("bizfed_cache_misses", "Cache misses that loaded from the source", ["source"],
                            registry=r),
            "stale": Counter("bizfed_cache_stale_serves", "Stale cache entries served", ["source"], registry=r),
            "bypass": Counter("bizfed_cache_bypasses", "Calls that skipped the cache (cache down or disabled)",
                              ["source"], registry=r),
            "singleflight_wait": Counter("bizfed_cache_singleflight_waits",
                                         "Fetches that waited for another request's load", ["source"], registry=r),
            "oversize": Counter("bizfed_cache_oversize", "Values not cached for being too large", ["source"],
                                registry=r),
        }
        self.snapshot_serves = Counter("bizfed_cache_snapshot_serves",
                                       "Answers replayed whole from an in-process snapshot, without source lookups",
                                       registry=r)
        self.changes = Counter("bizfed_changes", "Committed source rows seen by change capture, by source and mode",
                               ["source", "mode"], registry=r)
        self.change_latency = Histogram("bizfed_change_latency_seconds",
                                        "From a change's commit (as its log dates it) to its cached answers dropped",
                                        ["source", "mode"], buckets=LAG_BUCKETS, registry=r)
        self.change_lag = Gauge("bizfed_change_lag_seconds",
                                "How far behind its source the cache may be: age of the last round fully applied",
                                ["source"], multiprocess_mode="livemax", registry=r)
        self.watcher_queries = Counter("bizfed_change_watcher_queries",
                                       "Statements change capture sent to a source", ["source", "mode"], registry=r)
        self.internal_errors = Counter("bizfed_internal_errors",
                                       "Unexpected exceptions answered as a 500 (programming errors), by route",
                                       ["route"], registry=r)
        # route_label() value (or template) -> public template; filled from the route table by learn_routes.
        self._routes: dict[str, str] = {UNMATCHED: UNMATCHED}
        self._internal_errors: dict[str, Any] = {}
        # labels() looks the series up under a lock on every call; the hot path keeps its own references.
        self._request_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._cache_series: dict[tuple[str, str], Any] = {}

    def learn_routes(self, routes: Iterable[Route]) -> None:
        """Compute each route's public template once; only these (and ``unmatched``/``other``) become labels."""
        self._internal_error_series(UNMATCHED)
        for route in routes:
            pattern = "/" + route.path.lstrip("/")
            template = public_template(pattern)
            self._routes[pattern] = self._routes[template] = template
            # Present from the start, so the counter reads 0 rather than "no data" until the first error.
            self._internal_error_series(template)

    def bounded_route(self, route: str) -> str:
        """The public template for a ``route_label`` value (or a template), ``other`` for anything unknown."""
        return self._routes.get(route, OTHER)

    def _internal_error_series(self, route: str) -> Any:
        series = self._internal_errors.get(route)
        if series is None:
            series = self._internal_errors[route] = self.internal_errors.labels(route)
        return series

    def internal_error(self, route: str) -> None:
        """Count one unexpected exception answered as a 500; ``route`` as ``route_label`` gives it."""
        self._internal_error_series(self.bounded_route(route)).inc()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count and time one answer; ``route`` as ``route_label`` gives it, ``method`` as the client sent it."""
        labels = (self._routes.get(route, OTHER), method_label(method), status)
        series = self._request_series.get(labels)
        if series is None:
            text = (labels[0], labels[1], str(status))
            series = self._request_series[labels] = (self.requests.labels(*text),
                                                     self.request_seconds.labels(*text))
        series[0].inc()
        series[1].observe(seconds)

    def cache_event(self, event: str, source: str) -> None:
        series = self._cache_series.get((event, source))
        if series is None:
            series = self._cache_series[(event, source)] = self.cache_events[event].labels(source)
        series.inc()

    def set_up(self, dependency: str, up: bool) -> None:
        """Record a health probe's result; ``cache`` is the Redis cache, anything else a source."""
        if dependency == "cache":
            self.redis_up.set(1 if up else 0)
        else:
            self.source_up.labels(dependency).set(1 if up else 0)

    def collecting_registry(self) -> CollectorRegistry:
        """What to read from: all workers' files in multiprocess mode, else this process's registry."""
        if not self.multiprocess:
            return self.registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry

    def exposition(self) -> bytes:
        return generate_latest(self.collecting_registry())

    def summary(self) -> Summary:
        """Totals across workers for the dashboard: API requests (``/v1`` routes) and cache events."""
        summary = Summary()
        buckets: dict[float, float] = {}
        for family in self.collecting_registry().collect():
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "bizfed_http_requests_total" and labels.get("route", "").startswith("/v1/"):
                    summary.requests += sample.value
                    if labels.get("status", "").startswith("5"):
                        summary.errors += sample.value
                elif sample.name == "bizfed_http_request_duration_seconds_sum" and \
                        labels.get("route", "").startswith("/v1/"):
                    summary.seconds += sample.value
                elif sample.name == "bizfed_http_request_duration_seconds_bucket" and \
                        labels.get("route", "").startswith("/v1/"):
                    le = float(labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + sample.value
                elif sample.name == "bizfed_cache_snapshot_serves_total":
                    summary.cache["snapshot"] = summary.cache.get("snapshot", 0.0) + sample.value
                elif family.name in _CACHE_FAMILIES and sample.name.endswith("_total"):
                    event = _CACHE_FAMILIES[family.name]
                    summary.cache[event] = summary.cache.get(event, 0.0) + sample.value
        summary.buckets = sorted(buckets.items())
        return summary

    def process_exited(self) -> None:
        """Drop this process's live gauges so a stopped worker's breaker no longer counts."""
        if self.multiprocess:
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


_CACHE_FAMILIES = {
    "bizfed_cache_hits": "hit", "bizfed_cache_misses": "miss", "bizfed_cache_stale_serves": "stale",
    "bizfed_cache_bypasses": "bypass", "bizfed_cache_singleflight_waits": "singleflight_wait",
    "bizfed_cache_oversize": "oversize",
}


@dataclass
class Summary:
    requests: float = 0.0
    errors: float = 0.0
    seconds: float = 0.0
    buckets: list[tuple[float, float]] = field(default_factory=list)
    cache: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": {"count": self.requests, "errors": self.errors, "sum_s": round(self.seconds, 6),
                         # +Inf is not JSON; the last bucket's count equals ``count`` anyway.
                         "buckets": [[le, n] for le, n in self.buckets if le != float("inf")]},
            "cache": {event: self.cache.get(event, 0.0) for event in CACHE_EVENTS},
        }


class PrometheusObserver:
    """The resilience policy's ``Observer`` (federation/policy.py), recording into Prometheus."""

    def __init__(self, metrics: Metrics, sources: Iterable[str] = ()) -> None:
        self._m = metrics
        self._call_series: dict[tuple[str, str], tuple[Any, Any]] = {}
        # Series that exist from the start read as 0 rather than "no data" before the first event.
        for source in sources:
            metrics.breaker_state.labels(source).set(0)
            metrics.source_calls.labels(source, "ok")
            metrics.source_seconds.labels(source, "ok")
            metrics.retries.labels(source)
            metrics.bulkhead_rejections.labels(source)

    def call_finished(self, source: str, seconds: float, outcome: str) -> None:
        label = outcome_label(outcome)
        series = self._call_series.get((source, label))
        if series is None:   # labels() takes a lock and builds its key each time: once per series here
            series = self._call_series[(source, label)] = (self._m.source_calls.labels(source, label),
                                                           self._m.source_seconds.labels(source, label))
        series[0].inc()
        series[1].observe(seconds)

    def retried(self, source: str) -> None:
        self._m.retries.labels(source).inc()

    def bulkhead_rejected(self, source: str) -> None:
        self._m.bulkhead_rejections.labels(source).inc()

    def breaker_changed(self, source: str, state: str) -> None:
        level = BREAKER_LEVELS.get(state)
        if level is None:
            return
        self._m.breaker_state.labels(source).set(level)
        self._m.breaker_transitions.labels(source, state.replace("_", "-")).inc()


class PrometheusCaptureObserver:
    """Change capture's figures (``federation.capture.CaptureObserver``) as Prometheus series."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def changes_seen(self, source: str, mode: str, count: int) -> None:
        self._m.changes.labels(source, mode).inc(count)

    def change_latency(self, source: str, mode: str, seconds: float) -> None:
        self._m.change_latency.labels(source, mode).observe(seconds)

    def watcher_queries(self, source: str, mode: str, count: int) -> None:
        if count > 0:
            self._m.watcher_queries.labels(source, mode).inc(count)

    def lag(self, source: str, seconds: float) -> None:
        self._m.change_lag.labels(source).set(seconds)


class PrometheusCacheObserver:
    """The cache's ``CacheObserver`` (cache/observer.py), recording into Prometheus."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def hit(self, source: str) -> None:
        self._m.cache_event("hit", source)

    def miss(self, source: str) -> None:
        self._m.cache_event("miss", source)

    def stale(self, source: str) -> None:
        self._m.cache_event("stale", source)

    def bypass(self, source: str) -> None:
        self._m.cache_event("bypass", source)

    def singleflight_wait(self, source: str) -> None:
        self._m.cache_event("singleflight_wait", source)

    def oversize(self, source: str) -> None:
        self._m.cache_event("oversize", source)


async def refresh_health(request: Request, limit: float) -> dict[str, Any]:
    """Every source's and the cache's state (as /health/ready sees it), recorded in the up gauges.

    The probes are the worker's shared ones (api/health.py): scrapers and dashboards cannot flood the sources.
    """
    found = services(request.app)
    states = await dependency_states(found, limit)
    for name, state in states.items():
        found.metrics.set_up(name, bool(state["up"]))
    return states


@read(metrics_bp, "/metrics")
@openapi.exclude()
async def scrape(request: Request) -> HTTPResponse:
    await refresh_health(request, PROBE_TIMEOUT)
    body = services(request.app).metrics.exposition()
    return HTTPResponse(body, content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def install_metrics(app: Sanic[Any, Any]) -> Metrics:
    """Create the app's metrics and serve ``GET /metrics`` (no key: scrapers have none).

    Requests are timed by the app's own middleware, which calls ``Metrics.observe_request``.
    """
    metrics = Metrics()

    async def learn_routes(app: Sanic[Any, Any]) -> None:
        # The route table is complete (all blueprints registered) only once the server starts.
        metrics.learn_routes(app.router.routes)

    async def forget_process(app: Sanic[Any, Any]) -> None:
        metrics.process_exited()

    app.register_listener(learn_routes, "before_server_start")
    app.register_listener(forget_process, "after_server_stop")
    app.blueprint(metrics_bp)
    return metrics
