"""Health probes are shared and bounded: /health/ready and /v1/sources over `bizfed serve`, counted at the backends.

Pings are counted where they arrive: Redis's MONITOR feed for this module's own logical database, and for
the SQL sources the bytes their fault proxies forwarded to the server, in units of one probe's bytes measured
just before (PostgreSQL reports its statistics up to 10 s late, MariaDB keeps none per database here).
"""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from deploy.local.backend_counts import RedisCommands
from deploy.local.faultproxy import FaultProxy
from tests.observability.conftest import Serve
from tests.servers import Server, Upstreams, wait_for

REDIS_DB = 2             # no other suite's server uses it (the acceptance server, on 13, lives all session)
PROBE_LIMIT_S = 1.0      # api/ops.py PROBE_TIMEOUT
REUSE_S = 1.0            # api/health.py REUSE_S: one probe per backend per second
# The sources' own timeouts, far beyond ten times the probe limit: an answer bounded by them, not by the
# probe limit, cannot pass for one that kept it.
SOURCE_TIMEOUT_S = 30
THREADS, ROUNDS = 16, 12


@pytest.fixture(name="proxies", scope="module")
def _proxies(upstreams: Upstreams, proxy_factory: Callable[[int], FaultProxy]) -> dict[str, FaultProxy]:
    return {"warehouse": proxy_factory(upstreams.warehouse_port), "sales": proxy_factory(upstreams.mariadb_port),
            "accounting": proxy_factory(upstreams.mariadb_port)}


@pytest.fixture(name="server", scope="module")
def _server(serve: Serve, proxies: dict[str, FaultProxy]) -> Server:
    # Change capture's statements would be counted with the pings: it is off here.
    settings = {"BIZFED_CHANGES_WAREHOUSE": "off", "BIZFED_CHANGES_SALES": "off", "BIZFED_CHANGES_ACCOUNTING": "off",
                "BIZFED_SOURCE_TIMEOUT": str(SOURCE_TIMEOUT_S),
                "BIZFED_CONNECT_TIMEOUT": str(SOURCE_TIMEOUT_S), "BIZFED_REQUEST_DEADLINE": str(2 * SOURCE_TIMEOUT_S)}
    return serve("shared-probes", settings, redis_db=REDIS_DB,
                 **{name: proxy.port for name, proxy in proxies.items()})


@pytest.fixture(autouse=True)
def _healed(server: Server, proxies: dict[str, FaultProxy]) -> Iterator[None]:
    """Every test starts with all dependencies passing traffic and reported up.

    Connections a test left silent are reset first: a ping stuck on one would otherwise wait out the
    sources' long timeouts before the next probe may start."""
    for proxy in proxies.values():
        proxy.reset()
        proxy.pass_through()
    wait_for(lambda: all(_ready(server)[1].values()), 30, "every dependency up")
    yield
    for proxy in proxies.values():
        proxy.reset()
        proxy.pass_through()


def _ready(server: Server) -> tuple[int, dict[str, bool]]:
    response = server.get("/health/ready")
    return response.status_code, {name: dep["up"] for name, dep in response.json()["dependencies"].items()}


def _burst(server: Server) -> float:
    """THREADS clients each asking /health/ready ROUNDS times back to back; the seconds it took."""
    def client() -> None:
        with httpx.Client(base_url=server.base, timeout=30) as http:
            for _ in range(ROUNDS):
                assert http.get("/health/ready").status_code == 200

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(client) for _ in range(THREADS)]:
            future.result()
    return time.monotonic() - started


def _one_probe(server: Server, proxies: dict[str, FaultProxy]) -> dict[str, int]:
    """The bytes one probe sends each SQL backend, each taken from the first /health/ready call that probed it
    (polled: a call within a second of the last probe is answered from it and sends nothing)."""
    sizes: dict[str, int] = {}
    deadline = time.monotonic() + 10 * REUSE_S
    while len(sizes) < len(proxies):
        assert time.monotonic() < deadline, f"not every backend probed within {10 * REUSE_S:.0f}s: {sizes}"
        before = {name: proxy.bytes_to_upstream for name, proxy in proxies.items()}
        assert server.get("/health/ready").status_code == 200
        for name, proxy in proxies.items():
            if name not in sizes and proxy.bytes_to_upstream > before[name]:
                sizes[name] = proxy.bytes_to_upstream - before[name]
        time.sleep(0.05)
    return sizes


