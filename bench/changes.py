"""Issue 19 benchmark: change capture under read load. Run: ``python -m bench.changes`` (``make bench-changes``).

For each capture mode (log: Warehouse logical decoding and the Sales binlog; poll: the range-checksum
diff; Accounting is polled in both), one bizfed server under wrk: first a run with no writes, then the
same run while a writer commits changes of eight kinds at a steady rate. A probe per change polls the
resource until the new value shows, which gives commit-to-visible lag per source. The cache hit ratio
of each run comes from bizfed's own counters, and the queries the watchers sent from theirs.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pymysql
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from bench.harness import ADMIN, WRK_SCRIPT, LoadResult, md_table, run_wrk, seeded, server, server_env, wrk
from deploy.legacy.schema import LegacyTargets

AUTH = {"Authorization": f"Bearer {ADMIN}"}
PROBE_EVERY = 0.02    # seconds between a probe's reads: the lag's resolution
PROBE_LIMIT = 15.0    # a change not visible by then counts as lost


@dataclass
class Shop:
    """Rows of the seeded databases that the load reads and the writer changes."""

    skus: list[str]
    stock: list[tuple[str, str]]
    orders: list[str]
    customers: list[int]
    priced: list[str]
    invoices: list[tuple[str, str]]     # (invno, order_no) of open invoices on orders
    accounts: list[tuple[int, str]]     # (customer id, acct_no)
    costed: list[str]
    shippable: list[tuple[str, str]]    # (order_no, SKU on one of its lines that the warehouse knows)
    location: str

    def paths(self) -> list[str]:
        return ([f"/v1/products/{s}" for s in self.skus] + [f"/v1/orders/{o}" for o in self.orders]
                + [f"/v1/customers/{c}" for c in self.customers])


class Legacy:
    """The writer's connections: each statement commits on its own, as the business's applications do."""

    def __init__(self, targets: LegacyTargets, accounting_db: str) -> None:
        url = make_url(targets.sales_url)
        self.sales_db, self.accounting_db = str(url.database), accounting_db
        self.my = pymysql.connect(host=url.host or "127.0.0.1", port=url.port or 3306, user=url.username or "root",
                                  password=url.password or "", autocommit=True, charset="utf8mb4")
        self.pg = psycopg.connect(targets.warehouse_dsn, autocommit=True)

    def sales(self, sql: str, values: tuple[Any, ...]) -> None:
        with self.my.cursor() as cur:
            cur.execute(sql.replace("{db}", self.sales_db), values)

    def accounting(self, sql: str, values: tuple[Any, ...]) -> None:
        with self.my.cursor() as cur:
            cur.execute(sql.replace("{db}", self.accounting_db), values)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with self.my.cursor() as cur:
            cur.execute(sql.replace("{sales}", self.sales_db).replace("{acct}", self.accounting_db))
            return list(cur.fetchall())

    def close(self) -> None:
        self.my.close()
        self.pg.close()


def shop(legacy: Legacy, n: int) -> Shop:
    wh_skus = [str(r[0]) for r in legacy.pg.execute("SELECT sku FROM items ORDER BY sku LIMIT %s", (n * 4,))]
    stock = [(str(s), str(loc)) for s, loc in legacy.pg.execute("SELECT sku, location_code FROM stock").fetchall()
             if s in set(wh_skus)]
    known = set(wh_skus)
    priced = [s for (s,) in legacy.rows("SELECT UPPER(sku) FROM {sales}.products WHERE sku IS NOT NULL")
              if s in known]
    costed = [str(s).strip() for (s,) in legacy.rows("SELECT ITEMNO FROM {acct}.ICITEM") if str(s).strip() in known]
    invoices = [(str(i).strip(), str(o).strip()) for i, o in legacy.rows(
        "SELECT h.INVNO, h.ORDREF FROM {acct}.ARINVH h JOIN {sales}.orders o ON o.order_no = TRIM(h.ORDREF) "
        f"WHERE h.STATUS = 'O' ORDER BY h.INVNO LIMIT {n}")]
    accounts = [(int(c), str(a)) for c, a in legacy.rows(
        "SELECT c.id, c.acct_no FROM {sales}.customers c JOIN {acct}.ARCUST a ON TRIM(a.CUSTNO) = c.acct_no "
        f"ORDER BY c.id LIMIT {n}")]
    orders = [str(o) for (o,) in legacy.rows(f"SELECT order_no FROM {{sales}}.orders ORDER BY order_no LIMIT {n}")]
    orders = list(dict.fromkeys([o for _, o in invoices] + orders))[:n]
    customers = list(dict.fromkeys([c for c, _ in accounts]))[:n]
    skus = list(dict.fromkeys([s for s, _ in stock] + priced + costed))[:n]
    in_orders = ", ".join(f"'{o}'" for o in orders)
    every_sku = {str(r[0]) for r in legacy.pg.execute("SELECT sku FROM items").fetchall()}
    shippable = [(str(o), str(sk)) for o, sk in legacy.rows(
        "SELECT DISTINCT l.order_no, UPPER(TRIM(p.sku)) FROM {sales}.order_lines l JOIN {sales}.products p "
        f"ON p.id = l.product_id WHERE p.sku IS NOT NULL AND l.order_no IN ({in_orders})") if sk in every_sku]
    location = legacy.pg.execute("SELECT min(code) FROM locations").fetchone()
    assert location is not None
    return Shop(skus, [x for x in stock if x[0] in set(skus)], orders, customers,
                [s for s in priced if s in set(skus)], invoices, accounts, [s for s in costed if s in set(skus)],
                shippable, str(location[0]))


Write = Callable[[Legacy], object]   # commits one change


@dataclass(frozen=True)
class Kind:
    """One kind of change: which row it picks and where that shows, and how to read the value it moves."""

    name: str
    source: str
    plan: Callable[[Shop, random.Random], tuple[str, Write]]   # the path the change shows on, and the write
    value: Callable[[dict[str, Any]], Any]


def _stock(s: Shop, rnd: random.Random) -> tuple[str, Write]:
    sku, loc = rnd.choice(s.stock)
    return f"/v1/products/{sku}", lambda db: db.pg.execute(
        "UPDATE stock SET on_hand = on_hand + 1, updated_at = now() WHERE sku = %s AND location_code = %s", (sku, loc))


def _shipment(s: Shop, rnd: random.Random) -> tuple[str, Write]:
    order_no, sku = rnd.choice(s.shippable)
    return f"/v1/orders/{order_no}", lambda db: db.pg.execute(
        "INSERT INTO movements (sku, location_code, qty, kind, reference, moved_at) "
        "VALUES (%s, %s, -1, 'shipment', %s, now())", (sku, s.location, order_no))


def _status(s: Shop, rnd: random.Random) -> tuple[str, Write]:
    order_no = rnd.choice(s.orders)
    return f"/v1/orders/{order_no}", lambda db: db.sales(
        "UPDATE {db}.orders SET status = IF(status = 'confirmed', 'shipped', 'confirmed') WHERE order_no = %s",
        (order_no,))


def _rename(s: Shop, rnd: random.Random) -> tuple[str, Write]:
    customer = rnd.choice(s.customers)
    return f"/v1/customers/{customer}", lambda db: db.sales(
        "UPDATE {db}.customers SET name = %s WHERE id = %s", (f"Bench {secrets.token_hex(4)}", customer))


def _price(s: Shop, rnd: random.Random) -> tuple[str, Write]:
    sku = rnd.choice(s.priced)
    return f"/v1/products/{sku}", lambda db: db.sales(
        "UPDATE {db}.products SET list_price = list_price + 0.01 WHERE id = "
        "(SELECT id FROM (SELECT MIN(id) AS id FROM {db}.products WHERE sku = %s) AS first)", (sku.lower(),))


def _payment(s: Shop, rnd: random.Random) -> tuple[str, Write]:
    invno, order_no = rnd.choice(s.invoices)
    return f"/v1/orders/{order_no}", lambda db: db.accounting(
        "INSERT INTO {db}.ARPAYM (PAYNO, INVNO, PAYDT, AMTCENTS, METHOD) VALUES (%s, %s, %s, 1, 'BT')",
        ("B" + secrets.token_hex(5)[:11].upper(), invno, int(datetime.now(UTC).strftime("%Y%m%d"))))


def _credit(s: Shop, rnd: random.Random) -> tuple[str, Write]:
    customer, acct = rnd.choice(s.accounts)
    return f"/v1/customers/{customer}", lambda db: db.accounting(
        "UPDATE {db}.ARCUST SET CRLIMIT = CRLIMIT + 100 WHERE CUSTNO = %s", (acct.ljust(10),))


def _cost(s: Shop, rnd: random.Random) -> tuple[str, Write]:
    sku = rnd.choice(s.costed)
    return f"/v1/products/{sku}", lambda db: db.accounting(
        "UPDATE {db}.ICITEM SET STDCOST = STDCOST + 1 WHERE ITEMNO = %s", (sku.ljust(20),))


def _shipped(d: dict[str, Any]) -> Any:
    return sum(line["shipped_qty"] for line in d["lines"])


KINDS = [
    Kind("stock counted", "warehouse", _stock, lambda d: d["on_hand"]),
    Kind("shipment", "warehouse", _shipment, _shipped),
    Kind("order status", "sales", _status, lambda d: d["status"]),
    Kind("customer renamed", "sales", _rename, lambda d: d["name"]),
    Kind("list price", "sales", _price, lambda d: d["list_price"]),
    Kind("payment posted", "accounting", _payment, lambda d: [i["paid"] for i in d["invoices"]]),
    Kind("credit limit", "accounting", _credit, lambda d: d["account"]["credit_limit"]),
    Kind("standard cost", "accounting", _cost, lambda d: d["std_cost"]),
]


def change_once(base: str, legacy: Legacy, s: Shop, kind: Kind, rnd: random.Random) -> float | None:
    """One change of ``kind``: read its resource (cached), commit, poll until the value moves. Seconds or None."""
    with httpx.Client(base_url=base, headers=AUTH, timeout=10) as client:
        path, write = kind.plan(s, rnd)
        before = kind.value(client.get(path).json()["data"])
        committed = time.monotonic()
        write(legacy)
        while time.monotonic() - committed < PROBE_LIMIT:
            if kind.value(client.get(path).json()["data"]) != before:
                return time.monotonic() - committed
            time.sleep(PROBE_EVERY)
    return None


# wrk waits this long before each request of a connection: a steady offered rate rather than as fast as it can.
PACED = WRK_SCRIPT + """
local pause = tonumber(os.getenv("BENCH_DELAY_MS"))
delay = function() return pause end
"""


def load(name: str, base: str, paths: list[str], seconds: int, rate: float | None) -> LoadResult:
    """wrk over ``paths``: as fast as it goes when ``rate`` is None, else offering about ``rate`` requests/s."""
    if rate is None:
        return wrk(name, base, paths, seconds=seconds)
    connections = 32
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp, "paths.txt")
        listing.write_text("\n".join(paths) + "\n")
        return run_wrk(name, base, PACED, seconds=seconds, connections=connections,
                       env={"BENCH_PATHS": str(listing), "BENCH_DELAY_MS": str(round(connections * 1000 / rate))})


def counters(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(base + "/metrics", timeout=10).text
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def hit_ratio(before: dict[Any, float], after: dict[Any, float]) -> float:
    def total(name: str) -> float:
        return sum(v - before.get(k, 0.0) for k, v in after.items() if k[0] == name)
    hits, misses = total("bizfed_cache_hits_total"), total("bizfed_cache_misses_total")
    stale = total("bizfed_cache_stale_serves_total")
    return hits / max(1.0, hits + misses + stale)


def watcher_qps(before: dict[Any, float], after: dict[Any, float], seconds: float) -> dict[str, float]:
    qps: dict[str, float] = {}
    for (name, labels), value in after.items():
        if name == "bizfed_change_watcher_queries_total":
            source = dict(labels)["source"]
            qps[source] = qps.get(source, 0.0) + (value - before.get((name, labels), 0.0)) / seconds
    return qps


def watching(base: str, modes: dict[str, str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = httpx.get(base + "/v1/sources", headers=AUTH, timeout=10).json()["data"]
        if all((data[n].get("changes") or {}).get("mode") == m and data[n]["changes"]["state"] == "watching"
               for n, m in modes.items()):
            return
        time.sleep(0.5)
    raise RuntimeError(f"change capture not watching as {modes}")


@contextlib.contextmanager
def committing(base: str, legacy: Legacy, s: Shop, rate: float) -> Iterator[dict[str, list[float | None]]]:
    """Changes of every kind in turn at ``rate`` per second while the block runs; lags by source."""
    lags: dict[str, list[float | None]] = {}
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def loop() -> None:
        rnd = random.Random(19)
        i = 0
        next_at = time.monotonic()
        while not stop.is_set():
            kind = KINDS[i % len(KINDS)]
            i += 1
            seed = rnd.random()

            def one(k: Kind = kind, sd: float = seed) -> None:
                lags.setdefault(k.source, []).append(change_once(base, legacy, s, k, random.Random(sd)))
            thread = threading.Thread(target=one, daemon=True)
            thread.start()
            threads.append(thread)
            next_at += 1 / rate
            stop.wait(max(0.0, next_at - time.monotonic()))

    driver = threading.Thread(target=loop, daemon=True)
    driver.start()
    try:
        yield lags
    finally:
        stop.set()
        driver.join()
        for thread in threads:
            thread.join()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--rate", type=float, default=4.0, help="changes committed per second")
    parser.add_argument("--interval", type=float, default=1.0, help="BIZFED_WATCH_INTERVAL")
    parser.add_argument("--read-rate", type=float, default=800.0,
                        help="requests/s offered by the paced load (the other load is as fast as wrk goes)")
    args = parser.parse_args(argv)
    lag_rows, load_rows = [], []
    loads: list[tuple[str, float | None]] = [(f"paced, ~{args.read_rate:,.0f} req/s offered", args.read_rate),
                                             ("saturating", None)]
    with seeded(args.scale, name="changes") as (env, targets):
        accounting_db = next(p.split("=", 1)[1] for p in targets.accounting_odbc.split(";")
                             if p.upper().startswith("DATABASE="))
        legacy = Legacy(targets, accounting_db)
        try:
            s = shop(legacy, 60)
            for mode in ("log", "poll"):
                senv = server_env(env, targets, BIZFED_CHANGES_WAREHOUSE=mode, BIZFED_CHANGES_SALES=mode,
                                  BIZFED_CHANGES_ACCOUNTING="poll", BIZFED_WATCH_INTERVAL=str(args.interval))
                with server(senv) as base:
                    watching(base, {"warehouse": mode, "sales": mode, "accounting": "poll"})
                    wrk(f"{mode}: warm-up", base, s.paths(), seconds=3)
                    for label, rate in loads:
                        before = counters(base)
                        quiet = load(f"{mode}, {label}: no changes", base, s.paths(), args.seconds, rate)
                        middle = counters(base)
                        with committing(base, legacy, s, args.rate) as lags:
                            busy = load(f"{mode}, {label}: changing", base, s.paths(), args.seconds, rate)
                        after = counters(base)
                        quiet_hits, busy_hits = hit_ratio(before, middle), hit_ratio(middle, after)
                        qps = watcher_qps(middle, after, args.seconds)
                        for source in ("warehouse", "sales", "accounting"):
                            seen = [x for x in lags.get(source, []) if x is not None]
                            lost = sum(x is None for x in lags.get(source, []))
                            source_mode = "poll" if source == "accounting" else mode
                            lag_rows.append([label, source, source_mode, str(len(seen)), str(lost),
                                             f"{percentile(seen, 50):.2f}" if seen else "-",
                                             f"{percentile(seen, 99):.2f}" if seen else "-",
                                             f"{qps.get(source, 0.0):.1f}"])
                        load_rows.append([label, mode, f"{quiet.requests_per_s:,.0f}", f"{busy.requests_per_s:,.0f}",
                                          f"{busy.requests_per_s / quiet.requests_per_s:.2f}",
                                          f"{quiet_hits * 100:.1f}", f"{busy_hits * 100:.1f}",
                                          f"{(busy_hits - quiet_hits) * 100:+.1f}"])
        finally:
            legacy.close()
    out = "\n".join([
        f"Scale {args.scale}, watch interval {args.interval:g} s (logs read every 0.2 s), {args.rate:g} changes/s "
        f"of eight kinds in turn, {args.seconds} s per run, wrk with 32 connections over {len(s.paths())} "
        "product, order and customer pages; lag is commit to the new value read through the API:",
        "",
        md_table(["read load", "source", "mode", "changes", "not seen", "lag p50 (s)", "lag p99 (s)",
                  "watcher queries/s"], lag_rows),
        "",
        md_table(["read load", "capture", "req/s, no changes", "req/s, changing", "ratio", "hit % no changes",
                  "hit % changing", "points"], load_rows),
    ])
    print(out)
    return out


if __name__ == "__main__":
    main()
