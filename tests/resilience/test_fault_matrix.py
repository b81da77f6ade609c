"""Every fault, on every dependency, healed: the routes answer fresh again within two breaker resets.

For each of Warehouse, Sales, Accounting and Redis, and each fault the proxy can make, the fault runs
under load and is then switched off; from then on every route that touches the dependency must answer
fresh within ``RECOVERY_S``, no request may overrun its deadline, and once idle the server must hold the
threads and connections it held before. Durations come from the environment: the defaults keep ``make
test`` short, ``make test-faults`` runs the issue's figures (30 s faults, 60 s of flapping).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from deploy.local.faultproxy import FaultProxy
from deploy.local.process import stop_group
from tests.resilience.conftest import DEADLINE, RESET, SOURCE_TIMEOUT, Faults
from tests.resilience.recovery import (
    Answer,
    Footprint,
    Load,
    Recovery,
    ask_all,
    fresh,
    idle_footprint,
    invoiced_orders,
    recover,
    settled,
    source_states,
)
from tests.servers import Server, flush_redis_db

REDIS_DB = 15      # the stale-truth, invalidation and blackhole modules' too: each flushes it, and modules run in turn
SOURCES = ("warehouse", "sales", "accounting")
DEPENDENCIES = (*SOURCES, "redis")
MODES = ("blackhole", "reset", "refuse", "slow", "flapping")
FAULT_S = float(os.environ.get("BIZFED_FAULT_SECONDS", "3"))
FLAP_S = float(os.environ.get("BIZFED_FLAP_SECONDS", "6"))
FLAP_PERIOD_S = 1.0                # 1 s blackholed, 1 s passing, in turn
SLOW_S = 1.5 * SOURCE_TIMEOUT      # added to every chunk each way: no attempt can finish in its timeout
TTL = 0.5                          # every source's answers are fresh this long: "ok" then means read just now
RECOVERY_S = 2 * RESET             # the bound, from the end of the fault to fresh answers on every route
WATCH_S = 5 * RECOVERY_S           # keep polling past the bound, to report how long recovery did take
DEADLINE_SLACK_S = SOURCE_TIMEOUT  # scheduling on a busy two-core machine, and the HTTP exchange itself
WARM_S = 1.5
ORDERS = 6                         # distinct ids per route, so concurrent calls are not folded into one

# Known failures, (dependency, mode) to the cause, each marked xfail until fixed; none at present.
# (Not strict: the ones found so far each depended on timing and showed in most runs, not all.)
KNOWN: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Route:
    """One path of a route, with the sources it reads for the finance role (see api/routes.py)."""

    path: str
    sources: frozenset[str]


def _routes(orders: list[dict[str, Any]]) -> list[list[Route]]:
    """For each order, one path of every route, with ids from that order (and page sizes to match)."""
    def of(n: int, order: dict[str, Any]) -> list[Route]:
        limit = 10 + n
        return [
            Route(f"/v1/locations?limit={1 + n}", frozenset({"warehouse"})),
            Route(f"/v1/products?limit={limit}", frozenset({"warehouse", "sales", "accounting"})),
            Route(f"/v1/products/{order['lines'][0]['sku']}", frozenset({"warehouse", "sales", "accounting"})),
            Route(f"/v1/customers/{order['customer']['id']}", frozenset({"sales", "accounting"})),
            Route(f"/v1/customers?limit={limit}", frozenset({"sales", "accounting"})),
            Route(f"/v1/orders/{order['order_no']}", frozenset({"sales", "warehouse", "accounting"})),
            Route(f"/v1/orders?limit={limit}", frozenset({"sales"})),
            Route(f"/v1/invoices?limit={limit}", frozenset({"accounting", "sales"})),
            Route(f"/v1/sold-items?limit={limit}", frozenset({"sales", "warehouse"})),
        ]
    return [of(n, order) for n, order in enumerate(orders)]


def _touching(routes: list[Route], dependency: str) -> list[str]:
    """The paths that need ``dependency``: every one does Redis (the cache, the limiter, the breaker board)."""
    return [r.path for r in routes if dependency == "redis" or dependency in r.sources]


@dataclass
class Setup:
    server: Server
    routes: list[list[Route]]   # routes[0] is the one path per route polled for recovery; all are load


@pytest.fixture(name="dependency", scope="module", params=DEPENDENCIES)
def _dependency(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(name="setup", scope="module")
def _setup(dependency: str, faults: Faults, redis_url: str, launch: Callable[..., Server]) -> Iterator[Setup]:
    """One server per dependency, for all its modes: each case ends with the server recovered, or fails."""
    faults.heal()
    flush_redis_db(redis_url, REDIS_DB)
    fresh_briefly = f"{TTL},0,3600"   # fresh for TTL, no stale-while-revalidate, stale-if-error for an hour
    server = launch(faults.env(REDIS_DB, BIZFED_LOCAL_CACHE_TTL="0", BIZFED_FRESHNESS_WAREHOUSE=fresh_briefly,
                               BIZFED_FRESHNESS_SALES=fresh_briefly, BIZFED_FRESHNESS_ACCOUNTING=fresh_briefly,
                               BIZFED_RATE_LIMIT="100000000",   # the limiter still asks Redis, never refuses
                               # The footprint counted here is the request path's: change capture's own
                               # connections through these proxies, and its faults, are tests/changes/'s.
                               BIZFED_CHANGES_WAREHOUSE="off", BIZFED_CHANGES_SALES="off",
                               BIZFED_CHANGES_ACCOUNTING="off"),
                    name=f"fault-matrix-{dependency}")
    routes = _routes(invoiced_orders(server, ORDERS))
    for route, answer in zip(routes[0], ask_all(server, [r.path for r in routes[0]]), strict=True):
        assert answer.status == 200, answer
        assert set(answer.sources) == route.sources, (route, answer)   # the table above is api/routes.py's
    yield Setup(server, routes)
    faults.heal()
    stop_group(server.proc)   # not left running beside the next dependency's server


def _proxies(faults: Faults) -> dict[str, FaultProxy]:
    return {name: getattr(faults, name) for name in DEPENDENCIES}


def _inject(proxy: FaultProxy, mode: str) -> None:
    """Run ``mode`` for its duration, then pass everything again."""
    try:
        if mode == "flapping":
            # Blackhole rather than refuse: each on-phase silences the connections in use, which stay
            # dead after it, so every off-phase must find and replace them; refuse spares open connections.
            until = time.monotonic() + FLAP_S
            while time.monotonic() < until:
                proxy.blackhole()
                time.sleep(FLAP_PERIOD_S)
                proxy.pass_through()
                time.sleep(FLAP_PERIOD_S)
            return
        if mode == "blackhole":
            proxy.blackhole()           # established connections go silent, and new ones are accepted and ignored
        elif mode == "reset":
            proxy.reset()               # every open connection and each new one is reset
        elif mode == "refuse":
            proxy.reset()               # a crashed server: its connections cut, then connects refused;
            proxy.refuse()              # refuse alone would leave the pooled connections working
        elif mode == "slow":
            proxy.latency(SLOW_S)
        else:
            raise ValueError(mode)
        time.sleep(FAULT_S)
    finally:
        proxy.pass_through()


def _healthy(answer: Answer, dependency: str) -> bool:
    """A 200 with the dependency's part fresh: read from the source just now, or for Redis, through the cache."""
    if dependency != "redis":
        return fresh(answer, dependency, TTL)
    return answer.status == 200 and all(r.get("status") == "ok" and r.get("cache") != "bypass"
                                        for r in answer.sources.values())


