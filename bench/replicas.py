"""Issue 9: three bizfed replicas behind nginx sharing one Redis: shared cache and breaker, a crash, a graceful stop.

Run: ``make replicas`` or ``python -m bench.replicas [--seconds S] [--connections C]``. Needs Debian's
nginx and wrk. Prints the markdown of the BENCHMARKS.md section "Multi-replica".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.harness import ADMIN, ROOT, free_port, seeded, server_env, wrk
from deploy.local.addresses import dsn_port, dsn_with_port, odbc_port, odbc_with_port, url_with_port
from deploy.local.balancer import Balancer
from deploy.local.faultproxy import FaultProxy
from deploy.local.process import start_group, stop_group

REDIS_DB = 14
PATHS = ["/v1/locations", "/v1/products?limit=20", "/v1/customers/1", "/v1/orders?limit=20", "/v1/customers/3"]
SLOW = 0.3  # seconds added per chunk, each way, in front of replica C's slow source
EXIT_WAIT = 60.0
SLOW_PATHS = {"sales": "/v1/orders?limit=13", "warehouse": "/v1/locations?limit=13"}
SETTINGS = {
    "BIZFED_BREAKER_FAIL_MAX": "2",
    "BIZFED_BREAKER_RESET": "3",
    "BIZFED_RETRY_ATTEMPTS": "1",
    "BIZFED_SOURCE_TIMEOUT": "15",
    "BIZFED_CONNECT_TIMEOUT": "10",
    "BIZFED_REQUEST_DEADLINE": "20",
}
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@dataclass
class Replica:
    name: str
    base: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def address(self) -> str:
        return self.base.removeprefix("http://")

    def get(self, path: str, timeout: float = 30.0) -> httpx.Response:
        return httpx.get(self.base + path, headers=AUTH, timeout=timeout)

    def breaker(self, source: str) -> str:
        return str(self.get("/v1/sources").json()["data"][source]["breaker"])

    def cache_states(self, path: str) -> set[str]:
        return {s["cache"] for s in self.get(path).json()["meta"]["sources"].values() if "cache" in s}


@dataclass
class PyLoad:
    """Requests ``paths`` round robin from a few threads until stopped, counting outcomes and the slowest."""

    base: str
    threads: int = 4
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    slowest: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> PyLoad:
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, args=(i,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=40)

    @property
    def failed(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500) + sum(self.errors.values())

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    def _run(self, offset: int) -> None:
        with httpx.Client(base_url=self.base, headers=AUTH, timeout=30) as client:
            i = offset
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self.statuses[client.get(PATHS[i % len(PATHS)]).status_code] += 1
                except httpx.HTTPError as exc:
                    self.errors[type(exc).__name__] += 1
                self.slowest = max(self.slowest, time.monotonic() - started)
                i += 1







def start_replica(name: str, env: Mapping[str, str], logs: Path) -> Replica:
    port = free_port()
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        proc = start_group([sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", "1"],
                           env=env, cwd=ROOT, output=out)
    replica = Replica(name, f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(replica.base + "/health/live", timeout=1).status_code == 200:
                return replica
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start; see {log}")
        time.sleep(0.2)


def wait_until(check: Any, timeout: float, what: str) -> float:
    """Seconds until ``check()`` held; RuntimeError naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"not within {timeout:g}s: {what}")


