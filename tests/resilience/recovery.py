"""What the recovery tests share: timed answers, clients under load, rounds until fresh, and what a server holds.

A recovery test warms a server under load, counts its threads and the connections through the proxies,
injects a fault under load, heals it, then polls every route until each answers fresh; once idle again,
what the server holds must be back to what it held before.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from cache.redis_client import make_redis
from deploy.local.faultproxy import FaultProxy
from tests.resilience.conftest import SOURCE_TIMEOUT
from tests.servers import Server

CLIENTS = 4                        # concurrent clients: enough to keep every Accounting worker busy
SETTLE_S = 10 * SOURCE_TIMEOUT     # for calls abandoned in a fault to end and give back their threads
THREAD_SLACK = 2
CONNECTION_SLACK = 2               # Warehouse's change watcher keeps a connection of its own, outside the pool
POLL_S = 0.1
# Redis' client pool reports no figures; what bounds it is the size it is made with.
REDIS_POOL_MAX = int(inspect.signature(make_redis).parameters["max_connections"].default)
UNANSWERED = 0                     # the status of a request that got no HTTP answer at all


@dataclass(frozen=True)
class Answer:
    """One request: how long it took, its status, meta.sources (empty when the body has none), and for
    an answer neither 200 nor 503, the start of its body."""

    path: str
    seconds: float
    status: int
    sources: Mapping[str, Mapping[str, Any]]
    detail: str = ""

    def report(self, source: str) -> Mapping[str, Any]:
        return self.sources.get(source) or {}


def ask(server: Server, path: str, role: str = "finance") -> Answer:
    started = time.monotonic()
    try:
        # Plain HTTP: no CA bundle to load, which costs 35 ms of CPU per request and, from a dozen
        # clients, starves the fault proxies that share this process (and so every source call).
        response = server.get(path, role=role, verify=False)
    except httpx.HTTPError as exc:
        return Answer(path, time.monotonic() - started, UNANSWERED, {}, repr(exc))
    seconds = time.monotonic() - started
    try:
        body = response.json()
    except ValueError:
        body = {}
    meta = body.get("meta") if isinstance(body, dict) else None
    detail = "" if response.status_code in (200, 503) else response.text[:500]
    return Answer(path, seconds, response.status_code, (meta or {}).get("sources") or {}, detail)


def ask_all(server: Server, paths: Sequence[str], role: str = "finance") -> list[Answer]:
    """Every path asked at once, as concurrent clients would."""
    with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
        return list(pool.map(lambda p: ask(server, p, role), paths))


def fresh(answer: Answer, source: str, ttl: float) -> bool:
    """A 200 with ``source``'s data read from it within ``ttl`` seconds, not served stale."""
    report = answer.report(source)
    return (answer.status == 200 and report.get("status") == "ok"
            and float(report.get("age_s", 0.0)) <= ttl)


class Load:
    """Clients asking ``paths`` in a loop until the block ends, every answer kept.

    Each client has a share of the paths of its own: clients going through one list would soon ask the
    same path at the same moment, be answered by one source call, and from then on move in lockstep,
    a load of one client.
    """

    def __init__(self, server: Server, paths: Sequence[str], *, clients: int = CLIENTS, role: str = "finance") -> None:
        self._server = server
        self._role = role
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.answers: list[Answer] = []
        shares = [list(paths[i::clients]) or list(paths) for i in range(clients)]
        self._threads = [threading.Thread(target=self._run, args=(share,), daemon=True) for share in shares]

    def _run(self, paths: list[str]) -> None:
        n = 0
        while not self._stop.is_set():
            answer = ask(self._server, paths[n % len(paths)], self._role)
            with self._lock:
                self.answers.append(answer)
            n += 1

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30.0)


@dataclass
class Recovery:
    """How long after the fault ended every route first answered as wanted, and each round's answers."""

    seconds: float
    rounds: list[list[Answer]] = field(default_factory=list)
    ended: list[float] = field(default_factory=list)   # seconds after the fault ended that each round did

    @property
    def answers(self) -> list[Answer]:
        return [a for r in self.rounds for a in r]

    @property
    def last(self) -> list[Answer]:
        return self.rounds[-1] if self.rounds else []


