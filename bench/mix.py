"""Issue 10: a realistic mix at rising concurrency, server memory over a full pagination walk, and the
query plans of the aggregates. Run: ``python -m bench.mix [--scale N]``."""

from __future__ import annotations

import argparse
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx
import psycopg
import pyodbc

from bench.harness import ADMIN, LoadResult, md_table, seeded, server, server_env, table, wrk
from bench.procs import cpu_seconds, pid_of, rss_kb, server_pid
from deploy.legacy.schema import sales_as_odbc


def _statuses(client: httpx.Client) -> Counter[str]:
    """Answers so far by status, from the server's own request counter."""
    counts: Counter[str] = Counter()
    for line in client.get("/metrics").text.splitlines():
        match = re.match(r'bizfed_http_requests_total\{.*status="(\d+)".*\} ([\d.e+]+)', line)
        if match:
            counts[match.group(1)] += int(float(match.group(2)))
    return counts


@dataclass
class Busy:
    """What each part was doing during one load step."""

    connections: int
    worker_cpu: float
    redis_cpu: float
    non_2xx: str
    pools: str

    def cells(self) -> list[str]:
        return [str(self.connections), f"{self.worker_cpu:.0%}", f"{self.redis_cpu:.0%}", self.non_2xx or "none",
                self.pools]


def _step(base: str, paths: list[str], connections: int, seconds: int, pid: int, redis_pid: int,
          client: httpx.Client) -> tuple[LoadResult, Busy]:
    """One wrk run, with the worker's and Redis' CPU use, the answers by status, and the pools mid-run."""
    before = _statuses(client)
    cpu = (cpu_seconds(pid), cpu_seconds(redis_pid), time.monotonic())
    pools: list[str] = []

    def look_at_pools() -> None:
        time.sleep(seconds / 2)
        sources = client.get("/v1/sources", timeout=30).json()["data"]
        pools.append(", ".join(f"{name} {_pool_text(state.get('pool'))}" for name, state in sources.items()
                               if name != "cache"))

    looker = threading.Thread(target=look_at_pools)
    looker.start()
    result = wrk(f"{connections} connections", base, paths, seconds=seconds, connections=connections, threads=2)
    elapsed = time.monotonic() - cpu[2]
    worker, redis_cpu = (cpu_seconds(pid) - cpu[0]) / elapsed, (cpu_seconds(redis_pid) - cpu[1]) / elapsed
    looker.join()
    after = _statuses(client)
    non_2xx = ", ".join(f"{after[s] - before[s]}× {s}" for s in sorted(after) if not s.startswith("2")
                        and after[s] > before[s])
    return result, Busy(connections, worker, redis_cpu, non_2xx, pools[0] if pools else "?")


