"""Issue 5 benchmark: cached GET /v1/products/{sku} against a bare Sanic + one Redis GET of the same bytes,
and the cold (cache miss) vs warm (hit) ratio. Run: ``python -m bench.cache_load``."""

from __future__ import annotations

import argparse
import contextlib
import time

import httpx
import redis

from bench.ceiling import PREFIX
from bench.harness import ADMIN, LoadResult, best, interleaved, seeded, server, server_env, spread, table


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
        redis_url = env["BIZFED_REDIS_URL"].rsplit("/", 1)[0] + "/14"
        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        senv = server_env(env, targets, BIZFED_REDIS_URL=redis_url,
                          BIZFED_FRESHNESS_WAREHOUSE="600,0,600", BIZFED_FRESHNESS_SALES="600,0,600",
                          BIZFED_FRESHNESS_ACCOUNTING="600,0,600")
        auth = {"Authorization": f"Bearer {ADMIN}"}
        with contextlib.ExitStack() as running:
            base = running.enter_context(server(senv, workers=args.workers))
            skus = [p["sku"] for p in httpx.get(base + "/v1/products?limit=200", headers=auth).json()["data"]]
            paths = [f"/v1/products/{sku}" for sku in skus]
            client.flushdb()
            with httpx.Client(base_url=base, headers=auth) as one:
                cold = sequential("cold: first request of each SKU (cache miss), one connection", one, paths)
                warm_one = sequential("warm: the same SKUs again, one connection (cache hit)", one, paths)
            for path in paths:
                body = httpx.get(base + path, headers=auth).content
                client.set(PREFIX + path.rsplit("/", 1)[1], body)
            ceiling_base = running.enter_context(server(
                {"PATH": senv["PATH"]}, workers=args.workers, module="bench.ceiling",
                args=("--redis", redis_url, "--source", "redis")))
            runs = interleaved({f"bizfed cached GET /v1/products/{{sku}} ({args.workers} worker)": base,
                                f"ceiling: bare Sanic + one Redis GET ({args.workers} worker)": ceiling_base},
                               paths, rounds=args.rounds, seconds=args.seconds)
        client.flushdb()
    warm, ceiling = (best(r) for r in runs.values())
    results: list[LoadResult] = [warm, ceiling, cold, warm_one]
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