def recover(healed_at: float, one_round: Callable[[], list[Answer]], good: Callable[[list[Answer]], bool],
            watch_s: float) -> Recovery:
    """Rounds of ``one_round()`` until ``good`` holds for one, watching up to ``watch_s`` past ``healed_at``."""
    recovery = Recovery(0.0)
    while True:
        recovery.rounds.append(one_round())
        recovery.seconds = time.monotonic() - healed_at
        recovery.ended.append(recovery.seconds)
        if good(recovery.last) or recovery.seconds > watch_s:
            return recovery
        time.sleep(POLL_S)


def threads(server: Server) -> int:
    return len(os.listdir(f"/proc/{server.proc.pid}/task"))


def source_states(server: Server) -> dict[str, Any]:
    """/v1/sources as the finance role sees it: every source's breaker and pool figures, and the cache's."""
    response = server.get("/v1/sources", role="finance")
    assert response.status_code == 200, response.text[:300]
    states: dict[str, Any] = response.json()["data"]
    return states


def breaker(server: Server, source: str) -> str:
    return str(source_states(server)[source]["breaker"])


@dataclass(frozen=True)
class Footprint:
    """What a server holds: its threads, the connections open through each proxy, and each source's pool."""

    threads: int
    connections: Mapping[str, int]
    pools: Mapping[str, Mapping[str, int]]

    @property
    def busy(self) -> bool:
        return any(pool["in_use"] for pool in self.pools.values())


def footprint(server: Server, proxies: Mapping[str, FaultProxy]) -> Footprint:
    """``proxies`` are named as the sources are; a proxy of a source with a pool (not Redis) has its pool."""
    states = source_states(server)
    return Footprint(threads(server), {name: proxy.active_connections for name, proxy in proxies.items()},
                     {name: dict(states[name]["pool"]) for name in proxies if "pool" in states.get(name, {})})


def idle_footprint(server: Server, proxies: Mapping[str, FaultProxy]) -> Footprint:
    """The footprint once no source call is in flight, as after a load has ended."""
    until = time.monotonic() + SETTLE_S
    while (found := footprint(server, proxies)).busy and time.monotonic() < until:
        time.sleep(0.25)
    if found.busy:
        pytest.fail(f"source calls still in flight {SETTLE_S:.0f}s after the load ended: {found.pools}")
    return found


def excess(before: Footprint, now: Footprint) -> list[str]:
    """How ``now`` holds more than ``before`` allows, in words (empty when within bounds).

    Threads are to be as many as before, give or take: more is a leak, fewer a worker not replaced.
    Connections may have grown as a pool filled towards its size, never past it: the connections
    through a source's proxy are its pool's, none left behind by a call given up on. Redis' client pool
    reports no figures: its connections are bounded by its size.
    """
    problems = []
    if abs(now.threads - before.threads) > THREAD_SLACK:
        problems.append(f"{now.threads} threads, {before.threads} before")
    for name, pool in now.pools.items():
        if pool["in_use"]:
            problems.append(f"{name}: {pool['in_use']} calls still in flight, pool {dict(pool)}")
    for name, count in now.connections.items():
        held = now.pools.get(name)
        allowed = max(before.connections[name], REDIS_POOL_MAX if held is None else held["max"])
        if count > allowed + CONNECTION_SLACK:
            problems.append(f"{name}: {count} connections, {before.connections[name]} before, bound {allowed}")
        if held is not None and count > held["size"] + CONNECTION_SLACK:
            problems.append(f"{name}: {count} connections but the pool holds {held['size']}")
    return problems


def settled(server: Server, proxies: Mapping[str, FaultProxy], before: Footprint) -> tuple[Footprint, list[str]]:
    """The footprint once within ``before``'s bounds, or the last one seen after ``SETTLE_S``, with what is off."""
    until = time.monotonic() + SETTLE_S
    while True:
        now = footprint(server, proxies)
        problems = excess(before, now)
        if not problems or time.monotonic() > until:
            return now, problems
        time.sleep(0.25)


def invoiced_orders(server: Server, count: int) -> list[dict[str, Any]]:
    """``count`` seeded orders, as the finance role reads them, each with invoices and a product line."""
    invoices = server.get("/v1/invoices?status=paid&limit=100", role="finance").json()["data"]
    orders: list[dict[str, Any]] = []
    for no in dict.fromkeys(i["order_no"] for i in invoices if i["order_no"]):
        order = server.get(f"/v1/orders/{no}", role="finance").json().get("data")
        if order and order["invoices"] and order["lines"] and order["lines"][0]["sku"]:
            orders.append(order)
        if len(orders) == count:
            return orders
    pytest.fail("the seeded data has too few invoiced orders with a product line")
