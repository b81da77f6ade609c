"""Issue 5 benchmark: cached GET /v1/products/{sku} against a bare Sanic + one Redis GET of the same bytes,
and the cold (cache miss) vs warm (hit) ratio. Run: ``python -m bench.cache_load``."""

from __future__ import annotations

import argparse
import contextlib
import time

import httpx

from bench.harness import LoadResult, best, checked, interleaved, seeded, server, spread, table
from bench.hotpath import AUTH, bench_redis, cached_env, hot_paths, start_ceiling, warm_up


def sequential(name: str, client: httpx.Client, paths: list[str]) -> LoadResult:
    """Each path requested once, one after the other, each request timed alone."""
    times, errors = [], 0
    started = time.perf_counter()
    for path in paths:
        begun = time.perf_counter()
        errors += client.get(path).status_code != 200
        times.append((time.perf_counter() - begun) * 1000)
    total = time.perf_counter() - started
    times.sort()
    p99 = times[min(len(times) - 1, len(times) * 99 // 100)]
    return LoadResult(name, len(paths) / total, times[len(times) // 2], p99, errors, len(paths))


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    with seeded(args.scale) as (env, targets):
        redis_url, client = bench_redis(env)
        senv = cached_env(env, targets, redis_url)
        with contextlib.ExitStack() as running:
            base = running.enter_context(server(senv, workers=args.workers))
            paths = hot_paths(base, 200)
            client.flushdb()
            with httpx.Client(base_url=base, headers=AUTH) as one:
                cold = sequential("cold: first request of each SKU (cache miss), one connection", one, paths)
                warm_one = sequential("warm: the same SKUs again, one connection (cache hit)", one, paths)
            warm_up(client, [base], paths)
            ceiling_base = start_ceiling(running, senv, redis_url, "redis", args.workers)
            runs = interleaved({f"bizfed cached GET /v1/products/{{sku}} ({args.workers} worker)": base,
                                f"ceiling: bare Sanic + one Redis GET ({args.workers} worker)": ceiling_base},
                               paths, rounds=args.rounds, seconds=args.seconds)
        client.flushdb()
    warm, ceiling = (best(r) for r in runs.values())
    results: list[LoadResult] = [warm, ceiling, checked(cold), checked(warm_one)]
    report = table(f"Cached product page, scale {args.scale}, wrk 1 thread 32 connections; the first two rows "
                   f"are the best of {args.rounds} interleaved {args.seconds} s runs", results)
    report += "\nreq/s over the rounds: " + "; ".join(f"{name}: {spread(r)}" for name, r in runs.items()) + "\n"
    report += (f"\nbizfed cached / ceiling throughput: **{warm.requests_per_s / ceiling.requests_per_s:.2f}x** "
               f"(target >= 0.6x); one connection, cold p50 / warm p50: **{cold.p50_ms / warm_one.p50_ms:.1f}x** "
               "(a hit is that much faster than a miss)\n")
    print(report)
    return report


if __name__ == "__main__":
    main()