def _pool_text(pool: object) -> str:
    if not isinstance(pool, dict):
        return "?"
    return "/".join(f"{k}={v}" for k, v in pool.items())


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=6)
    args = parser.parse_args(argv)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    report = ""
    with seeded(args.scale, name="mix") as (env, targets):
        senv = server_env(env, targets, BIZFED_REDIS_URL=env["BIZFED_REDIS_URL"].rsplit("/", 1)[0] + "/13")
        with server(senv) as base:
            skus = [p["sku"] for p in httpx.get(base + "/v1/products?limit=40", headers=auth).json()["data"]]
            orders = [o["order_no"] for o in httpx.get(base + "/v1/orders?limit=500", headers=auth).json()["data"]]
            rng = random.Random(7)
            # 80 % cached reads (hot products), 15 % misses across the three systems, 5 % lists.
            paths = ([f"/v1/products/{rng.choice(skus)}" for _ in range(800)]
                     + [f"/v1/orders/{o}" for o in rng.sample(orders, 150)]
                     + [f"/v1/customers?limit=50&country={c}" for c in ("ES", "US", "SG", "DE", "FR")] * 10)
            rng.shuffle(paths)
            for path in set(paths[:: 7]):
                httpx.get(base + path, headers=auth)
            pid = server_pid(base)
            redis_pid = pid_of("redis-server", ":" + senv["BIZFED_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
            with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
                steps = [_step(base, paths, c, args.seconds, pid, redis_pid, client) for c in (8, 32, 128, 512)]
            report += table(f"Realistic mix (80 % cached, 15 % misses over three systems, 5 % lists), scale "
                            f"{args.scale}, 1 worker, wrk 2 threads", [r for r, _ in steps])
            report += ("\nWhat was busy (CPU as a share of one core; answers that were not 2xx, from the server's "
                       "counter; source pools mid-step, from /v1/sources)\n\n"
                       + md_table(["connections", "bizfed worker CPU", "Redis CPU", "non-2xx answers", "pools"],
                                  [b.cells() for _, b in steps]) + "\n")
            samples = [rss_kb(pid)]
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    samples.append(rss_kb(pid))
                    time.sleep(0.2)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            rows, cursor, started = 0, None, time.monotonic()
            with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
                while True:
                    params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
                    page = client.get("/v1/orders", params=params).json()
                    rows += len(page["data"])
                    cursor = page["page"]["next_cursor"]
                    if cursor is None:
                        break
            stop.set()
            sampler.join()
            report += (f"\nFull walk of /v1/orders ({rows:,} rows, pages of 500) in {time.monotonic() - started:.1f} s:"
                       f" server RSS {samples[0] / 1024:.0f} MB before, peak {max(samples) / 1024:.0f} MB "
                       f"({max(samples) / samples[0]:.2f}x).\n")
        report += "\n" + _plans(targets.warehouse_dsn, sales_as_odbc(targets.sales_url, targets.accounting_odbc),
                                targets.accounting_odbc)
    print(report)
    return report


def _plans(warehouse_dsn: str, sales_odbc: str, accounting_odbc: str) -> str:
    out = ["Query plans of the aggregates pushed to the databases:\n"]
    with pyodbc.connect(sales_odbc, timeout=10) as conn:
        started = time.perf_counter()
        plan = conn.execute(
            "ANALYZE FORMAT=JSON SELECT upper(trim(p.sku)) sku, sum(l.qty) u FROM order_lines l "
            "JOIN orders o ON o.order_no = l.order_no JOIN products p ON p.id = l.product_id "
            "WHERE p.sku IS NOT NULL AND o.status NOT IN ('cancelled','draft') "
            "AND o.ordered_at >= '2025-01-01' AND o.ordered_at < '2026-01-01' "
            "GROUP BY upper(trim(p.sku)) ORDER BY u DESC LIMIT 51").fetchone()[0]
        out.append(f"- Sales, sold-items over one year: {(time.perf_counter() - started) * 1000:.0f} ms; "
                   f"MariaDB ANALYZE: `{_summary(plan)}`")
    with pyodbc.connect(accounting_odbc, timeout=10) as conn:
        cur = conn.execute(
            "EXPLAIN SELECT h.CUSTNO, SUM(h.AMTCENTS - COALESCE(p.PAID, 0)) FROM ARINVH h LEFT JOIN "
            "(SELECT INVNO, SUM(AMTCENTS) PAID FROM ARPAYM GROUP BY INVNO) p ON p.INVNO = h.INVNO "
            "WHERE h.STATUS = 'O' AND h.CUSTNO IN ('C0000001', 'C0000002') GROUP BY h.CUSTNO")
        names = [c[0] for c in cur.description]
        steps = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        out.append("- Accounting, open balances of a page of accounts (EXPLAIN): " + "; ".join(
            f"{r.get('table')}: {r.get('type')} via {r.get('key')} (~{r.get('rows')} rows)" for r in steps))
    with psycopg.connect(warehouse_dsn) as conn:
        rows = conn.execute("EXPLAIN ANALYZE SELECT sku, sum(on_hand), sum(reserved) FROM stock "
                            "WHERE sku = ANY(%s) GROUP BY sku", ([f"WH-{n:06d}" for n in range(1, 500)],)).fetchall()
        out.append("- Warehouse, stock totals for 500 SKUs: " + " / ".join(r[0].strip() for r in rows[:3]))
    return "\n".join(out) + "\n"


def _summary(plan: str) -> str:
    import json

    tree = json.loads(plan)["query_block"]
    return f"r_total_time_ms={tree.get('r_total_time_ms')}"


if __name__ == "__main__":
    main()
