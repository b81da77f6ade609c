"""Issue 10 benchmark: deep pages at scale, both cores on the cached path, and the cached path
against its ceilings (bare Sanic + one Redis GET; bare Sanic from memory). Run: ``python -m bench.scale``."""

from __future__ import annotations

import argparse
import contextlib
import time

import pyodbc

from api.params import Cursors, scope_of
from bench.harness import best, checked, interleaved, seeded, server, server_env, spread, table, wrk
from bench.hotpath import bench_redis, cached_env, hot_paths, start_ceiling, warm_up
from bench.procs import cpu_seconds, server_pid
from deploy.legacy.schema import sales_as_odbc

SECRET = "bench-cursor-secret"


def _order_at(odbc: str, position: int) -> str:
    with pyodbc.connect(odbc, timeout=10) as conn:
        row = conn.execute("SELECT order_no FROM orders ORDER BY order_no LIMIT 1 OFFSET ?", position).fetchone()
    return str(row[0])


def _cpu_use(base: str, paths: list[str], seconds: int) -> tuple[float, float]:
    """(req/s, server CPU in cores) over one wrk run."""
    pid = server_pid(base)
    before, started = cpu_seconds(pid), time.monotonic()
    result = wrk("cpu", base, paths, seconds=seconds, threads=2, connections=64)
    return result.requests_per_s, (cpu_seconds(pid) - before) / (time.monotonic() - started)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    report = ""
    with seeded(args.scale, name="scale") as (env, targets):
        redis_url, client = bench_redis(env)
        # Page 1,000 of 50 starts after the 49,950th order; the cursor is made as the server would.
        after = _order_at(sales_as_odbc(targets.sales_url, targets.accounting_odbc), 1000 * 50 - 51)
        cursor = Cursors(SECRET).encode(scope_of("orders", {}), after)
        cold = server_env(env, targets, BIZFED_CACHE="off", BIZFED_CURSOR_SECRET=SECRET)
        with server(cold) as base:
            first = wrk("GET /v1/orders page 1 (cache off)", base, ["/v1/orders?limit=50"], seconds=args.seconds)
            deep = wrk("GET /v1/orders page 1,000 (cache off)", base, [f"/v1/orders?limit=50&cursor={cursor}"],
                       seconds=args.seconds)
        report += table(f"Deep pagination, scale {args.scale} (keyset, no OFFSET)", [first, deep])
        report += (f"\npage 1,000 / page 1 p50 latency: **{checked(deep).p50_ms / checked(first).p50_ms:.2f}x** "
                   "(target <= 1.5x)\n")

        warm = cached_env(env, targets, redis_url)
        with contextlib.ExitStack() as running:
            bases = {f"bizfed cached GET /v1/products/{{sku}}, {n} worker(s)": running.enter_context(
                server(warm, workers=n)) for n in (1, 2)}
            paths = hot_paths(next(iter(bases.values())), 50)
            warm_up(client, bases.values(), paths)
            for source in ("redis", "memory"):
                bases[f"ceiling ({source}): bare Sanic, 1 worker"] = start_ceiling(running, warm, redis_url, source)
            runs = interleaved(bases, paths, rounds=args.rounds, seconds=args.seconds, threads=2, connections=64)
            # One more run of each bizfed, watching the server's CPU: how much of the two cores it got.
            usage = [_cpu_use(base, paths, args.seconds) for base in list(bases.values())[:2]]
        client.flushdb()
    one, two, redis_ceiling, memory_ceiling = (best(r) for r in runs.values())
    report += table(f"Cached hit path (50 hot SKUs), wrk 2 threads 64 connections, best of {args.rounds} "
                    f"interleaved {args.seconds} s runs", [one, two, redis_ceiling, memory_ceiling])
    report += "\nreq/s over the rounds: " + "; ".join(f"{name}: {spread(r)}" for name, r in runs.items()) + "\n"
    report += (f"\n2 workers / 1 worker: **{two.requests_per_s / one.requests_per_s:.2f}x** (target >= 1.6x); "
               f"1 worker vs ceiling (a) bare Sanic + Redis GET: "
               f"**{one.requests_per_s / redis_ceiling.requests_per_s:.2f}x** (target >= 1.0x); "
               "vs ceiling (b) bare Sanic from memory: "
               f"**{one.requests_per_s / memory_ceiling.requests_per_s:.2f}x** (target >= 0.4x)\n")
    report += ("\nServer CPU during one more run of each (cores; wrk runs on the same two): "
               + "; ".join(f"{n} worker(s): {cores:.2f} cores, {rate:,.0f} req/s, {rate / cores:,.0f} req/s per core"
                           for n, (rate, cores) in zip((1, 2), usage, strict=True)) + "\n")
    print(report)
    return report


if __name__ == "__main__":
    main()
