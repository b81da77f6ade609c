"""The composition root: the one place that builds the adapters and wires them into the core."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from api.dashboard_history import History, OutageClock
from api.health import CACHE, HealthProbes
from api.logs import RequestIds
from api.metrics import Metrics, PrometheusCacheObserver, PrometheusObserver
from api.params import Cursors
from api.services import Lifecycle, Services
from api.settings import Settings
from api.snapshots import Snapshots
from cache.availability import Availability
from cache.breakers import RedisBreakerBoard
from cache.local import LocalCache
from cache.ratelimit import RateLimiter
from cache.readthrough import RedisCache
from cache.redis_client import make_redis
from connectors.accounting import AccountingConnector
from connectors.sales import SalesConnector
from connectors.warehouse import WarehouseConnector
from connectors.warehouse_changes import WarehouseChanges
from federation.breakers import Opening, SharedBreakers
from federation.codec import Codec
from federation.errors import SourceFailed
from federation.gateway import Gateway
from federation.policy import Observer, PolicyConfig, SourcePolicy, make_breaker
from federation.ports import Source
from federation.sources import SOURCES
from federation.watcher import watch_warehouse

log = logging.getLogger("bizfed.api")
SourceFactory = Callable[[Settings], Mapping[str, Any]]


def build_sources(settings: Settings) -> dict[str, Any]:
    """The real connectors; nothing connects until ``open()``."""
    limits = settings.timeouts
    return {
        "warehouse": WarehouseConnector(settings.warehouse_dsn, pool_max=settings.warehouse_pool,
                                        query_timeout=limits.attempt, connect_timeout=limits.connect),
        "sales": SalesConnector(settings.sales_url, pool_size=settings.sales_pool,
                                query_timeout=limits.attempt, connect_timeout=limits.connect),
        "accounting": AccountingConnector(settings.accounting_odbc, max_workers=settings.accounting_workers,
                                          login_timeout=limits.connect, query_timeout=limits.attempt),
    }


def build_policies(settings: Settings, observer: Observer) -> dict[str, SourcePolicy]:
    concurrency = {"warehouse": settings.warehouse_pool, "sales": settings.sales_pool,
                   "accounting": settings.accounting_workers}
    return {
        name: SourcePolicy(
            name,
            PolicyConfig(timeouts=settings.timeouts, concurrency=concurrency[name] * 2,
                         bulkhead_wait=settings.bulkhead_wait, attempts=settings.retry_attempts),
            make_breaker(name, settings.breaker_fail_max, settings.breaker_reset, observer),
            observer,
        )
        for name in SOURCES
    }


def build_services(settings: Settings, metrics: Metrics, make_sources: SourceFactory = build_sources) -> Services:
    """One worker's services, not yet started: ``services.lifecycle.start()`` connects them."""
    life = Lifecycle()
    sources: Mapping[str, Source] = make_sources(settings)
    for name, source in sources.items():
        life.add(start=_opener(name, source), stop=source.close, ping=(name, source.ping))
    policies = build_policies(settings, PrometheusObserver(metrics, SOURCES))

    redis = make_redis(settings.redis_url)
    life.add(stop=redis.aclose)
    redis_up = Availability(backoff=1.0)   # the one record, in this process, of whether Redis answers
    board = RedisBreakerBoard(redis, redis_up, Opening)
    breakers = SharedBreakers(board, {n: p.breaker for n, p in policies.items()})
    life.loops["breaker-sync"] = breakers.run

    cache: RedisCache | None = None
    snapshots: Snapshots | None = None
    if settings.cache_enabled:
        first_level = LocalCache(settings.local_cache_ttl) if settings.local_cache_ttl > 0 else None
        cache = RedisCache(redis, settings.freshness, codec=Codec(), stale_on=(SourceFailed,),
                           availability=redis_up, observer=PrometheusCacheObserver(metrics), local=first_level)
        life.add(stop=cache.aclose, ping=(CACHE, cache.ping))
        life.loops["l1-invalidations"] = cache.follow_invalidations
        if first_level is not None:
            snapshots = Snapshots(first_level)
        changes = WarehouseChanges(settings.warehouse_dsn, timeout=settings.timeouts.attempt)
        life.add(stop=changes.close)
        life.loops["warehouse-watcher"] = lambda: watch_warehouse(changes, cache, settings.watch_interval)
    else:
        # With caching off Redis still carries breaker state and rate limits.
        life.add(ping=(CACHE, _ping(redis)))

    history = History()
    life.loops["dashboard-history"] = lambda: history.run(lambda: metrics.summary().as_dict())
    limiter = None
    if settings.rate_limit:
        limiter = RateLimiter(redis, settings.rate_limit, settings.rate_window, availability=redis_up)
        life.add(stop=limiter.aclose)
    return Services(settings=settings, cursors=Cursors(settings.cursor_secret), metrics=metrics,
                    sources=sources, policies=policies,
                    gateway=Gateway(sources, policies, cache=cache), cache=cache, snapshots=snapshots,
                    limiter=limiter, probes=HealthProbes(life.pings), request_ids=RequestIds(),
                    history=history, outages=OutageClock(), lifecycle=life)


def _opener(name: str, source: Source) -> Callable[[], Any]:
    async def open_source() -> None:
        try:
            await source.open()
        except Exception as exc:
            # The breaker and health probes take it from here; the API serves what it can meanwhile.
            log.warning("source %s not reachable at start-up: %s", name, type(exc).__name__)
    return open_source


def _ping(redis: Any) -> Callable[[], Any]:
    async def ping() -> None:
        await redis.ping()
    return ping
