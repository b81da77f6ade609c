"""Three bizfed replicas behind nginx sharing one Redis: shared cache and breakers, a crash, a graceful stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.legacy.schema import LegacyTargets
from deploy.local.balancer import Balancer, nginx_binary
from deploy.local.faultproxy import FaultProxy
from tests.scaleout.conftest import Load
from tests.servers import KEYS, Server, Upstreams, flush_redis_db, wait_for

REDIS_DB = 11
LOAD_THREADS = 6
SYNC_POLL_S = 0.5   # cache/breakers.py SharedBreakers' default poll: how soon another replica sees an opening
# Seconds added per chunk each way in front of replica C's Sales. Not the Warehouse: a watcher query that is
# slow to cancel at shutdown makes Sanic 25.12's shutdown_tasks spin forever (see BENCHMARKS.md, Multi-replica).
SLOW_SALES = 0.3
SETTINGS = {
    "BIZFED_BREAKER_FAIL_MAX": "2",
    "BIZFED_BREAKER_RESET": "3",
    "BIZFED_RETRY_ATTEMPTS": "1",
    "BIZFED_SOURCE_TIMEOUT": "15",
    "BIZFED_CONNECT_TIMEOUT": "10",
    "BIZFED_REQUEST_DEADLINE": "20",
}


@dataclass
class Replicas:
    """Replica A reaches Accounting through a proxy, C reaches Sales through one; B is plain."""

    a: Server
    b: Server
    c: Server
    accounting_a: FaultProxy
    sales_c: FaultProxy
    nginx: Balancer


@pytest.fixture(name="replicas", scope="module")
def _replicas(seeded: LegacyTargets, redis_url: str, launch: Callable[..., Server],
              proxy_factory: Callable[[int], FaultProxy], tmp_path_factory: pytest.TempPathFactory,
              ) -> Iterator[Replicas]:
    if nginx_binary() is None:
        pytest.skip("nginx (Debian package nginx) is not installed")
    up = Upstreams(seeded, redis_url)
    flush_redis_db(redis_url, REDIS_DB)
    accounting_a, sales_c = proxy_factory(up.mariadb_port), proxy_factory(up.mariadb_port)
    envs = {"replica-a": up.env(accounting=accounting_a.port, redis_db=REDIS_DB),
            "replica-b": up.env(redis_db=REDIS_DB),
            "replica-c": up.env(sales=sales_c.port, redis_db=REDIS_DB)}
    tmp_path_factory.getbasetemp()  # created once here: concurrent first calls race in pytest
    with ThreadPoolExecutor(3) as pool:  # each takes seconds to start; in parallel they take it once
        a, b, c = pool.map(lambda item: launch({**item[1], **SETTINGS}, name=item[0]), envs.items())
    ports = [int(s.base.rsplit(":", 1)[1]) for s in (a, b, c)]
    nginx = Balancer(Path(tmp_path_factory.mktemp("nginx")), ports).start()
    try:
        yield Replicas(a, b, c, accounting_a, sales_c, nginx)
    finally:
        nginx.stop()


def _cache_states(server: Server, path: str) -> set[str]:
    response = server.get(path, role="finance")
    assert response.status_code == 200, response.text
    return {s["cache"] for s in response.json()["meta"]["sources"].values() if "cache" in s}


def _breaker(server: Server, source: str) -> str:
    return str(server.get("/v1/sources", role="reader").json()["data"][source]["breaker"])


def test_a_value_cached_by_one_replica_is_a_hit_on_another(replicas: Replicas):
    """A read through replica A fills the shared cache, and replica B answers the same read as a hit."""
    path = "/v1/customers/2"
    assert _cache_states(replicas.a, path) == {"miss"}
    assert _cache_states(replicas.b, path) == {"hit"}


def test_a_breaker_opened_by_one_replica_is_open_on_another(replicas: Replicas):
    """Accounting failing behind replica A opens A's breaker, and replica B reports it open too."""
    replicas.accounting_a.reset()
    replicas.accounting_a.refuse()
    try:
        for limit in range(1, 8):
            replicas.a.get(f"/v1/invoices?limit={limit}", role="finance")
            if _breaker(replicas.a, "accounting") == "open":
                break
        assert _breaker(replicas.a, "accounting") == "open"
        wait_for(lambda: _breaker(replicas.b, "accounting") == "open", 20 * SYNC_POLL_S,
                 "replica B sees the opening")
    finally:
        replicas.accounting_a.pass_through()
    reset = float(SETTINGS["BIZFED_BREAKER_RESET"])
    wait_for(lambda: all(_invoices_ok(s) for s in (replicas.a, replicas.b)), 10 * reset,
             "invoices are served again once Accounting answers and the breakers let a trial through")


