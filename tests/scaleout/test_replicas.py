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
SANIC_MAIN_RACE = "Experienced exception while trying to serve"
LOAD_THREADS = 6
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
        wait_for(lambda: _breaker(replicas.b, "accounting") == "open", 5, "replica B sees the opening")
    finally:
        replicas.accounting_a.pass_through()
    wait_for(lambda: all(_invoices_ok(s) for s in (replicas.a, replicas.b)), 15,
             "invoices are served again once Accounting answers and the breakers let a trial through")


def _invoices_ok(server: Server) -> bool:
    return server.get("/v1/invoices?limit=1", role="finance").status_code == 200


def test_killing_a_replica_under_load_fails_at_most_what_was_in_flight(replicas: Replicas):
    """SIGKILL of replica B under load through nginx fails at most the requests in flight; the rest keep serving."""
    loads = [Load(replicas.nginx.base).start() for _ in range(LOAD_THREADS)]
    try:
        time.sleep(2.0)
        before = sum(load.total for load in loads)
        os.killpg(replicas.b.proc.pid, signal.SIGKILL)
        replicas.b.proc.wait(timeout=10)
        time.sleep(3.0)
        after = sum(load.total for load in loads) - before
    finally:
        for load in loads:
            load.stop()
    failed = sum(load.server_errors + len(load.errors) for load in loads)
    print(f"replicas: {before} requests before the kill, {after} after it, {failed} failed")
    assert before > 20, before
    assert after > 20, after
    assert failed <= LOAD_THREADS, [load.errors[:3] for load in loads]
    served_by = {entry.upstreams[-1] for entry in replicas.nginx.access_log()[-50:]}
    assert replicas.b.base.removeprefix("http://") not in served_by


def test_sigterm_finishes_the_request_in_flight_and_serves_no_new_one(replicas: Replicas):
    """SIGTERM to replica C lets its slow in-flight request finish with 200, serves no later request, exits 0."""
    replicas.sales_c.latency(SLOW_SALES)
    slow: dict[str, Any] = {}
    late: dict[str, Any] = {}
    slow_thread = threading.Thread(target=_request, args=(replicas.c, "/v1/orders?limit=13", slow))
    slow_thread.start()
    time.sleep(SLOW_SALES)
    assert slow_thread.is_alive(), slow
    signalled = time.monotonic()
    os.kill(replicas.c.proc.pid, signal.SIGTERM)
    time.sleep(0.2)
    late_thread = threading.Thread(target=_request, args=(replicas.c, "/health/live", late))
    late_thread.start()
    slow_thread.join(timeout=30)
    replicas.sales_c.pass_through()  # the shutdown hooks that close connections need not be slow too
    if "status" not in slow and SANIC_MAIN_RACE in replicas.c.log_text():
        pytest.xfail("Sanic 25.12's main process crashed on SIGTERM (WorkerManager._sync_states) and took the "
                     "in-flight request with it; `bizfed serve --workers 1` on Sanic.serve_single avoids it")
    assert slow.get("status") == 200, slow
    assert float(slow["at"]) > signalled
    try:
        code = replicas.c.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.xfail("the worker did not exit: Sanic 25.12's shutdown_tasks spins while a background task is "
                     "still pending at clean-up; cancelling and awaiting them in before_server_stop avoids it")
    assert code == 0
    stopped_after = time.monotonic() - signalled
    late_thread.join(timeout=30)
    print(f"graceful: in-flight request done {float(slow['at']) - signalled:.1f}s after SIGTERM, "
          f"process exited after {stopped_after:.1f}s, a request sent after SIGTERM got {late}")
    # Under Sanic's worker manager the main process keeps the listening socket until its worker ends: a
    # connection made meanwhile waits in the backlog and is reset, never served; afterwards it is refused.
    assert "status" not in late, late
    assert _refused(int(replicas.c.base.rsplit(":", 1)[1]))
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
