"""The state of each source and of the cache: reachability, breaker, latency, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from federation.policy import SourcePolicy
from federation.roles import FINANCE_ROLES

SOURCES = ("warehouse", "sales", "accounting")   # the legacy systems the core federates
Probe = Callable[[], Awaitable[None]]

# Sources whose traffic only some roles may see: the figures of their calls (counts, latency, errors,
# pool use) tell what those users are doing. Others get reachability and breaker state only.
RESTRICTED: Mapping[str, Collection[str]] = {"accounting": FINANCE_ROLES}
REACHABILITY = ("up", "breaker")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One health check's outcome: answered or not, in how many seconds, and why not."""

    up: bool
    seconds: float | None = None
    error: str | None = None


async def probe(check: asyncio.Task[None], limit: float) -> ProbeResult:
    """The outcome of a started health check, answered within ``limit`` seconds whatever the check does.

    A check still running at the limit is cancelled and left to end on its own: ``asyncio.wait_for``
    would wait for its clean-up too, which a connector may spend seconds on with an unreachable server.
    """
    started = time.monotonic()
    check.add_done_callback(_consume)
    done, _ = await asyncio.wait({check}, timeout=limit)
    if not done:
        check.cancel()
        return ProbeResult(False, None, "timeout")
    if check.cancelled():
        return ProbeResult(False, None, "cancelled")
    exc = check.exception()
    if isinstance(exc, TimeoutError):
        return ProbeResult(False, None, "timeout")
    if exc is not None:
        return ProbeResult(False, None, getattr(exc, "message", None) or type(exc).__name__)
    return ProbeResult(True, time.monotonic() - started, None)


def _consume(task: asyncio.Task[None]) -> None:
    # An abandoned check's failure is known (it timed out); retrieving it keeps asyncio from logging it.
    if not task.cancelled():
        task.exception()


def source_states(results: Mapping[str, ProbeResult], policies: Mapping[str, SourcePolicy],
                  pools: Mapping[str, Callable[[], dict[str, int]]]) -> dict[str, Any]:
    """Each probed dependency's entry: the probe's outcome, and for a source its breaker, call figures and pool."""
    states: dict[str, Any] = {}
    for name, result in results.items():
        entry: dict[str, Any] = {"up": result.up,
                                 "ping_ms": round(result.seconds * 1000, 2) if result.seconds is not None else None}
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
        if not result.up:
            entry["error"] = result.error
        if name in pools:
            entry["pool"] = pools[name]()
        states[name] = entry
    return states


def visible_to(states: Mapping[str, Any], role: str | None) -> dict[str, Any]:
    """``states`` as ``role`` may see them: a restricted source it cannot read shows only up and breaker."""
    shown: dict[str, Any] = {}
    for name, entry in states.items():
        readers = RESTRICTED.get(name)
        if readers is not None and role not in readers:
            entry = {key: entry[key] for key in REACHABILITY if key in entry}
        shown[name] = entry
    return shown