def test_concurrent_readiness_calls_share_one_ping_per_backend_per_second(
        server: Server, upstreams: Upstreams, proxies: dict[str, FaultProxy]) -> None:
    """Hundreds of concurrent /health/ready calls cost each backend about one ping per second, not one per call."""
    redis = urlsplit(upstreams.redis_url)
    one_probe: dict[str, int] = {}
    for _ in range(2):   # the second time, every pool holds a connection already: a probe is a ping alone
        one_probe = _one_probe(server, proxies)
    time.sleep(REUSE_S)   # the burst starts with every answer due, so it makes at least one ping each

    before = {name: proxy.bytes_to_upstream for name, proxy in proxies.items()}
    with RedisCommands(redis.hostname or "127.0.0.1", redis.port or 6379, REDIS_DB) as monitor:
        seconds = _burst(server)
    pings = {name: (proxy.bytes_to_upstream - before[name]) / one_probe[name] for name, proxy in proxies.items()}
    pings["cache"] = monitor.count("PING")

    calls = THREADS * ROUNDS
    allowed = math.floor(seconds / REUSE_S) + 1
    assert all(0 < n <= allowed for n in pings.values()), \
        f"{calls} calls in {seconds:.2f}s: pings {pings}, at most {allowed} each expected"


def test_a_cut_source_shows_once_the_answer_has_expired(server: Server, proxies: dict[str, FaultProxy]) -> None:
    """A shared answer does not outlive its second for long: a source cut meanwhile soon shows as down, the
    others still up."""
    assert _ready(server)[1]["warehouse"] is True
    proxies["warehouse"].reset()
    proxies["warehouse"].refuse()
    seen: list[tuple[int, dict[str, bool]]] = []

    def shows_it_down() -> bool:
        seen.append(_ready(server))
        return seen[-1][1]["warehouse"] is False

    wait_for(shows_it_down, 10 * REUSE_S, "/health/ready shows the cut Warehouse as down", interval=0.05)
    status, deps = seen[-1]
    assert status == 200
    assert (deps["sales"], deps["accounting"]) == (True, True)


@pytest.mark.parametrize(("path", "role"), [("/health/ready", None), ("/v1/sources", "reader")])
def test_first_answer_after_warehouse_hangs_keeps_the_probe_limit(
        server: Server, proxies: dict[str, FaultProxy], path: str, role: str | None) -> None:
    """With the Warehouse blackholed mid-connection, the first readiness or sources answer that probes it
    comes within the probe limit (ten times it, here; the source's own timeout is 30 s) and says it is down."""
    assert _ready(server)[1]["warehouse"] is True   # the pool holds a connection that is about to go silent
    proxies["warehouse"].blackhole()
    time.sleep(REUSE_S)   # the next call is due to probe every backend
    started = time.monotonic()
    response = server.get(path, role=role)
    elapsed = time.monotonic() - started
    body = response.json()
    states = body["dependencies"] if path == "/health/ready" else body["data"]
    assert states["warehouse"]["up"] is False
    assert states["sales"]["up"] is True
    assert elapsed < 10 * PROBE_LIMIT_S < SOURCE_TIMEOUT_S, f"{path} took {elapsed:.2f}s with the Warehouse hanging"


def test_reader_sees_no_accounting_activity_but_finance_does(server: Server) -> None:
    """After finance users read invoices, a reader's /v1/sources gives Accounting's up and breaker only,
    while a finance user's gives its call figures."""
    for _ in range(3):
        assert server.get("/v1/invoices?limit=5", role="finance").status_code == 200
    time.sleep(REUSE_S)
    finance = server.get("/v1/sources", role="finance").json()["data"]
    reader = server.get("/v1/sources", role="reader").json()["data"]
    assert finance["accounting"]["calls"] >= 1
    assert {"latency_p50_ms", "error_rate", "last_success", "pool"} <= set(finance["accounting"])
    assert set(reader["accounting"]) == {"up", "breaker"}, reader["accounting"]
    assert reader["accounting"]["up"] is True
    # Sources a reader may read keep their figures.
    assert "calls" in reader["warehouse"]
    assert "pool" in reader["sales"]


def test_reader_dashboard_shows_no_accounting_activity(server: Server) -> None:
    """The dashboard's state follows the same rule: a reader's Accounting tile has no call figures."""
    for _ in range(3):
        assert server.get("/v1/invoices?limit=5", role="finance").status_code == 200
    finance = server.get("/dashboard/state", role="finance").json()["sources"]["accounting"]
    reader = server.get("/dashboard/state", role="reader").json()["sources"]["accounting"]
    assert finance["calls"] >= 1
    assert reader["status"] == "up"
    for figure in ("calls", "p50_ms", "p95_ms", "error_rate", "last_success", "last_error", "last_error_at"):
        assert reader[figure] is None, (figure, reader)


def test_connections_dropped_in_a_blip_do_not_read_as_down(server: Server, proxies: dict[str, FaultProxy]) -> None:
    """Every pooled connection reset at once, the network fine again: the next probe still finds each source
    up (the first ping meets a dead connection, the second a new one), not down until another round."""
    for proxy in proxies.values():
        proxy.reset()
        proxy.pass_through()
    time.sleep(1.5 * REUSE_S)   # past the shared result's life: the next read is a new probe
    status, deps = _ready(server)
    assert status == 200
    assert all(deps.values()), deps
