"""Connector throughput against the raw drivers: a bulk keyset walk through each source.

Run ``.venv/bin/python -m bench.connectors [--rows N] [--runs N] [--no-write]``. It creates throw-away
``*_benchconn`` databases on the local stack, fills them, and reads them back page by page
through each connector's public methods and through the bare driver running this module's own
statements for the same rows (a raw-driver app: it knows the legacy schemas, not the connectors).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import random
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyodbc
from sqlalchemy import TextClause, bindparam, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from bench.harness import md_table
from connectors.accounting import AccountingConnector
from connectors.sales import SalesConnector
from connectors.warehouse import WarehouseConnector
from deploy.legacy.sales_tables import customers, order_lines, orders, products
from deploy.legacy.schema import LegacyTargets, create_all, drop_all
from federation.queries import InvoiceFilter, ItemFilter, OrderFilter

PAGE = 500
DISCOUNTS = (Decimal("0.00"), Decimal("0.00"), Decimal("5.00"), Decimal("12.50"), Decimal("33.33"))
ROUNDS = 7
TODAY = date(2024, 6, 15)
REPO = Path(__file__).resolve().parents[1]
SECTION = "Connectors"
TARGET = 0.8


def targets() -> LegacyTargets:
    if all(k in os.environ for k in ("BIZFED_WAREHOUSE_DSN", "BIZFED_SALES_URL", "BIZFED_ACCOUNTING_ODBC")):
        return LegacyTargets.from_env(dict(os.environ))
    from deploy.local import stack

    return LegacyTargets.from_env(stack.up())


# -- seeding -----------------------------------------------------------------

def seed_warehouse(dsn: str, n: int, rnd: random.Random) -> None:
    now = datetime(2024, 6, 1, tzinfo=UTC)
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO locations VALUES ('BCN1', 'Barcelona', 'Barcelona', 'ES', 'Europe/Madrid'), "
                    "('NYC1', 'New York', 'New York', 'US', 'America/New_York'), "
                    "('SGP1', 'Singapore', 'Singapore', 'SG', 'Asia/Singapore')")
        with cur.copy("COPY items (sku, name, description, unit, weight_grams, active, updated_at) FROM STDIN") as cp:
            for i in range(n):
                cp.write_row((f"WH-{i:06d}", f"Item {i} Ñandú's", None if i % 3 else "desc", "EA",
                              rnd.randint(1, 5000), i % 17 != 0, now))
        with cur.copy("COPY stock (sku, location_code, on_hand, reserved, updated_at) FROM STDIN") as cp:
            for i in range(n):
                for loc in ("BCN1", "NYC1", "SGP1")[: 1 + i % 3]:
                    on_hand = rnd.randint(0, 500)
                    cp.write_row((f"WH-{i:06d}", loc, on_hand, rnd.randint(0, on_hand), now))
        cur.execute("ANALYZE")


async def seed_sales(url: str, n: int, rnd: random.Random) -> None:
    engine = create_async_engine(url)
    start = datetime(2023, 1, 1)
    async with engine.begin() as conn:
        n_customers, n_products = max(1, n // 10), max(1, n // 10)
        await conn.execute(insert(customers), [
            {"id": i, "name": f"Customer {i} O'Brien", "email": None, "country": "ES",
             "created_at": start, "acct_no": f"C{i:07d}"} for i in range(1, n_customers + 1)])
        await conn.execute(insert(products), [
            {"id": i, "title": f"Product {i}", "sku": f"wh-{i:06d}" if i % 10 else None,
             "list_price": Decimal(rnd.randint(1, 100000)) / 100, "currency": "EUR"} for i in range(1, n_products + 1)])
        batch_orders: list[dict[str, Any]] = []
        batch_lines: list[dict[str, Any]] = []
        for i in range(1, n + 1):
            no = f"SO-2024-{i:06d}"
            batch_orders.append({"order_no": no, "customer_id": rnd.randint(1, n_customers), "status": "confirmed",
                                 "ordered_at": start + timedelta(minutes=i), "ship_from": "BCN1", "currency": "EUR"})
            for line in range(1, rnd.randint(1, 5) + 1):
                batch_lines.append({"order_no": no, "line_no": line, "product_id": rnd.randint(1, n_products),
                                    "qty": rnd.randint(1, 20), "unit_price": Decimal(rnd.randint(1, 100000)) / 100,
                                    "discount_pct": rnd.choice(DISCOUNTS)})
            if len(batch_orders) >= 10_000 or i == n:
                await conn.execute(insert(orders), batch_orders)
                await conn.execute(insert(order_lines), batch_lines)
                batch_orders, batch_lines = [], []
    await engine.dispose()


def _insert_many(cur: pyodbc.Cursor, table: str, width: int, rows: list[tuple[Any, ...]]) -> None:
    marks = "(" + ", ".join("?" * width) + ")"
    for start in range(0, len(rows), 500):
        chunk = rows[start:start + 500]
        cur.execute(f"INSERT INTO {table} VALUES " + ", ".join([marks] * len(chunk)),
                    *[v for row in chunk for v in row])


def seed_accounting(odbc: str, n: int, rnd: random.Random) -> None:
    with pyodbc.connect(odbc, autocommit=True, timeout=10) as conn:
        cur = conn.cursor()
        n_customers = max(1, n // 10)
        _insert_many(cur, "ARCUST", 5, [(f"C{i:07d}", f"CUSTOMER {i}", 1_000_000, "EUR", "A")
                                        for i in range(1, n_customers + 1)])
        invoices, payments = [], []
        for i in range(1, n + 1):
            amount = rnd.randint(100, 1_000_000)
            status = rnd.choice("OOPPV")
            invoices.append((f"INV{i:09d}", f"C{rnd.randint(1, n_customers):07d}", f"SO-2024-{i:06d}",
                             20240101, rnd.choice((20240301, 20240701, 0)), "EUR", amount, amount // 5, status))
            if status != "V" and i % 3:
                payments.append((f"PAY{i:09d}", f"INV{i:09d}", 20240201, amount // 2, "BT"))
        _insert_many(cur, "ARINVH", 9, invoices)
        _insert_many(cur, "ARPAYM", 5, payments)
        cur.execute("ANALYZE TABLE ARCUST, ARINVH, ARPAYM")


# -- the raw driver's statements ------------------------------------------------
#
# What a hand-written app on the bare drivers would send for the same rows: the connectors'
# unfiltered list statements, written here from the legacy schemas, never taken from the connectors
# (their text or their table objects), so the peer stays the same whatever the connectors become.

WAREHOUSE_ITEMS = ("SELECT i.sku, i.name, i.unit, i.active, COALESCE(SUM(s.on_hand), 0), COALESCE(SUM(s.reserved), 0) "
                   "FROM items i LEFT JOIN stock s ON s.sku = i.sku{join_after}{where_after} "
                   "GROUP BY i.sku ORDER BY i.sku LIMIT %(limit)s")
SALES_ORDER_HEADS = ("SELECT order_no, customer_id, status, ordered_at, ship_from, currency FROM orders{where_after} "
                     "ORDER BY order_no LIMIT :limit")
# each line rounded to the cent, then summed: exact in MariaDB's DECIMAL arithmetic
SALES_TOTALS = text("SELECT order_no, SUM(ROUND(qty * unit_price * (100 - discount_pct) * 0.01, 2)) FROM order_lines "
                    "WHERE order_no IN :nos GROUP BY order_no").bindparams(bindparam("nos", expanding=True))
ACCOUNTING_INVOICES = ("SELECT H.INVNO, H.CUSTNO, H.ORDREF, H.INVDT, H.DUEDT, H.CURRCD, H.AMTCENTS, H.TAXCENTS, "
                       "H.STATUS, COALESCE((SELECT SUM(P.AMTCENTS) FROM ARPAYM P WHERE P.INVNO = H.INVNO), 0) "
                       "FROM ARINVH H{where_after} ORDER BY H.INVNO OFFSET 0 ROWS FETCH NEXT {limit} ROWS ONLY")


def warehouse_items(after: str | None) -> tuple[str, dict[str, Any]]:
    if after is None:
        return WAREHOUSE_ITEMS.format(join_after="", where_after=""), {"limit": PAGE}
    # the keyset bound on both tables, so the merge join starts both index scans there
    return (WAREHOUSE_ITEMS.format(join_after=" AND s.sku > %(after)s", where_after=" WHERE i.sku > %(after)s"),
            {"limit": PAGE, "after": after})


def sales_heads(after: str | None) -> tuple[TextClause, dict[str, Any]]:
    if after is None:
        return text(SALES_ORDER_HEADS.format(where_after="")), {"limit": PAGE}
    return text(SALES_ORDER_HEADS.format(where_after=" WHERE order_no > :after")), {"limit": PAGE, "after": after}


def accounting_invoices(after: str | None) -> tuple[str, list[Any]]:
    if after is None:
        return ACCOUNTING_INVOICES.format(where_after="", limit=PAGE), []
    return ACCOUNTING_INVOICES.format(where_after=" WHERE H.INVNO > ?", limit=PAGE), [after]


# -- page by page --------------------------------------------------------------
#
# The machine is shared, so a whole walk is rarely undisturbed. Each page is timed on
# its own, connector and raw driver alternately, and the best time of each page over
# the rounds is kept: interference only ever adds time, never removes it.

Page = Callable[[Any], Awaitable[tuple[int, Any]]]   # after -> (rows, last key)


class Side:
    """One way of reading a page (through the connector or straight through the driver)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.best: list[float] = []

    async def time(self, i: int, after: Any) -> tuple[int, Any]:
        started = time.perf_counter()
        result = await self.page(after)
        took = time.perf_counter() - started
        if i == len(self.best):
            self.best.append(took)
        else:
            self.best[i] = min(self.best[i], took)
        return result


