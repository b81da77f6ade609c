"""Issue 6 benchmark: routes that do not need Accounting, under load, with and without Accounting down.

Run: ``python -m bench.outage``. Both runs use the same server, data and paths in one session.
"""

from __future__ import annotations

import argparse
import threading

import httpx

from bench.harness import ADMIN, seeded, server, server_env, table, wrk
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
    report = table("Reader routes (no Accounting needed) under load, cache off, 1 worker", [healthy, outage])
    err_h = healthy.errors / max(healthy.requests, 1)
    err_o = outage.errors / max(outage.requests, 1)
    report += (f"\np99 during the outage / without: **{outage.p99_ms / healthy.p99_ms:.2f}x**; error rate "
               f"{err_o:.2%} vs {err_h:.2%}; throughput {outage.requests_per_s / healthy.requests_per_s:.2f}x "
               "(target: p99 and errors within 1.2x)\n")
    print(report)
    return report


def _finance_load(base: str, orders: list[dict[str, str]], stop: threading.Event) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10) as client:
        while not stop.is_set():
            for order in orders:
                if stop.is_set():
                    return
                client.get(f"/v1/orders/{order['order_no']}")


if __name__ == "__main__":
    main()
