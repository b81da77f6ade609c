"""Operations routes: health probes and the state of every source."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi

from api.params import parse_query
from api.responses import dumps, json_response
from federation.sources import source_states

ops = Blueprint("ops")
PROBE_TIMEOUT = 1.0


async def dependency_states(ctx: Any, limit: float = PROBE_TIMEOUT) -> dict[str, Any]:
    """Ping every source and the cache (Redis itself when caching is off) within ``limit`` seconds."""
    connectors = getattr(ctx, "connectors", {})
    pings = {name: conn.ping for name, conn in connectors.items()}
    pools = {name: conn.pool_state for name, conn in connectors.items()}
    cache = getattr(ctx, "cache", None)
    redis = getattr(ctx, "redis", None)
    if cache is not None:
        pings["cache"] = cache.ping
    elif redis is not None:
        # With caching off Redis still carries breaker state and rate limits.
        pings["cache"] = redis.ping
    states = await source_states(pings, getattr(ctx, "policies", {}), pools, limit)
    if "cache" in states:
        states["cache"]["enabled"] = cache is not None
        if cache is not None:
            states["cache"].update({k: v for k, v in cache.state().items() if k not in ("up", "last_error")})
    return states


@ops.get("/health/live")
@openapi.definition(summary="Liveness: 200 while the process runs", tag="operations")
async def live(request: Request) -> HTTPResponse:
    return HTTPResponse(dumps({"status": "live"}), content_type="application/json")


@ops.get("/health/ready")
@openapi.definition(summary="Readiness: 200 when the cache or at least one source answers, else 503",
                    tag="operations")
async def ready(request: Request) -> HTTPResponse:
    states = await dependency_states(request.app.ctx)
    ok = any(s["up"] for s in states.values())
    body = {"status": "ready" if ok else "unavailable",
            "dependencies": {name: {"up": s["up"], **({"error": s["error"]} if "error" in s else {})}
                             for name, s in states.items()}}
    return HTTPResponse(dumps(body), status=200 if ok else 503, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


@ops.get("/v1/sources", ctx_role="reader")
@openapi.definition(summary="Each source's and the cache's state: up/down, breaker, latency, errors",
                    tag="operations", secured={"bearer": []})
async def sources(request: Request) -> HTTPResponse:
    parse_query(request.args, {})
    states = await dependency_states(request.app.ctx)
    return json_response(request, dumps({"data": states, "meta": {"sources": {}, "partial": False}}), "no-store")