async def measure(name: str, connector: Page, raw: Page, raw_on_thread: Page | None = None) -> dict[str, Any]:
    """``raw_on_thread``, for a blocking driver: the same raw read from the event loop through one
    worker thread, the least any asyncio caller of that driver pays."""
    through, direct = Side(connector), Side(raw)
    hopped = Side(raw_on_thread) if raw_on_thread is not None else None
    keys: list[Any] = [None]
    rows = 0
    while True:  # the first walk learns the keyset positions and warms both sides
        count, last = await direct.time(len(keys) - 1, keys[-1])
        through_count, _ = await through.time(len(keys) - 1, keys[-1])
        if count != through_count:
            raise RuntimeError(f"{name}: connector read {through_count} rows, raw driver {count}")
        if hopped is not None:
            await hopped.time(len(keys) - 1, keys[-1])
        rows += count
        if count < PAGE:
            break
        keys.append(last)
    for round_no in range(ROUNDS):
        for i, after in enumerate(keys):
            sides = [through, direct] if (round_no + i) % 2 else [direct, through]
            if hopped is not None:
                sides.insert((round_no + i) % 3, hopped)
            for side in sides:
                await side.time(i, after)
    c, d = rows / sum(through.best), rows / sum(direct.best)
    result = {"name": name, "rows": rows, "connector": c, "raw": d, "ratio": c / d, "raw_us": 1e6 / d,
              "own_us": 1e6 / c - 1e6 / d}
    if hopped is not None:
        h = rows / sum(hopped.best)
        result.update(raw_thread=h, ratio_thread=c / h)
    return result


