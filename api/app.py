"""The composition root: ``create_app(settings)`` builds the connectors, policies and routes."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sanic import HTTPResponse, Request, Sanic
from sanic.config import Config
from sanic.exceptions import SanicException
from sanic.response import BaseHTTPResponse, file

from api.admin import admin
from api.auth import KeyRing
from api.dashboard import install_dashboard
from api.logs import RequestIds, install_request_log
from api.metrics import PrometheusCacheObserver, PrometheusObserver, install_metrics, route_label
from api.openapi import openapi_routes
from api.ops import ops
from api.params import Cursors
from api.problems import RateLimited, to_problem
from api.ratelimit import RateLimiter
from api.responses import accepts_json
from api.routes import v1
from api.server import ignore_repeated_stop_signals
from api.settings import Settings
from api.snapshots import Snapshots
from cache.breakers import SharedBreakers
from cache.readthrough import RedisCache
from cache.redis_client import make_redis
from connectors.accounting import AccountingConnector
from connectors.sales import SalesConnector
from connectors.warehouse import WarehouseConnector
from connectors.warehouse_changes import WarehouseChanges
from federation.codec import Codec
from federation.context import RequestContext
from federation.errors import Forbidden, SourceFailed
from federation.gateway import Gateway
from federation.policy import Observer, PolicyConfig, SourcePolicy, make_breaker
from federation.watcher import watch_warehouse

log = logging.getLogger("bizfed.api")
STATIC = Path(__file__).parent / "static"
SWAGGER_UI = STATIC / "docs"   # swagger-ui-dist 5, vendored: it reads OpenAPI 3.1
SOURCES = ("warehouse", "sales", "accounting")


def build_connectors(settings: Settings) -> dict[str, Any]:
    """The real connectors; nothing connects until ``open()``."""
    return {
        "warehouse": WarehouseConnector(settings.warehouse_dsn, pool_max=settings.warehouse_pool,
                                        query_timeout=settings.source_timeout,
                                        connect_timeout=settings.connect_timeout),
        "sales": SalesConnector(settings.sales_url, pool_size=settings.sales_pool,
                                query_timeout=settings.source_timeout, connect_timeout=settings.connect_timeout),
        "accounting": AccountingConnector(settings.accounting_odbc, max_workers=settings.accounting_workers,
                                          login_timeout=settings.connect_timeout,
                                          query_timeout=settings.source_timeout),
    }


def build_policies(settings: Settings, observer: Observer) -> dict[str, SourcePolicy]:
    concurrency = {"warehouse": settings.warehouse_pool, "sales": settings.sales_pool,
                   "accounting": settings.accounting_workers}
    return {
        name: SourcePolicy(
            name,
            PolicyConfig(timeout=settings.source_timeout, concurrency=concurrency[name] * 2,
                         bulkhead_wait=settings.bulkhead_wait, attempts=settings.retry_attempts),
            make_breaker(name, settings.breaker_fail_max, settings.breaker_reset, observer),
            observer,
        )
        for name in SOURCES
    }


def create_app(settings: Settings, *, connectors: Mapping[str, Any] | None = None,
               name: str = "bizfed") -> Sanic[Config, Any]:
    app: Sanic[Config, Any] = Sanic(name, configure_logging=True)
    app.config.update({
        "OAS_UI_DEFAULT": "swagger",
        "OAS_UI_REDOC": False,
        "OAS_URL_PREFIX": "/docs",
        "OAS_PATH_TO_SWAGGER_HTML": str(STATIC / "swagger.html"),
        "OAS_IGNORE_HEAD": True,
        "OAS_IGNORE_OPTIONS": True,
        "REQUEST_MAX_SIZE": 64 * 1024,
        "REQUEST_MAX_HEADER_SIZE": 8 * 1024,
        "REQUEST_TIMEOUT": settings.head_timeout,   # for the whole head under api.server's protocol
        "RESPONSE_TIMEOUT": max(30, settings.request_deadline * 3),
        "KEEP_ALIVE_TIMEOUT": 15,
        "FALLBACK_ERROR_FORMAT": "json",
        "ACCESS_LOG": False,
    })
    app.ext.openapi.describe("bizfed", version="1.0.0",
                             description="One API over the Warehouse, Sales and Accounting systems.")
    app.ext.openapi.add_security_scheme("bearer", "http", scheme="bearer",
                                        description="An API key: `Authorization: Bearer <key>`")
    app.ctx.settings = settings
    app.ctx.keyring = KeyRing(settings.api_keys)
    app.ctx.cursors = Cursors(settings.cursor_secret)
    app.ctx.injected_connectors = connectors
    app.static("/docs/assets/bizfed-docs.js", STATIC / "bizfed-docs.js", name="docs_init")
    app.static("/docs/assets", SWAGGER_UI, name="docs_assets")
    app.static("/docs/oauth2-redirect.js", SWAGGER_UI / "oauth2-redirect.js", name="docs_oauth2_js")
    app.blueprint(v1)
    app.blueprint(ops)
    app.blueprint(openapi_routes)
    app.blueprint(admin)
    install_metrics(app)
    request_log = install_request_log(app)
    install_dashboard(app)
    app.error_handler.add(Exception, to_problem)
    app.error_handler.add(asyncio.CancelledError, to_problem)   # not an Exception: a client that hung up

    @app.before_server_start
    async def start_sources(app: Sanic[Config, Any]) -> None:
        observer: Observer = PrometheusObserver(app.ctx.metrics, SOURCES)
        conns = dict(app.ctx.injected_connectors or build_connectors(settings))
        for name, conn in conns.items():
            try:
                await conn.open()
            except Exception as exc:
                log.warning("source %s not reachable at start-up: %s", name, type(exc).__name__)
        app.ctx.connectors = conns
        app.ctx.request_ids = RequestIds()   # here, so that every worker process has its own
        app.ctx.policies = build_policies(settings, observer)
        redis = make_redis(settings.redis_url)
        app.ctx.redis = redis
        app.ctx.cache = (RedisCache(redis, settings.freshness, codec=Codec(), stale_on=(SourceFailed,),
                                    observer=PrometheusCacheObserver(app.ctx.metrics),
                                    local_ttl=settings.local_cache_ttl)
                         if settings.cache_enabled else None)
        app.ctx.gateway = Gateway(conns, app.ctx.policies, cache=app.ctx.cache)
        cache = app.ctx.cache
        app.ctx.snapshots = (Snapshots(settings.local_cache_ttl, lambda: cache.local_generation)
                             if cache is not None and settings.local_cache_ttl > 0 else None)
        app.ctx.rate_limiter = (RateLimiter(redis, settings.rate_limit, settings.rate_window)
                                if settings.rate_limit else None)
        breakers = SharedBreakers(redis, {n: p.breaker for n, p in app.ctx.policies.items()})
        # Plain tasks, not app.add_task: Sanic logs a WARNING for each of its tasks cancelled, and
        # stop_background cancels these on every clean stop.
        app.ctx.background = [asyncio.create_task(breakers.run(), name="breaker-sync"),
                              asyncio.create_task(_exit_with_parent(os.getppid()), name="parent-watch")]
        if app.ctx.cache is not None:
            app.ctx.background.append(asyncio.create_task(app.ctx.cache.follow_invalidations(),
                                                          name="l1-invalidations"))
            app.ctx.changes = WarehouseChanges(settings.warehouse_dsn, timeout=settings.source_timeout)
            app.ctx.background.append(asyncio.create_task(
                watch_warehouse(app.ctx.changes, app.ctx.cache, settings.watch_interval), name="warehouse-watcher"))

    @app.after_server_start
    async def settle_heap(app: Sanic[Config, Any]) -> None:
        # Everything built so far (Sanic, SQLAlchemy, pydantic schemas...) lives as long as the worker;
        # frozen, it is no longer walked by the collector's full collections during requests.
        gc.collect()
        gc.freeze()

    @app.before_server_stop
    async def stop_background(app: Sanic[Config, Any]) -> None:
        ignore_repeated_stop_signals()
        # A watcher caught mid-query at shutdown otherwise keeps the worker alive, spinning.
        tasks = [t for t in getattr(app.ctx, "background", []) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        if getattr(app.ctx, "rate_limiter", None) is not None:
            await app.ctx.rate_limiter.aclose()

    @app.after_server_stop
    async def stop_sources(app: Sanic[Config, Any]) -> None:
        if getattr(app.ctx, "cache", None) is not None:
            await app.ctx.cache.aclose()
            await app.ctx.changes.close()
        for conn in getattr(app.ctx, "connectors", {}).values():
            await conn.close()
        if getattr(app.ctx, "redis", None) is not None:
            await app.ctx.redis.aclose()

    metrics = app.ctx.metrics
    oauth2_redirect = SWAGGER_UI / "oauth2-redirect.html"

    # One request and one response middleware for all the per-request work: each middleware
    # Sanic runs costs a few microseconds, a noticeable share of a cached answer.
    async def admit(request: Request) -> HTTPResponse | None:
        request.ctx.started = time.perf_counter()
        incoming = request.headers.get("x-request-id", "")
        request.ctx.request_id = (incoming if 0 < len(incoming) <= 128 and incoming.isprintable()
                                  else app.ctx.request_ids.new())
        route = request.route
        if route is None:
            return None
        required: str | None = getattr(route.ctx, "role", None)
        if required is None:
            if route.name.removesuffix("_head").endswith(".openapi.oauth2-redirect"):
                # sanic-ext fetches this page from a CDN on every anonymous call, synchronously and without a
                # timeout, so one request could stall the event loop; serve the vendored copy instead.
                return await file(oauth2_redirect, mime_type="text/html; charset=utf-8")
            return None
        query_key = request.args.get("key") if getattr(route.ctx, "query_key", False) else None
        role, digest = app.ctx.keyring.authenticate(request.headers.get("authorization"), query_key)
        limiter = getattr(app.ctx, "rate_limiter", None)
        if limiter is not None:
            verdict = await limiter.check(digest)
            if not verdict.allowed:
                raise RateLimited("too many requests for this API key", context={"retry_after": verdict.retry_after})
        if required in ("finance", "admin") and role not in _allowed(required):
            raise Forbidden(f"this resource needs the {required} role")
        if not accepts_json(request.headers.get("accept")):
            raise SanicException("this resource is served as application/json only", status_code=406)
        request.ctx.role = role
        request.ctx.fed = RequestContext.start(role, settings.request_deadline)
        return None

    async def finish(request: Request, response: BaseHTTPResponse) -> None:
        response.headers["X-Request-ID"] = getattr(request.ctx, "request_id", "")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        route = request.route
        if route is not None and getattr(route.extra, "static", False):
            # Sanic's static handler sets Cache-Control for GET only; HEAD must say the same.
            response.headers.setdefault("Cache-Control", "no-cache")
        started = getattr(request.ctx, "started", None)
        seconds = time.perf_counter() - started if started is not None else 0.0
        metrics.observe_request(route_label(request), request.method, response.status, seconds)
        if getattr(request.ctx, "snapshot", False):
            metrics.snapshot_serves.inc()
        request_log.write(request, response, seconds * 1000)

    app.register_middleware(admit, "request", priority=100)
    app.register_middleware(finish, "response")
    return app


async def _exit_with_parent(parent: int) -> None:
    """A worker whose main process died would serve nothing useful and hold its port: leave too."""
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            log.error("main process %d is gone; worker %d exits", parent, os.getpid())
            os._exit(1)


def _allowed(required: str) -> tuple[str, ...]:
    return {"reader": ("reader", "finance", "admin"), "finance": ("finance", "admin"), "admin": ("admin",)}[required]