def _hurt(answer: Answer, dependency: str) -> bool:
    """The answer shows the fault: the source not read, or for Redis, the cache bypassed."""
    if dependency != "redis":
        return answer.report(dependency).get("status") not in (None, "ok") or answer.status != 200
    return any(r.get("cache") == "bypass" for r in answer.sources.values())


def _failures(server: Server, dependency: str) -> float:
    """The dependency's failed calls and retries so far; for Redis, its errors and bypassed lookups."""
    if dependency == "redis":
        cache = source_states(server)["cache"]
        return float(cache["redis_errors"] + cache["bypass"])
    failed = sum(value for (name, labels), value in server.metrics().items()
                 if name == "bizfed_source_calls_total" and ("source", dependency) in labels
                 and ("outcome", "ok") not in labels)
    return failed + server.value("bizfed_source_retries_total", source=dependency)


def _openings(server: Server, dependency: str) -> float:
    """How often the dependency's breaker has opened so far (Redis has none)."""
    if dependency == "redis":
        return 0.0
    return server.value("bizfed_source_breaker_transitions_total", source=dependency, state="open")


@pytest.mark.parametrize("mode", MODES)
def test_recovers_after_fault(setup: Setup, dependency: str, mode: str, faults: Faults,
                              request: pytest.FixtureRequest) -> None:
    """``mode`` on ``dependency`` under load, then healed: fresh answers on every route within two breaker
    resets, no request past its deadline, and once idle the threads and connections held before."""
    if (dependency, mode) in KNOWN:
        request.applymarker(pytest.mark.xfail(reason=KNOWN[dependency, mode], strict=False))
    server, proxies = setup.server, _proxies(faults)
    polled = _touching(setup.routes[0], dependency)
    load_paths = [p for routes in setup.routes for p in _touching(routes, dependency)]

    with Load(server, load_paths):
        time.sleep(WARM_S)   # worker threads and pooled connections in use, as under traffic
    before = idle_footprint(server, proxies)
    baseline = ask_all(server, polled)
    assert all(_healthy(a, dependency) for a in baseline), baseline
    failures_before, openings_before = _failures(server, dependency), _openings(server, dependency)

    opened_before = proxies[dependency].connections_total
    with Load(server, load_paths) as load:
        _inject(proxies[dependency], mode)
        opened = proxies[dependency].connections_total - opened_before   # new connections the fault met
        healed_at = time.monotonic()
        openings_at_heal = _openings(server, dependency)
        recovery = recover(healed_at, lambda: ask_all(server, polled),
                           lambda answers: all(_healthy(a, dependency) for a in answers), WATCH_S)
    states = source_states(server)
    failures = _failures(server, dependency) - failures_before
    openings = _openings(server, dependency)
    breaker = (f"breaker opened {openings_at_heal - openings_before:.0f}x in the fault, "
               f"{openings - openings_at_heal:.0f}x after")
    after, leftovers = settled(server, proxies, before)

    answers = load.answers + recovery.answers
    slowest = max(answers, key=lambda a: a.seconds)
    print(f"\n{dependency} {mode}: recovered in {recovery.seconds:.2f}s (bound {RECOVERY_S:.0f}s), slowest "
          f"{slowest.seconds:.2f}s {slowest.path} (deadline {DEADLINE:.0f}s); {len(load.answers)} answers under "
          f"load, {sum(_hurt(a, dependency) for a in load.answers)} hurt, {failures:.0f} failures, {breaker}, "
          f"{opened} new connections in the fault; footprint {_brief(before)} -> {_brief(after)}")
    assert failures > 0, "the fault never reached a call"
    assert recovery.seconds <= RECOVERY_S, (
        f"{dependency} routes fresh again only {recovery.seconds:.1f}s after the {mode} ended (bound "
        f"{RECOVERY_S:.0f}s); {breaker}; rounds {_unhealthy(recovery, dependency)}; states {states}")
    assert slowest.seconds <= DEADLINE + DEADLINE_SLACK_S, slowest
    odd = [a for a in answers if a.status not in (200, 503)]
    assert not odd, odd[:5]
    assert not leftovers, (leftovers, before, after)


def _unhealthy(recovery: Recovery, dependency: str) -> list[str]:
    """Each round, when it ended, and what was wrong in it."""
    return [f"+{ended:.1f}s: " + "; ".join(f"{a.path} {a.status} {a.seconds:.2f}s {dict(a.sources)}"
                                          for a in answers if not _healthy(a, dependency))
            for ended, answers in zip(recovery.ended, recovery.rounds, strict=True)]


def _brief(found: Footprint) -> str:
    connections = " ".join(f"{name}={count}" for name, count in found.connections.items())
    return f"threads={found.threads} {connections}"
