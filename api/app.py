"""``create_app(settings)``: the Sanic app, its routes and middleware; ``api/wiring.py`` builds what they use."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from typing import Any

from sanic import HTTPResponse, Request, Sanic
from sanic.config import Config
from sanic.exceptions import SanicException
from sanic.response import BaseHTTPResponse, file
from sanic_ext import Extend
from sanic_ext.extensions.http.extension import HTTPExtension
from sanic_ext.extensions.openapi.extension import OpenAPIExtension

from api.admin import admin
from api.auth import KeyRing
from api.changes import changes
from api.dashboard import STATIC, install_dashboard
from api.logs import install_request_log
from api.metrics import install_metrics, route_label
from api.openapi import openapi_routes
from api.ops import ops
from api.problems import RateLimited, to_problem
from api.responses import accepts_events, accepts_json
from api.routes import v1
from api.server import ignore_repeated_stop_signals
from api.services import services
from api.settings import Settings
from api.wiring import SourceFactory, build_services, build_sources
from federation.context import RequestContext
from federation.errors import Forbidden
from federation.roles import grants

log = logging.getLogger("bizfed.api")
SWAGGER_UI = STATIC / "docs"   # swagger-ui-dist 5, vendored: it reads OpenAPI 3.1
SANIC_CONFIG = {
    "OAS_UI_DEFAULT": "swagger",
    "OAS_UI_REDOC": False,
    "OAS_URL_PREFIX": "/docs",
    "OAS_PATH_TO_SWAGGER_HTML": str(STATIC / "swagger.html"),
    "OAS_IGNORE_HEAD": True,
    "OAS_IGNORE_OPTIONS": True,
    "REQUEST_MAX_SIZE": 64 * 1024,
    "REQUEST_MAX_HEADER_SIZE": 8 * 1024,
    "KEEP_ALIVE_TIMEOUT": 15,
    "FALLBACK_ERROR_FORMAT": "json",
    "ACCESS_LOG": False,
}


def create_app(settings: Settings, *, make_sources: SourceFactory = build_sources,
               name: str = "bizfed") -> Sanic[Config, Any]:
    """The app; each worker builds its services (``api/wiring.py``) when its server starts."""
    app: Sanic[Config, Any] = Sanic(name, configure_logging=True)
    app.config.update({**SANIC_CONFIG,
                       "REQUEST_TIMEOUT": settings.head_timeout,   # the whole head, under api.server's protocol
                       "RESPONSE_TIMEOUT": max(30, settings.timeouts.deadline * 3)})
    # OpenAPI and HTTP (CORS, automatic HEAD and OPTIONS) only: the built-in injection extension,
    # unused here, would dispatch a signal on every request.
    Extend(app, built_in_extensions=False, extensions=[OpenAPIExtension, HTTPExtension])
    _describe(app)
    for blueprint in (v1, ops, openapi_routes, admin, changes):
        app.blueprint(blueprint)
    metrics = install_metrics(app)
    install_dashboard(app)
    app.error_handler.add(Exception, to_problem)
    app.error_handler.add(asyncio.CancelledError, to_problem)   # not an Exception: a client that hung up

    async def start(app: Sanic[Config, Any]) -> None:
        app.ctx.services = built = build_services(settings, metrics, make_sources)
        built.lifecycle.loops["parent-watch"] = lambda: _exit_with_parent(os.getppid())
        await built.lifecycle.start()

    async def settle_heap(app: Sanic[Config, Any]) -> None:
        # Everything built so far (Sanic, SQLAlchemy, pydantic schemas...) lives as long as the worker;
        # frozen, it is no longer walked by the collector's full collections during requests.
        gc.collect()
        gc.freeze()

    async def halt(app: Sanic[Config, Any]) -> None:
        ignore_repeated_stop_signals()
        await services(app).lifecycle.halt()

    async def stop(app: Sanic[Config, Any]) -> None:
        await services(app).lifecycle.stop()

    for listener, event in ((start, "before_server_start"), (settle_heap, "after_server_start"),
                            (halt, "before_server_stop"), (stop, "after_server_stop")):
        app.register_listener(listener, event)
    admit, finish = _middleware(app, settings, metrics)
    app.register_middleware(admit, "request", priority=100)
    app.register_middleware(finish, "response")
    return app


def _describe(app: Sanic[Config, Any]) -> None:
    app.ext.openapi.describe("bizfed", version="1.0.0",
                             description="One API over the Warehouse, Sales and Accounting systems.")
    app.ext.openapi.add_security_scheme("bearer", "http", scheme="bearer",
                                        description="An API key: `Authorization: Bearer <key>`")
    app.static("/docs/assets/bizfed-docs.js", STATIC / "bizfed-docs.js", name="docs_init")
    app.static("/docs/assets", SWAGGER_UI, name="docs_assets")
    app.static("/docs/oauth2-redirect.js", SWAGGER_UI / "oauth2-redirect.js", name="docs_oauth2_js")


def _middleware(app: Sanic[Config, Any], settings: Settings, metrics: Any) -> tuple[Any, Any]:
    """One request and one response middleware for all the per-request work: each middleware
    Sanic runs costs a few microseconds, a noticeable share of a cached answer."""
    keyring = KeyRing(settings.api_keys)
    request_log = install_request_log(app)
    oauth2_redirect = SWAGGER_UI / "oauth2-redirect.html"

    async def admit(request: Request) -> HTTPResponse | None:
        request.ctx.started = time.perf_counter()
        built = services(app)
        incoming = request.headers.get("x-request-id", "")
        request.ctx.request_id = (incoming if 0 < len(incoming) <= 128 and incoming.isprintable()
                                  else built.request_ids.new())
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
        role, digest = keyring.authenticate(request.headers.get("authorization"), query_key)
        limiter = built.limiter
        if limiter is not None:
            verdict = await limiter.check(digest)
            if not verdict.allowed:
                raise RateLimited("too many requests for this API key", context={"retry_after": verdict.retry_after})
        if not grants(role, required):
            raise Forbidden(f"this resource needs the {required} role")
        accept = request.headers.get("accept")
        if not accepts_json(accept) and not (getattr(route.ctx, "event_stream", False) and accepts_events(accept)):
            raise SanicException("this resource is served as application/json only", status_code=406)
        request.ctx.role = role
        request.ctx.fed = RequestContext.start(role, settings.timeouts.deadline)
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

    return admit, finish


async def _exit_with_parent(parent: int) -> None:
    """A worker whose main process died would serve nothing useful and hold its port: leave too."""
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            log.error("main process %d is gone; worker %d exits", parent, os.getpid())
            os._exit(1)

