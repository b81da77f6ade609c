"""Issue 5 benchmark: cached GET /v1/products/{sku} against a bare Sanic + one Redis GET of the same bytes,
and the cold (cache miss) vs warm (hit) ratio. Run: ``python -m bench.cache_load``."""

from __future__ import annotations

import argparse

import httpx
import redis

from bench.ceiling import PREFIX
from bench.harness import ADMIN, LoadResult, seeded, server, server_env, table, wrk


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=10)
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
        with server(senv, workers=args.workers) as base:
            skus = [p["sku"] for p in httpx.get(base + "/v1/products?limit=200", headers=auth).json()["data"]]
            paths = [f"/v1/products/{sku}" for sku in skus]
            cold = wrk("cold: first request of each SKU (cache miss)", base, paths, seconds=1, connections=1)
            client.flushdb()
            for path in paths:
                body = httpx.get(base + path, headers=auth).content
                client.set(PREFIX + path.rsplit("/", 1)[1], body)
            warm = wrk(f"bizfed cached GET /v1/products/{{sku}} ({args.workers} worker)", base, paths,
                       seconds=args.seconds)
            warm_one = wrk("warm: the same SKUs again, one connection (cache hit)", base, paths, seconds=1,
                           connections=1)
        with server({"PATH": senv["PATH"]}, workers=args.workers, module="bench.ceiling",
                    args=("--redis", redis_url, "--source", "redis")) as ceiling_base:
            ceiling = wrk(f"ceiling: bare Sanic + one Redis GET ({args.workers} worker)", ceiling_base, paths,
                          seconds=args.seconds)
        client.flushdb()
    results: list[LoadResult] = [warm, ceiling, cold, warm_one]
    report = table(f"Cached product page, scale {args.scale}, wrk 1 thread 32 connections", results)
    report += (f"\nbizfed cached / ceiling throughput: **{warm.requests_per_s / ceiling.requests_per_s:.2f}x** "
               f"(target >= 0.6x); one connection, cold p50 / warm p50: **{cold.p50_ms / warm_one.p50_ms:.1f}x** "
               "(a hit is that much faster than a miss)\n")
    print(report)
    return report


if __name__ == "__main__":
    main()
