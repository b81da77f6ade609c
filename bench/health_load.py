"""Issue 16 benchmark: /health/ready at about 500 requests a second against one worker, pings counted at the backends.

Run: ``python -m bench.health_load``. The SQL sources sit behind fault proxies that only pass traffic on and
count the bytes they forward; a ping's bytes are measured first, so forwarded bytes give pings. Redis's
MONITOR feed for the run's own database counts the cache's pings.
"""

from __future__ import annotations

import argparse
import time
from urllib.parse import urlsplit, urlunsplit

import httpx

from bench.harness import KEYS, LoadResult, md_table, run_wrk, server, stack_env
from deploy.legacy.schema import LegacyTargets, create_all, drop_all
from deploy.local.addresses import dsn_port, dsn_with_port, odbc_port, odbc_with_port, url_port, url_with_port
from deploy.local.backend_counts import RedisCommands
from deploy.local.faultproxy import FaultProxy

REDIS_DB = 0      # of the run's own Redis (``stack_env``): its MONITOR feed holds this run's commands alone
PATH = "/health/ready"
# wrk has no rate option: each connection waits this long between requests, so 10 connections make ~500/s.
CONNECTIONS, DELAY_MS = 10, 20
PACED = "request = function() return wrk.format('GET', '%s') end\ndelay = function() return %d end\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args(argv)
    with stack_env() as env:
        targets = LegacyTargets.from_env(env).renamed("healthbench")
        create_all(targets, drop=True)
        proxies = {"warehouse": FaultProxy("127.0.0.1", dsn_port(targets.warehouse_dsn)).start(),
                   "sales": FaultProxy("127.0.0.1", url_port(targets.sales_url)).start(),
                   "accounting": FaultProxy("127.0.0.1", odbc_port(targets.accounting_odbc)).start()}
        redis = urlsplit(env["BIZFED_REDIS_URL"])
        try:
            senv = {**env, "BIZFED_API_KEYS": KEYS, "BIZFED_RATE_LIMIT": "1000000000",
                    # The change watcher would poll the Warehouse every second; quiet, its traffic is pings alone.
                    "BIZFED_WATCH_INTERVAL": "3600",
                    "BIZFED_WAREHOUSE_DSN": dsn_with_port(targets.warehouse_dsn, proxies["warehouse"].port),
                    "BIZFED_SALES_URL": url_with_port(targets.sales_url, proxies["sales"].port),
                    "BIZFED_ACCOUNTING_ODBC": odbc_with_port(targets.accounting_odbc, proxies["accounting"].port),
                    "BIZFED_REDIS_URL": urlunsplit(redis._replace(path=f"/{REDIS_DB}"))}
            with server(senv, workers=1) as base:
                one = _one_probe(base, proxies)
                before = {name: proxy.bytes_to_upstream for name, proxy in proxies.items()}
                with RedisCommands(redis.hostname or "127.0.0.1", redis.port or 6379, REDIS_DB) as monitor:
                    load = _paced(base, args.seconds)
                pings = {name: (proxy.bytes_to_upstream - before[name]) / one[name] for name, proxy in proxies.items()}
                pings["cache"] = monitor.count("PING")
        finally:
            for proxy in proxies.values():
                proxy.stop()
            drop_all(targets)
    seconds = load.requests / load.requests_per_s
    report = (f"\n/health/ready, 1 worker, {CONNECTIONS} connections paced at {DELAY_MS} ms: "
              f"{load.requests} requests in {seconds:.1f} s ({load.requests_per_s:,.0f} req/s), "
              f"{load.errors} errors{f' ({load.detail})' if load.detail else ''}, p99 {load.p99_ms:.1f} ms\n\n"
              + md_table(["backend", "pings", "pings/s", "requests per ping"],
                         [[name, f"{count:.0f}", f"{count / seconds:.2f}", f"{load.requests / max(count, 1):,.0f}"]
                          for name, count in pings.items()]) + "\n")
    report += "\nTarget: at most ~4 backend pings per second per process in all.\n"
    print(report)
    return report


def _one_probe(base: str, proxies: dict[str, FaultProxy]) -> dict[str, int]:
    """Bytes one probe sends each SQL backend, once every pool holds a connection."""
    one: dict[str, int] = {}
    for _ in range(2):
        time.sleep(1.1)
        before = {name: proxy.bytes_to_upstream for name, proxy in proxies.items()}
        httpx.get(base + PATH, timeout=10).raise_for_status()
        time.sleep(0.5)
        one = {name: proxy.bytes_to_upstream - before[name] for name, proxy in proxies.items()}
    if not all(one.values()):
        raise RuntimeError(f"a probe sent no bytes to some backend: {one}")
    time.sleep(1.1)
    return one


def _paced(base: str, seconds: int) -> LoadResult:
    """wrk on /health/ready (no key: probes send none) with every connection pausing between requests."""
    return run_wrk(PATH, base, PACED % (PATH, DELAY_MS), key=None, seconds=seconds, connections=CONNECTIONS)


if __name__ == "__main__":
    main()
