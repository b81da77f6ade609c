"""Operations routes: health probes and the state of every source."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi

from api.health import CACHE, PROBE_TIMEOUT
from api.params import parse_query
from api.responses import dumps, json_response
from api.routing import read
from api.services import Services, services
from federation.sources import SOURCES, source_states, visible_to

ops = Blueprint("ops")


async def dependency_states(found: Services, limit: float = PROBE_TIMEOUT) -> dict[str, Any]:
    """Every source's and the cache's state, from probes at most a second old (see api/health.py).

    A probe that is due is answered within ``limit`` seconds whatever the backend does.
    """
    results = await found.probes.results(limit)
    pools = {name: source.pool_state for name, source in found.sources.items()}
    states = source_states(results, found.policies, pools)
    await _add_capture(found, states, limit)
    cache = found.cache
    if CACHE in states:
        states[CACHE]["enabled"] = cache is not None
        if cache is not None:
            states[CACHE].update({k: v for k, v in cache.state().items() if k not in ("up", "last_error")})
    return states


async def _add_capture(found: Services, states: dict[str, Any], limit: float) -> None:
    """Each source's change capture as its watcher, in whichever replica leads, last reported it."""
    if found.capture is None:
        return
    try:
        async with asyncio.timeout(limit):
            reports = await found.capture.reports([name for name in SOURCES if name in states])
    except Exception:   # the shared board unreachable: say nothing rather than something stale
        reports = {}
    now = time.time()
    for name, report in reports.items():
        if name not in states:
            continue
        mode = found.settings.change_modes.get(name, "auto")
        if report is None:
            states[name]["changes"] = {"mode": None, "state": "off" if mode == "off" else "unwatched"}
            continue
        shown = {k: v for k, v in report.items() if k != "reported_at"}
        if isinstance(shown.get("lag_s"), (int, float)):
            # The report is up to a round old; the cache may be that much further behind.
            shown["lag_s"] = round(shown["lag_s"] + max(0.0, now - float(report.get("reported_at", now))), 3)
        states[name]["changes"] = shown


@read(ops, "/health/live")
@openapi.definition(summary="Liveness: 200 while the process runs", tag="operations")
async def live(request: Request) -> HTTPResponse:
    return HTTPResponse(dumps({"status": "live"}), content_type="application/json")


@read(ops, "/health/ready")
@openapi.definition(summary="Readiness: 200 when the cache or at least one source answers, else 503",
                    tag="operations")
async def ready(request: Request) -> HTTPResponse:
    states = await dependency_states(services(request.app))
    ok = any(s["up"] for s in states.values())
    body = {"status": "ready" if ok else "unavailable",
            "dependencies": {name: {"up": s["up"], **({"error": s["error"]} if "error" in s else {})}
                             for name, s in states.items()}}
    return HTTPResponse(dumps(body), status=200 if ok else 503, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


@read(ops, "/v1/sources", ctx_role="reader")
@openapi.definition(summary="Each source's and the cache's state: up/down, breaker, latency, errors, change capture",
                    description="Probes are at most a second old and shared by all callers. A source's call "
                                "figures (calls, latency, error rate, last outcomes, ping time, pool) show what its "
                                "users do, so they are given only to roles that may read that source: for a "
                                "reader the accounting entry holds `up` and `breaker` alone. `changes` says how "
                                "the source's changes reach the cache: `mode` log or poll, `state` (watching, "
                                "failing, unwatched), `lag_s` (how far behind the source the cache may be), "
                                "`last_change_at` and the count seen by the current watcher.",
                    tag="operations", secured={"bearer": []})
async def sources(request: Request) -> HTTPResponse:
    parse_query(request.args, {})
    states = visible_to(await dependency_states(services(request.app)), getattr(request.ctx, "role", None))
    return json_response(request, dumps({"data": states, "meta": {"sources": {}, "partial": False}}), "no-store")
