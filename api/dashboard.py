"""The health dashboard: ``GET /dashboard`` (a static page and script) polling ``GET /dashboard/state``."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sanic import Blueprint, HTTPResponse, Request, Sanic
from sanic.exceptions import NotFound
from sanic.response import BaseHTTPResponse, file
from sanic_ext import openapi

from api.health import PROBE_TIMEOUT
from api.logs import scrub
from api.metrics import refresh_health
from api.responses import dumps
from api.routing import read
from api.services import services
from federation.sources import SOURCES, visible_to

STATIC = Path(__file__).parent / "static"
ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

dashboard = Blueprint("dashboard")


async def secure(request: Request, response: BaseHTTPResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value


dashboard.middleware(secure, "response")


@read(dashboard, "/dashboard", ctx_role="reader", ctx_query_key=True)
@openapi.exclude()
async def page(request: Request) -> HTTPResponse:
    # The URL carries the key: never cache the page, and never send it on as a Referer (see the headers).
    return await file(STATIC / "dashboard.html", mime_type="text/html; charset=utf-8", no_store=True)


@read(dashboard, "/dashboard/assets/<name:str>")
@openapi.exclude()
async def asset(request: Request, name: str) -> HTTPResponse:
    if name not in ASSETS:
        raise NotFound("no such dashboard asset")
    return await file(STATIC / name, mime_type=ASSETS[name], max_age=0, request_headers=request.headers)


@read(dashboard, "/dashboard/state", ctx_role="reader")
@openapi.exclude()
async def state(request: Request) -> HTTPResponse:
    found = services(request.app)
    # A reader sees whether Accounting is up, never how busy finance users keep it.
    states = visible_to(await refresh_health(request, PROBE_TIMEOUT), request.ctx.role)
    totals = found.metrics.summary().as_dict()
    cache = cache_tile(states.get("cache"), found.cache, totals["cache"])
    cached = cache["status"] == "up" and bool((states.get("cache") or {}).get("enabled"))
    policies, outages = found.policies, found.outages
    sources: dict[str, dict[str, Any]] = {}
    for name in (n for n in SOURCES if n in states):
        policy = policies.get(name)
        first_failed = policy.stats.snapshot().failing_since if policy is not None else None
        sources[name] = source_tile(states[name], outages.since(name, failing(states[name]), first_failed), cached)
    body = {"sources": sources, "cache": cache, "requests": totals["requests"]}
    return HTTPResponse(dumps(body), content_type="application/json", headers={"Cache-Control": "no-store"})


@read(dashboard, "/dashboard/history", ctx_role="reader")
@openapi.exclude()
async def history(request: Request) -> HTTPResponse:
    """The last minutes of request and cache totals, so a freshly loaded page draws its charts at once."""
    kept = services(request.app).history
    body = {"now": round(time.time() * 1000), "interval_s": kept.interval, "samples": kept.samples()}
    return HTTPResponse(dumps(body), content_type="application/json", headers={"Cache-Control": "no-store"})


def failing(entry: dict[str, Any]) -> bool:
    """Whether the source is in an outage: down, or its breaker not closed."""
    return not entry["up"] or entry.get("breaker", "closed") != "closed"


def source_tile(entry: dict[str, Any], outage_since: datetime | None = None, cached: bool = False) -> dict[str, Any]:
    """A source's tile: up, degraded (breaker not closed, or its last call failed) or down.

    During an outage (see ``failing``), ``outage_since`` dates it and ``serving_from_cache`` says whether
    answers can come from the cache meanwhile.
    """
    breaker = entry.get("breaker", "closed")
    last_success: datetime | None = entry.get("last_success")
    last_error_at: datetime | None = entry.get("last_error_at")
    if not entry["up"]:
        status, reason = "down", entry.get("error") or "no answer"
    elif breaker != "closed":
        status, reason = "degraded", f"circuit breaker {breaker}"
    elif last_error_at is not None and (last_success is None or last_error_at > last_success):
        status, reason = "degraded", f"last call failed: {entry.get('last_error')}"
    else:
        status, reason = "up", None
    return {
        "status": status,
        "reason": scrub(reason) if reason else None,
        "breaker": breaker,
        "ping_ms": entry.get("ping_ms"),
        "p50_ms": entry.get("latency_p50_ms"),
        "p95_ms": entry.get("latency_p95_ms"),
        "error_rate": entry.get("error_rate"),
        "calls": entry.get("calls"),
        "last_success": last_success,
        "last_error": scrub(entry["last_error"]) if entry.get("last_error") else None,
        "last_error_at": last_error_at,
        "outage_since": outage_since,
        "serving_from_cache": outage_since is not None and cached,
        "changes": _capture(entry.get("changes")),
    }


def _capture(changes: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the tile says of change capture: mode, state, lag, last change, and why it fails."""
    if changes is None:
        return None
    return {"mode": changes.get("mode"), "state": changes.get("state"), "lag_s": changes.get("lag_s"),
            "last_change_at": changes.get("last_change_at"),
            "error": scrub(str(changes["error"])) if changes.get("error") else None}


def cache_tile(entry: dict[str, Any] | None, cache: Any, counts: dict[str, float] | None) -> dict[str, Any]:
    """The cache's tile: ``off`` when no cache is configured; ``counts`` are totals across workers."""
    if entry is None:
        return {"status": "off", "reason": "no cache configured", "counts": counts}
    detail: dict[str, Any] = {}
    state_of = getattr(cache, "state", None)
    if callable(state_of):
        detail = state_of()
    last_error = entry.get("error") or detail.get("last_error")
    return {
        "status": "up" if entry["up"] else "down",
        "reason": None if entry["up"] else scrub(str(last_error or "no answer")),
        "ping_ms": entry.get("ping_ms"),
        "last_error": scrub(str(detail["last_error"])) if detail.get("last_error") else None,
        "last_error_at": detail.get("last_error_at"),
        "counts": counts,
    }


def install_dashboard(app: Sanic[Any, Any]) -> None:
    """Serve the dashboard page, its assets, and its state and history endpoints."""
    app.blueprint(dashboard)
