"""Issue 19 benchmark: what polling for changes costs a source, at a given scale.
Run: ``python -m bench.polling_cost --scale 100`` (``make bench-changes-cost``).

For each polling feed (Accounting with its portable ODBC fingerprint and with CRC32, Sales with CRC32),
quiet rounds after the initial load: statements per round and time per round, set beside the peer a
naive watcher would be, reading the same tables in full with the raw driver (pyodbc for Accounting,
pymysql for Sales) in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import pymysql
import pyodbc
from sqlalchemy.engine import make_url

from bench.harness import md_table, seeded
from connectors.accounting_changes import AccountingPoll
from connectors.sales_changes import SalesPoll

ACCOUNTING_TABLES = ("ARCUST", "ARINVH", "ARPAYM", "ICITEM")
SALES_TABLES = ("customers", "products", "orders", "order_lines")


def full_read_odbc(odbc: str) -> Callable[[], None]:
    conn = pyodbc.connect(odbc, autocommit=True)

    def read() -> None:
        cur = conn.cursor()
        for table in ACCOUNTING_TABLES:
            cur.execute(f"SELECT * FROM {table}")
            cur.fetchall()
    return read


def full_read_mysql(url: str) -> Callable[[], None]:
    u = make_url(url)
    conn = pymysql.connect(host=u.host, port=u.port or 3306, user=u.username, password=u.password or "",
                           database=u.database, autocommit=True)

    def read() -> None:
        with conn.cursor() as cur:
            for table in SALES_TABLES:
                cur.execute(f"SELECT * FROM {table}")
                cur.fetchall()
    return read


async def rounds(feed: Any, n: int) -> tuple[float, float, float, dict[str, Any]]:
    """(load seconds, median quiet round seconds, statements per round, details) over ``n`` quiet rounds."""
    started = time.perf_counter()
    await feed.start()
    loaded = time.perf_counter() - started
    times = []
    queries = feed.queries
    for _ in range(n):
        begun = time.perf_counter()
        batch = await feed.poll()
        await feed.ack(batch)
        times.append(time.perf_counter() - begun)
    per_round = (feed.queries - queries) / n
    details = feed.details()
    await feed.close()
    return loaded, statistics.median(times), per_round, details


def timed(read: Callable[[], None], n: int) -> float:
    times = []
    for _ in range(n):
        begun = time.perf_counter()
        read()
        times.append(time.perf_counter() - begun)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    rows = []
    with seeded(args.scale, name="pollcost") as (_env, targets):
        feeds: list[tuple[str, Callable[[], Any], Callable[[], None]]] = [
            ("Accounting, portable ODBC fingerprint",
             lambda: AccountingPoll(targets.accounting_odbc, timeout=30, login_timeout=5, fingerprint="portable"),
             full_read_odbc(targets.accounting_odbc)),
            ("Accounting, CRC32 (the default on MariaDB)",
             lambda: AccountingPoll(targets.accounting_odbc, timeout=30, login_timeout=5, fingerprint="native"),
             full_read_odbc(targets.accounting_odbc)),
            ("Sales, CRC32", lambda: SalesPoll(targets.sales_url, timeout=30), full_read_mysql(targets.sales_url)),
        ]
        for name, make, peer in feeds:
            naive = timed(peer, max(3, args.rounds // 3))
            loaded, quiet, per_round, details = asyncio.run(rounds(make(), args.rounds))
            naive_again = timed(peer, max(3, args.rounds // 3))
            peer_time = min(naive, naive_again)
            rows.append([name, f"{details.get('rows_held', 0):,}", f"{per_round:g}", f"{quiet * 1000:.0f}",
                         f"{quiet / peer_time:.2f}", f"{loaded / peer_time:.1f}",
                         f"{int(details.get('held_bytes_estimate', 0)) / 2**20:.0f}"])
    out = "\n".join([
        f"Scale {args.scale}, {args.rounds} quiet rounds after the load; the peer reads the same four tables in full "
        "with the raw driver (`SELECT *`, all rows fetched), median of runs before and after:",
        "",
        md_table(["feed", "rows held", "statements / round", "quiet round (ms)", "round / full read",
                  "initial load / full read", "held (MiB, estimate)"], rows),
    ])
    print(out)
    return out


if __name__ == "__main__":
    main()
