"""Routes under load with Accounting down: those that do not need it (issue 6), and those that do (issue 18).

Run: ``python -m bench.outage``. Each part's runs use the same server, data and paths in one session.
The second part drives finance routes that read Accounting: while it is blackholed they must answer
200 with Accounting labelled unavailable (a partial answer) at no less than 0.8x their healthy
throughput, and once it is back the bench times how long until every route reads it fresh again.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import httpx

from bench.harness import ADMIN, LoadResult, seeded, server, server_env, table, wrk
from deploy.local.addresses import odbc_port, odbc_with_port
from deploy.local.faultproxy import FaultProxy


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args(argv)
    with seeded(1, name="outage") as (env, targets):
        proxy = FaultProxy("127.0.0.1", odbc_port(targets.accounting_odbc)).start()
        try:
            senv = server_env(env, targets, BIZFED_CACHE="off", BIZFED_SOURCE_TIMEOUT="1",
                              BIZFED_BREAKER_RESET="30",
                              BIZFED_ACCOUNTING_ODBC=odbc_with_port(targets.accounting_odbc, proxy.port))
            with server(senv) as base:
                auth = {"Authorization": f"Bearer {ADMIN}"}
                orders = httpx.get(base + "/v1/orders?limit=100", headers=auth).json()["data"]
                skus = [p["sku"] for p in httpx.get(base + "/v1/products?limit=100", headers=auth).json()["data"]]
                # A reader's requests never need Accounting: its fields are redacted, not fetched.
                paths = ([f"/v1/orders/{o['order_no']}" for o in orders] + [f"/v1/products/{s}" for s in skus]
                         + ["/v1/customers?limit=20"] * 20)
                wrk("warm-up", base, paths, key="bench-reader", seconds=3)
                healthy = wrk("no fault", base, paths, key="bench-reader", seconds=args.seconds)
                proxy.reset()
                proxy.blackhole()
                # Finance traffic keeps meeting the outage while the reader load runs.
                stop = threading.Event()
                finance = threading.Thread(target=_finance_load, args=(base, orders, stop), daemon=True)
                finance.start()
                try:
                    outage = wrk("Accounting blackholed", base, paths, key="bench-reader", seconds=args.seconds)
                finally:
                    stop.set()
                    finance.join(10)
        finally:
            proxy.stop()
        report = _report(healthy, outage) + needing_accounting(env, targets, args.seconds)
    print(report)
    return report


def _report(healthy: LoadResult, outage: LoadResult) -> str:
    report = table("Reader routes (no Accounting needed) under load, cache off, 1 worker", [healthy, outage])
    err_h = healthy.errors / max(healthy.requests, 1)
    err_o = outage.errors / max(outage.requests, 1)
    report += (f"\np99 during the outage / without: **{outage.p99_ms / healthy.p99_ms:.2f}x**; error rate "
               f"{err_o:.2%} vs {err_h:.2%}; throughput {outage.requests_per_s / healthy.requests_per_s:.2f}x "
               "(target: p99 and errors within 1.2x)\n")
    return report


RESET_S = 5.0   # the breaker's reset time in the second part: recovery is bounded by it


def needing_accounting(env: dict[str, str], targets: Any, seconds: int) -> str:
    """Finance routes that read Accounting, healthy and with it blackholed; then the time to recover."""
    proxy = FaultProxy("127.0.0.1", odbc_port(targets.accounting_odbc)).start()
    try:
        senv = server_env(env, targets, BIZFED_CACHE="off", BIZFED_SOURCE_TIMEOUT="1",
                          BIZFED_BREAKER_RESET=str(RESET_S),
                          BIZFED_ACCOUNTING_ODBC=odbc_with_port(targets.accounting_odbc, proxy.port))
        with server(senv) as base, httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"},
                                                timeout=10) as client:
            orders = client.get("/v1/orders?limit=60").json()["data"]
            customers = client.get("/v1/customers?limit=20").json()["data"]
            paths = ([f"/v1/orders/{o['order_no']}" for o in orders] + [f"/v1/customers/{c['id']}" for c in customers]
                     + ["/v1/products?limit=50"] * 10)
            wrk("warm-up", base, paths, key="bench-finance", seconds=3)
            healthy = wrk("Accounting up", base, paths, key="bench-finance", seconds=seconds)
            proxy.reset()
            proxy.blackhole()
            while _accounting(client, paths[0]) != "unavailable":
                time.sleep(0.1)
            outage = wrk("Accounting blackholed", base, paths, key="bench-finance", seconds=seconds)
            labelled = [_accounting(client, path) for path in paths]
            proxy.pass_through()
            back_at = time.monotonic()
            while not all(_accounting(client, path) == "ok" for path in paths[::10]):
                time.sleep(0.05)
            recovered_s = time.monotonic() - back_at
    finally:
        proxy.stop()
    partial = sum(1 for label in labelled if label == "unavailable")
    ratio = outage.requests_per_s / healthy.requests_per_s
    return (table("Finance routes that read Accounting (orders with invoices, customers with their account, "
                  "products with standard costs), cache off, 1 worker", [healthy, outage])
            + f"\nDuring the blackhole {partial} of {len(labelled)} paths sampled answered 200 with Accounting "
            f"labelled unavailable; partial-answer throughput / healthy: **{ratio:.2f}x** (target >= 0.8x). "
            f"After Accounting came back every route read it fresh again in **{recovered_s:.1f} s** "
            f"(breaker reset {RESET_S:.0f} s; bound 2x that).\n")


def _accounting(client: httpx.Client, path: str) -> str | None:
    """How the answer at ``path`` labels Accounting (``ok``, ``unavailable``, ...); None for a non-200."""
    response = client.get(path)
    if response.status_code != 200:
        return None
    return str(response.json()["meta"]["sources"].get("accounting", {}).get("status"))


def _finance_load(base: str, orders: list[dict[str, str]], stop: threading.Event) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10) as client:
        while not stop.is_set():
            for order in orders:
                if stop.is_set():
                    return
                client.get(f"/v1/orders/{order['order_no']}")


if __name__ == "__main__":
    main()