def warehouse_pages(c: WarehouseConnector, conn: psycopg.AsyncConnection[Any]) -> tuple[Page, Page]:
    async def connector(after: Any) -> tuple[int, Any]:
        rows = await c.items(ItemFilter(), after, PAGE)
        return len(rows), rows[-1].sku if rows else None

    async def raw(after: Any) -> tuple[int, Any]:
        rows = await (await conn.execute(*warehouse_items(after))).fetchall()
        return len(rows), rows[-1][0] if rows else None

    return connector, raw


def sales_pages(c: SalesConnector, conn: AsyncConnection) -> tuple[Page, Page]:
    async def connector(after: Any) -> tuple[int, Any]:
        rows = await c.orders(OrderFilter(), after, PAGE)
        return len(rows), rows[-1].order_no if rows else None

    async def raw(after: Any) -> tuple[int, Any]:
        heads = (await conn.execute(*sales_heads(after))).all()
        nos = [h[0] for h in heads]
        (await conn.execute(SALES_TOTALS, {"nos": nos})).all()
        return len(heads), nos[-1] if nos else None

    return connector, raw


def accounting_pages(c: AccountingConnector, cur: pyodbc.Cursor,
                     hop: concurrent.futures.ThreadPoolExecutor) -> tuple[Page, Page, Page]:
    async def connector(after: Any) -> tuple[int, Any]:
        rows = await c.invoices(InvoiceFilter(today=TODAY), after, PAGE)
        return len(rows), rows[-1].invno if rows else None

    def fetch(after: Any) -> list[Any]:
        sql, params = accounting_invoices(after)
        return cur.execute(sql, *params).fetchall()  # type: ignore[no-any-return]

    async def raw(after: Any) -> tuple[int, Any]:
        # blocking on purpose: the bare driver, without even a thread hop
        rows = fetch(after)
        return len(rows), rows[-1][0] if rows else None

    async def raw_on_thread(after: Any) -> tuple[int, Any]:
        rows = await asyncio.get_running_loop().run_in_executor(hop, fetch, after)
        return len(rows), rows[-1][0] if rows else None

    return connector, raw, raw_on_thread


