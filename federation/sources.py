"""The state of each source and of the cache: reachability, breaker, latency, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from federation.policy import SourcePolicy

Probe = Callable[[], Awaitable[None]]


async def probe(check: Probe, limit: float) -> tuple[bool, float | None, str | None]:
    """(up, seconds, error) of one health check, bounded by ``limit`` seconds."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(check(), limit)
    except TimeoutError:
        return False, None, "timeout"
    except Exception as exc:
        return False, None, getattr(exc, "message", None) or type(exc).__name__
    return True, time.monotonic() - started, None


async def source_states(pings: Mapping[str, Probe], policies: Mapping[str, SourcePolicy],
                        pools: Mapping[str, Callable[[], dict[str, int]]], limit: float) -> dict[str, Any]:
    names = list(pings)
    results = await asyncio.gather(*(probe(pings[n], limit) for n in names))
    states: dict[str, Any] = {}
    for name, (up, seconds, error) in zip(names, results, strict=True):
        entry: dict[str, Any] = {"up": up, "ping_ms": round(seconds * 1000, 2) if seconds is not None else None}
        policy = policies.get(name)
        if policy is not None:
            snap = policy.stats.snapshot()
            entry.update({
                "breaker": policy.breaker_state,
                "calls": snap.calls,
                "latency_p50_ms": snap.p50_ms,
                "latency_p95_ms": snap.p95_ms,
                "error_rate": round(snap.error_rate, 4),
                "last_success": snap.last_success,
                "last_error": snap.last_error,
                "last_error_at": snap.last_error_at,
            })
        if not up:
            entry["error"] = error
        if name in pools:
            entry["pool"] = pools[name]()
        states[name] = entry
    return states