def refused(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


@contextlib.contextmanager
def replicas(env: Mapping[str, str], targets: Any, root: Path,
             slow_source: str) -> Iterator[tuple[list[Replica], FaultProxy, FaultProxy, Balancer]]:
    """Replicas A (Accounting behind a proxy), B, C (``slow_source`` behind a proxy) and nginx over them."""
    redis_url = env["BIZFED_REDIS_URL"].rsplit("/", 1)[0] + f"/{REDIS_DB}"
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    client.flushdb()
    client.close()
    with contextlib.ExitStack() as stack:
        accounting = stack.enter_context(FaultProxy("127.0.0.1", odbc_port(targets.accounting_odbc)))
        slow_port = dsn_port(targets.warehouse_dsn) if slow_source == "warehouse" else odbc_port(
            targets.accounting_odbc)  # Sales and Accounting share the MariaDB server
        slow = stack.enter_context(FaultProxy("127.0.0.1", slow_port))
        slow_setting = ({"BIZFED_WAREHOUSE_DSN": dsn_with_port(targets.warehouse_dsn, slow.port)}
                        if slow_source == "warehouse" else
                        {"BIZFED_SALES_URL": url_with_port(targets.sales_url, slow.port)})
        base = server_env(env, targets, BIZFED_REDIS_URL=redis_url, **SETTINGS)
        envs = {
            "A": {**base, "BIZFED_ACCOUNTING_ODBC": odbc_with_port(targets.accounting_odbc, accounting.port)},
            "B": base,
            "C": {**base, **slow_setting},
        }
        started: list[Replica] = []

        def start(item: tuple[str, dict[str, str]]) -> Replica:
            replica = start_replica(item[0], item[1], root)
            started.append(replica)
            return replica

        try:
            with ThreadPoolExecutor(3) as pool:
                group = list(pool.map(start, envs.items()))
            nginx = stack.enter_context(Balancer(root / "nginx", [int(r.address.rsplit(":", 1)[1]) for r in group]))
            yield group, accounting, slow, nginx
        finally:
            for replica in started:
                stop_group(replica.proc)


def shared_cache(a: Replica, b: Replica) -> dict[str, Any]:
    path = "/v1/customers/2"
    return {"first": a.cache_states(path), "other": b.cache_states(path)}


def shared_breaker(a: Replica, others: list[Replica], proxy: FaultProxy) -> dict[str, Any]:
    proxy.reset()
    proxy.refuse()
    try:
        calls = 0
        for limit in range(1, 10):
            calls += 1
            a.get(f"/v1/invoices?limit={limit}")
            if a.breaker("accounting") == "open":
                break
        seen = {r.name: wait_until(lambda r=r: r.breaker("accounting") == "open", 10, f"{r.name} sees it open")
                for r in others}
    finally:
        proxy.pass_through()
    for replica in [a, *others]:
        wait_until(lambda r=replica: r.get("/v1/invoices?limit=1").status_code == 200, 20,
                   f"{replica.name} serves invoices again")
    return {"calls": calls, "seen_after": seen}


def crash(nginx: Balancer, victim: Replica, seconds: int, connections: int, kill_at: float) -> dict[str, Any]:
    killed: dict[str, float] = {}

    def kill() -> None:
        killed["at"] = time.time()
        os.killpg(victim.proc.pid, signal.SIGKILL)

    timer = threading.Timer(kill_at, kill)
    skip = len(nginx.access_log())
    timer.start()
    try:
        result = wrk("crash", nginx.base, PATHS, seconds=seconds, connections=connections, threads=2)
    finally:
        timer.cancel()
    victim.proc.wait(timeout=10)
    log = nginx.access_log()[skip:]
    at = killed["at"]
    before = [e for e in log if at - 5 <= e.at < at]
    after = [e for e in log if at + 1 <= e.at < at + 6]
    retried = [e for e in log if len(e.upstreams) > 1 and e.upstreams[0] == victim.address]
    at_crash = [e for e in retried if e.at - e.seconds < at + 1]
    failed = [e for e in log if e.status >= 500]
    late = [e for e in log if e.at >= at + 1 and e.upstreams and e.upstreams[-1] == victim.address]
    around = [e.seconds for e in log if at - 0.5 <= e.at < at + 2]
    return {"wrk": result, "logged": len(log), "before_rps": len(before) / 5, "after_rps": len(after) / 5,
            "at_crash": len(at_crash), "retried_later": len(retried) - len(at_crash), "failed": len(failed),
            "served_by_victim_after": len(late),
            "slowest_around": max(around, default=0.0),
            "by_replica": Counter(e.upstreams[-1] for e in log if e.upstreams)}


def graceful(nginx: Balancer, victim: Replica, proxy: FaultProxy, path: str) -> dict[str, Any]:
    proxy.latency(SLOW)
    slow: dict[str, Any] = {}
    late: dict[str, Any] = {}

    def request(path: str, into: dict[str, Any]) -> None:
        try:
            into["status"] = victim.get(path).status_code
        except httpx.HTTPError as exc:
            into["error"] = type(exc).__name__
        into["at"] = time.monotonic()

    with PyLoad(nginx.base) as load:
        time.sleep(1.0)
        in_flight = threading.Thread(target=request, args=(path, slow))
        in_flight.start()
        time.sleep(SLOW)
        signalled = time.monotonic()
        os.kill(victim.proc.pid, signal.SIGTERM)
        time.sleep(0.2)
        after = threading.Thread(target=request, args=("/health/live", late))
        after.start()
        in_flight.join(timeout=30)
        proxy.pass_through()
        try:
            code: int | None = victim.proc.wait(timeout=EXIT_WAIT)
        except subprocess.TimeoutExpired:
            code = None  # left to the clean-up, which kills the group
        exited = time.monotonic() - signalled
        after.join(timeout=30)
        time.sleep(1.0)
    return {"slow": slow.get("status", slow.get("error")), "slow_done": slow["at"] - signalled,
            "late": late.get("status", late.get("error")), "exit": code, "exited": exited,
            "refused_after": refused(victim.address), "load_total": load.total, "load_failed": load.failed,
            "load_slowest": load.slowest}


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas")
    parser.add_argument("--seconds", type=int, default=20, help="wrk duration of the crash run")
    parser.add_argument("--connections", type=int, default=48)
    parser.add_argument("--kill-at", type=float, default=8.0, help="seconds into the crash run to SIGKILL replica B")
    parser.add_argument("--slow-source", choices=sorted(SLOW_PATHS), default="sales",
                        help="the source made slow behind replica C for the graceful stop (warehouse shows the "
                             "Sanic shutdown spin described in BENCHMARKS.md)")
    parser.add_argument("--keep", metavar="DIR", help="keep the server and nginx logs in DIR")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        env, targets = stack.enter_context(seeded(1, name="replicas"))
        tmp = Path(args.keep) if args.keep else Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="bizfed-replicas-")))
        tmp.mkdir(parents=True, exist_ok=True)
        (a, b, c), accounting, slow, nginx = stack.enter_context(replicas(env, targets, tmp, args.slow_source))
        cache = shared_cache(a, b)
        breaker = shared_breaker(a, [b, c], accounting)
        kill = crash(nginx, b, args.seconds, args.connections, args.kill_at)
        stop = graceful(nginx, c, slow, SLOW_PATHS[args.slow_source])
    w = kill["wrk"]
    exit_text = (f"exit code {stop['exit']} after {stop['exited']:.1f} s" if stop["exit"] is not None
                 else f"**did not exit within {EXIT_WAIT:g} s**")
    by_replica = ", ".join(f"{addr}: {n}" for addr, n in sorted(kill["by_replica"].items()))
    report = f"""
Three `bizfed serve` replicas (1 worker each) behind nginx (`proxy_next_upstream error timeout`), one Redis,
scale-1 data, cached reads of {len(PATHS)} routes; wrk 2 threads, {args.connections} connections, {args.seconds} s.

| check | result |
|---|---|
| shared cache | `/v1/customers/2` via replica A: {sorted(cache["first"])}; then via replica B: \
{sorted(cache["other"])} |
| shared breaker | Accounting refused behind A: A's breaker open after {breaker["calls"]} requests; seen open on \
{", ".join(f"{n} after {s:.2f} s" for n, s in breaker["seen_after"].items())} |
| requests served (wrk, whole run) | {w.requests:,} ({w.requests_per_s:,.0f} req/s, p50 {w.p50_ms:.1f} ms, \
p99 {w.p99_ms:.1f} ms) |
| SIGKILL replica B at {args.kill_at:g} s | failed requests: **{w.errors}** (wrk non-2xx + socket errors); \
nginx 5xx: {kill["failed"]} |
| sent to B as it died (started before kill + 1 s) | {kill["at_crash"]} requests, each retried by nginx on \
another replica; {kill["retried_later"]} more later, when nginx probed the dead replica again (`fail_timeout=5s`) |
| throughput 5 s before / after the kill | {kill["before_rps"]:,.0f} / {kill["after_rps"]:,.0f} req/s \
(slowest request around the kill {kill["slowest_around"] * 1000:.0f} ms) |
| served by each replica | {by_replica} |
| SIGTERM replica C with a slow request in flight | in-flight request: {stop["slow"]} \
({stop["slow_done"]:.1f} s after SIGTERM); a request sent 0.2 s after SIGTERM: {stop["late"]} (not served); \
{exit_text}; connections refused afterwards: {stop["refused_after"]} |
| load through nginx during the graceful stop | {stop["load_total"]} requests, {stop["load_failed"]} failed, \
slowest {stop["load_slowest"] * 1000:.0f} ms |
"""
    print(report)
    return report


if __name__ == "__main__":
    main()