def _invoices_ok(server: Server) -> bool:
    return server.get("/v1/invoices?limit=1", role="finance").status_code == 200


def test_killing_a_replica_under_load_fails_at_most_what_was_in_flight(replicas: Replicas):
    """SIGKILL of replica B under load through nginx fails at most the requests in flight; the rest keep serving."""
    loads = [Load(replicas.nginx.base).start() for _ in range(LOAD_THREADS)]

    def total() -> int:
        return sum(load.total for load in loads)

    try:
        wait_for(lambda: total() > 100, 60, "100 requests through nginx before the kill")
        before = total()
        os.killpg(replicas.b.proc.pid, signal.SIGKILL)
        replicas.b.proc.wait(timeout=10)
        # More than the 50 access-log entries looked at below, so those are all answered after the kill.
        wait_for(lambda: total() - before > 100, 60, "100 requests through nginx after the kill")
        after = total() - before
    finally:
        for load in loads:
            load.stop()
    failed = sum(load.server_errors + len(load.errors) for load in loads)
    print(f"replicas: {before} requests before the kill, {after} after it, {failed} failed")
    assert failed <= LOAD_THREADS, [load.errors[:3] for load in loads]
    served_by = {entry.upstreams[-1] for entry in replicas.nginx.access_log()[-50:]}
    assert replicas.b.base.removeprefix("http://") not in served_by


def test_sigterm_finishes_the_request_in_flight_and_serves_no_new_one(replicas: Replicas):
    """SIGTERM to replica C stops it taking connections while its slow in-flight request still runs; that
    request finishes with 200, and the process exits 0."""
    port = int(replicas.c.base.rsplit(":", 1)[1])
    replicas.sales_c.latency(SLOW_SALES)
    slow: dict[str, Any] = {}
    sent = replicas.sales_c.bytes_to_upstream
    slow_thread = threading.Thread(target=_request, args=(replicas.c, "/v1/orders?limit=13", slow))
    slow_thread.start()
    # The request is in flight once its queries reach Sales; their answers take SLOW_SALES per chunk each way.
    wait_for(lambda: replicas.sales_c.bytes_to_upstream > sent, 30, "the slow request's queries reach Sales",
             interval=0.01)
    signalled = time.monotonic()
    os.kill(replicas.c.proc.pid, signal.SIGTERM)
    wait_for(lambda: _refused(port), 30, "replica C refuses new connections after SIGTERM", interval=0.01)
    in_flight_when_closed = slow_thread.is_alive()
    late: dict[str, Any] = {}
    _request(replicas.c, "/health/live", late)
    slow_thread.join(timeout=60)
    replicas.sales_c.pass_through()  # the shutdown hooks that close connections need not be slow too
    assert in_flight_when_closed, f"the slow request ended before the listener closed: {slow}"
    assert slow.get("status") == 200, (slow, replicas.c.log_text()[-4000:])
    assert float(slow["at"]) > signalled
    try:
        code = replicas.c.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"replica C still runs 60 s after SIGTERM:\n{replicas.c.log_text()[-4000:]}")
    stopped_after = time.monotonic() - signalled
    print(f"graceful: in-flight request done {float(slow['at']) - signalled:.1f}s after SIGTERM, "
          f"process exited after {stopped_after:.1f}s, a request sent after the listener closed got {late}")
    assert code == 0, replicas.c.log_text()[-4000:]
    assert "status" not in late, late
    assert _refused(port)
    response = httpx.get(replicas.nginx.base + "/v1/locations",
                         headers={"Authorization": f"Bearer {KEYS['reader']}"}, timeout=10)
    assert response.status_code == 200, "nginx routes around both stopped replicas"


def _request(server: Server, path: str, into: dict[str, Any]) -> None:
    try:
        into["status"] = server.get(path, role="reader").status_code
    except httpx.HTTPError as exc:
        into["error"] = type(exc).__name__
    into["at"] = time.monotonic()


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