async def bench(rows: int, runs: int) -> list[dict[str, Any]]:
    t = targets().renamed("benchconn")
    print(f"creating and seeding throw-away databases ({rows} rows per source) ...", flush=True)
    create_all(t, drop=True)
    try:
        rnd = random.Random(7)
        seed_warehouse(t.warehouse_dsn, rows, rnd)
        await seed_sales(t.sales_url, rows, rnd)
        seed_accounting(t.accounting_odbc, rows, rnd)
        every = []
        for run in range(runs):
            print(f"measuring, run {run + 1} of {runs} ...", flush=True)
            every.append(await measure_all(t))
        return [median_run(list(same)) for same in zip(*every, strict=True)]
    finally:
        drop_all(t)


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One source's run with the median ratio, and every run's ratio beside it."""
    middle = dict(sorted(runs, key=lambda r: r["ratio"])[len(runs) // 2])
    middle["ratios"] = [r["ratio"] for r in runs]
    return middle


async def measure_all(t: LegacyTargets) -> list[dict[str, Any]]:
    results = []
    wh = WarehouseConnector(t.warehouse_dsn, query_timeout=60, connect_timeout=5)
    await wh.open()
    async with await psycopg.AsyncConnection.connect(t.warehouse_dsn, autocommit=True) as pg:
        results.append(await measure("warehouse items (stock summed)", *warehouse_pages(wh, pg)))
    await wh.close()
    sa = SalesConnector(t.sales_url, pool_size=4, query_timeout=60, connect_timeout=5)
    await sa.open()
    engine = create_async_engine(t.sales_url)
    async with engine.connect() as my:
        results.append(await measure("sales orders (+ batched lines, totals)", *sales_pages(sa, my)))
    await engine.dispose()
    await sa.close()
    ac = AccountingConnector(t.accounting_odbc, max_workers=4, login_timeout=5, query_timeout=60)
    await ac.open()
    with pyodbc.connect(t.accounting_odbc, autocommit=True, timeout=10) as odbc:
        # MariaDB's ODBC driver garbles UTF-16 text, so both sides exchange UTF-8 and read alike
        odbc.setencoding(encoding="utf-8")
        odbc.setdecoding(pyodbc.SQL_CHAR, encoding="utf-8")
        odbc.setdecoding(pyodbc.SQL_WCHAR, encoding="utf-8")
        cur = odbc.cursor()
        with concurrent.futures.ThreadPoolExecutor(1) as hop:
            results.append(await measure("accounting invoices (+ paid)", *accounting_pages(ac, cur, hop)))
    await ac.close()
    return results


def table(results: list[dict[str, Any]]) -> str:
    return md_table(
        ["bulk read (keyset pages of 500)", "rows", "connector rows/s", "raw driver rows/s", "ratio",
         "every run's ratio", "µs/row: raw fetch", "+ the connector's own work"],
        [[r["name"], str(r["rows"]), f"{r['connector']:,.0f}", f"{r['raw']:,.0f}", f"{r['ratio']:.2f}×",
          " / ".join(f"{x:.3f}×" for x in r["ratios"]), f"{r['raw_us']:.1f}", f"{r['own_us']:.1f}"]
         for r in results],
        align="l r r r r l r r")


def thread_hop(r: dict[str, Any]) -> str:
    return (f"{r['name']}: pyodbc blocks, so the connector must run it on a worker thread; the same raw read\n"
            f"from the event loop through one worker thread (`run_in_executor`) reads {r['raw_thread']:,.0f} rows/s, "
            f"and\nthe connector is {r['ratio_thread']:.2f}× that. The hop alone costs "
            f"{1e6 / r['raw_thread'] - r['raw_us']:.2f} µs a row (that read minus the direct one).\n")


def short_of_target(r: dict[str, Any]) -> str:
    return (f"{r['name']}: {r['ratio']:.2f}×, short of {TARGET}×, which allows "
            f"{(1 / TARGET - 1) * r['raw_us']:.2f} µs a row on top of the raw fetch; the connector adds "
            f"{r['own_us']:.2f}.\n")


def write_section(results: list[dict[str, Any]], rows: int, runs: int, load: tuple[float, float]) -> None:
    path = REPO / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    notes = [thread_hop(r) for r in results if "ratio_thread" in r]
    notes += [short_of_target(r) for r in results if r["ratio"] < TARGET]
    body = (f"## {SECTION}\n\n"
            f"Command: `.venv/bin/python -m bench.connectors --rows {rows} --runs {runs}` (local stack; throw-away\n"
            f"`*_benchconn` databases, {rows} items / orders / invoices). Each connector walks its whole list through\n"
            f"its public method in keyset pages of {PAGE} and builds records; the raw driver (psycopg / SQLAlchemy\n"
            "text statements / pyodbc) runs the same statements, written in `bench/connectors.py` from the legacy\n"
            "schemas, on one connection and only fetches tuples. Each page is timed alone, connector and raw\n"
            f"alternately, best of {ROUNDS} rounds per page (the machine is shared; interference only adds time).\n"
            f"The whole measurement is made {runs} times on the same data; the table shows the run with the\n"
            "median ratio for each source, and every run's ratio beside it.\n"
            f"Target: connector ≥ {TARGET}× raw. The last two columns split the connector's time per row: the raw\n"
            "fetch, and what the connector adds to it (building records, normalising padding, case and time\n"
            "zones, pool checkout, Sales' pre-ping, the Accounting thread hop, deadlines).\n\n"
            f"{table(results)}\n\n"
            + "".join(f"{note}\n" for note in notes)
            + f"Measured {datetime.now(UTC):%Y-%m-%d} on the shared development machine ({os.cpu_count()} CPUs, load "
            f"average {load[0]:.1f} before and {load[1]:.1f} after the run); absolute rates vary, the ratio is the "
            "point.\n")
    pattern = re.compile(rf"^## {SECTION}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: body + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + body
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="items, orders and invoices to seed")
    parser.add_argument("--runs", type=int, default=3, help="whole measurements; the median run is reported")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    results = asyncio.run(bench(args.rows, args.runs))
    after = os.getloadavg()[0]
    print(table(results))
    for r in results:
        print(f"{r['name']}: median ratio over the runs {statistics.median(r['ratios']):.3f}")
        if "ratio_thread" in r:
            print(f"{r['name']}: raw driver through one worker thread {r['raw_thread']:,.0f} rows/s; "
                  f"connector / that: {r['ratio_thread']:.2f}x")
    print(f"load average {before:.1f} before, {after:.1f} after")
    if not args.no_write:
        write_section(results, args.rows, args.runs, (before, after))
        print("wrote the Connectors section of BENCHMARKS.md")


if __name__ == "__main__":
    main()
