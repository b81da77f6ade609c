"""Issue 4 benchmark: uncached throughput of a three-system order and a product page, and fan-out cost.

Run: ``make bench`` or ``python -m bench.api_load [--scale N] [--seconds S]``.
"""

from __future__ import annotations

import argparse

import httpx

from bench import fanout
from bench.harness import ADMIN, seeded, server, server_env, table, wrk


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args(argv)
    with seeded(args.scale) as (env, targets):
        senv = server_env(env, targets, BIZFED_CACHE="off")
        with server(senv) as base:
            orders = httpx.get(base + "/v1/orders?limit=200", headers={"Authorization": f"Bearer {ADMIN}"}).json()
            order_paths = [f"/v1/orders/{o['order_no']}" for o in orders["data"]]
            results = [
                wrk("GET /v1/orders/{no} (3 systems, cache off)", base, order_paths, seconds=args.seconds),
                wrk("GET /v1/products?limit=100 (cache off)", base, ["/v1/products?limit=100"], seconds=args.seconds),
            ]
        nos = [p.rsplit("/", 1)[1] for p in order_paths[:50]]
        ratio = fanout.run(senv, nos)
        wan = fanout.run_with_network_delay(senv, nos[:20], 0.005)
    report = table(f"Uncached API, scale {args.scale}, 1 worker, wrk 1 thread 32 connections, "
                   f"{args.seconds}s each", results)
    report += (f"\nFan-out: GET /v1/orders/{{no}} in-process, median {ratio['fanout_p50_ms']:.2f} ms vs the slowest "
               f"single source call alone {ratio['slowest_p50_ms']:.2f} ms: **{ratio['ratio_p50']:.2f}x** "
               "(median of per-order ratios, 50 orders x 3 rounds; target <= 1.3x). Each source call alone, median "
               f"ms: {fanout.singles_text(ratio)}\n"
               f"\nWith 5 ms added each way on every source connection (a proxy standing in for the network): "
               f"fan-out {wan['fanout_p50_ms']:.2f} ms vs slowest single call {wan['slowest_p50_ms']:.2f} ms: "
               f"**{wan['ratio_p50']:.2f}x** (20 orders)\n")
    print(report)
    return report


if __name__ == "__main__":
    main()
