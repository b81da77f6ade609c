"""The composition root: the one place that builds the adapters and wires them into the core."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from typing import Any

from api.change_followers import ChangeFollowers
from api.dashboard_history import History, OutageClock
from api.health import CACHE, HealthProbes
from api.logs import RequestIds
from api.metrics import Metrics, PrometheusCacheObserver, PrometheusCaptureObserver, PrometheusObserver
from api.params import Cursors
from api.services import Lifecycle, Services
from api.settings import Settings
from api.snapshots import Snapshots
from cache.availability import Availability
from cache.breakers import RedisBreakerBoard
from cache.capture_board import RedisCaptureBoard
from cache.change_stream import RedisChangeStream
from cache.local import LocalCache
from cache.ratelimit import RateLimiter
from cache.readthrough import RedisCache
from cache.redis_client import make_redis
from connectors.accounting import AccountingConnector
from connectors.accounting_changes import AccountingPoll
from connectors.sales import SalesConnector
from connectors.sales_changes import SalesPoll
from connectors.sales_log import SalesLog
from connectors.warehouse import WarehouseConnector
from connectors.warehouse_changes import WarehousePoll
from connectors.warehouse_log import WarehouseLog
from federation.breakers import Opening, SharedBreakers
from federation.capture import FeedFactory, NothingCached, Watcher
from federation.codec import Codec
from federation.errors import SourceFailed
from federation.gateway import Gateway
from federation.policy import Observer, PolicyConfig, SourcePolicy, make_breaker
from federation.ports import Source
from federation.sources import SOURCES

log = logging.getLogger("bizfed.api")
FOLLOW_BLOCK = 2.0   # seconds one XREAD of the change stream waits for news
# Capture's first round (a full load, for a polling feed) waits until every worker has started: a worker
# still starting when a stop signal comes is one Sanic's manager may not stop.
CAPTURE_DELAY = 2.0
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


def build_feeds(settings: Settings) -> dict[str, list[FeedFactory]]:
    """Each source's change feeds in the order to try them, as its configured mode says."""
    limit, connect = settings.timeouts.attempt, settings.timeouts.connect
    logs: dict[str, FeedFactory] = {
        # The slot is bizfed's own name (bizfed_<database>): after a restart it is ours still, held to the limit.
        "warehouse": lambda: WarehouseLog(settings.warehouse_dsn, timeout=limit, advance_existing_slot=True,
                                          max_retained_bytes=settings.wal_retention),
        "sales": lambda: SalesLog(settings.sales_url, timeout=limit),
    }
    polls: dict[str, FeedFactory] = {
        "warehouse": lambda: WarehousePoll(settings.warehouse_dsn, timeout=limit),
        "sales": lambda: SalesPoll(settings.sales_url, timeout=limit),
        # CRC32 where the driver says the engine is MariaDB/MySQL, portable ODBC arithmetic on any other.
        "accounting": lambda: AccountingPoll(settings.accounting_odbc, timeout=limit, login_timeout=connect,
                                             fingerprint="native"),
    }
    feeds: dict[str, list[FeedFactory]] = {}
    for name in SOURCES:
        mode = settings.change_modes.get(name, "auto")
        chosen = {"auto": [logs.get(name), polls.get(name)], "log": [logs.get(name)], "poll": [polls.get(name)],
                  "off": []}[mode]
        feeds[name] = [f for f in chosen if f is not None]
    return feeds


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
    else:
        # With caching off Redis still carries breaker state and rate limits.
        life.add(ping=(CACHE, _ping(redis)))

    scopes = _scopes(settings)
    capture = RedisCaptureBoard(redis, scopes=scopes)
    followers = _capture(settings, life, cache, capture, redis, policies, metrics)

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
                    history=history, outages=OutageClock(), lifecycle=life, changes=followers, capture=capture)


def _capture(settings: Settings, life: Lifecycle, cache: RedisCache | None, board: RedisCaptureBoard, redis: Any,
             policies: Mapping[str, SourcePolicy], metrics: Metrics) -> ChangeFollowers:
    """A watcher per source (only the lease holder among all replicas' workers reads it) and this worker's
    reader of the change stream for /v1/changes. With caching off changes are still followed, for clients."""
    stream_key = "bizfed:v1:changes:" + _digest(*_scopes(settings).values())
    stream = RedisChangeStream(redis, key=stream_key, maxlen=settings.change_history)
    owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    observer = PrometheusCaptureObserver(metrics)
    for name, feeds in build_feeds(settings).items():
        if settings.change_modes.get(name) == "off":
            continue
        policy = policies[name]
        watcher = Watcher(name, feeds, cache if cache is not None else NothingCached(),
                          interval=settings.watch_interval, log_interval=settings.log_interval, owner=owner,
                          board=board, sink=stream, observer=observer,
                          breaker_open=lambda p=policy: p.breaker_state == "open")  # type: ignore[misc]
        life.loops[f"changes-{name}"] = functools.partial(watcher.run, CAPTURE_DELAY)
    # XREAD BLOCK holds its connection for the block time: a client of its own, with a timeout to match.
    blocking = make_redis(settings.redis_url, timeout=FOLLOW_BLOCK + 1.0, max_connections=2)
    life.add(stop=blocking.aclose)
    followers = ChangeFollowers(RedisChangeStream(blocking, key=stream_key, maxlen=settings.change_history),
                                block=FOLLOW_BLOCK)
    life.loops["change-followers"] = followers.run
    return followers


def _scopes(settings: Settings) -> dict[str, str]:
    """Each source's identity as change capture keys it in Redis: a digest of how it is reached."""
    reached = {"warehouse": settings.warehouse_dsn, "sales": settings.sales_url, "accounting": settings.accounting_odbc}
    return {name: _digest(value) for name, value in reached.items()}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


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
