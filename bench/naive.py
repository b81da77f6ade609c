"""A plain single-file Sanic app answering three of bizfed's routes with the same data: the baseline
``bench.cold`` measures bizfed's cold reads against (issue 18).

No cache, no retries, no breakers, no bulkheads, no deadlines: each route runs the statements bizfed's
connectors run for it (written here by hand from deploy/legacy/*.sql), on the same drivers — asyncmy's
own pool for Sales, a psycopg_pool for the Warehouse, pyodbc on a thread pool for Accounting — and
shapes the rows into the contract's fields. Only the settings are read through bizfed's code.

Run: ``python -m bench.naive serve --port 8001`` with the BIZFED_* settings in the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import math
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncmy
import orjson
import pyodbc
from psycopg_pool import AsyncConnectionPool
from sanic import HTTPResponse, Request, Sanic
from sqlalchemy.engine import make_url

from api.settings import load_settings

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
JSON_OPTS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
FINANCE_ROLES = ("finance", "admin")
ORDER_STATUSES = ("draft", "confirmed", "shipped", "delivered", "cancelled")
INVOICE_STATUS = {"O": "open", "P": "paid", "V": "void"}
ACCOUNT_STATUS = {"A": "active", "H": "on_hold", "X": "closed"}

# Sales (MariaDB, asyncmy)
ORDER = ("SELECT order_no, customer_id, status, ordered_at, ship_from, currency FROM orders "
         "WHERE order_no = %s")
ORDER_TOTAL = ("SELECT order_no, SUM(ROUND(qty * unit_price * (100 - discount_pct) * 0.01, 2)) FROM order_lines "
               "WHERE order_no IN (%s) GROUP BY order_no")
ORDER_LINES = ("SELECT l.order_no, l.line_no, l.product_id, p.sku, p.title, l.qty, l.unit_price, l.discount_pct, "
               "o.currency FROM order_lines l JOIN orders o ON o.order_no = l.order_no "
               "LEFT JOIN products p ON p.id = l.product_id WHERE l.order_no = %s ORDER BY l.line_no")
ORDER_CUSTOMER = ("SELECT c.id, c.name, c.email, c.country, c.created_at, c.acct_no "
                  "FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.order_no = %s")
CUSTOMER = "SELECT id, name, email, country, created_at, acct_no FROM customers WHERE id = %s"
ORDER_STATS = ("SELECT customer_id, COUNT(*), MAX(ordered_at) FROM orders WHERE customer_id IN (%s) "
               "GROUP BY customer_id")
PRODUCTS_BY_SKU = "SELECT id, title, sku, list_price, currency FROM products WHERE sku IN ({}) ORDER BY id"

# Warehouse (PostgreSQL, psycopg)
ITEMS = ("SELECT i.sku, i.name, i.unit, i.active, COALESCE(SUM(s.on_hand), 0), COALESCE(SUM(s.reserved), 0) "
         "FROM items i LEFT JOIN stock s ON s.sku = i.sku GROUP BY i.sku ORDER BY i.sku LIMIT %(limit)s")
SHIPPED = ("SELECT reference, sku, -SUM(qty) FROM movements "
           "WHERE kind = 'shipment' AND reference = ANY(%(refs)s) GROUP BY reference, sku")

# Accounting (ODBC)
PAID = "COALESCE((SELECT SUM(P.AMTCENTS) FROM ARPAYM P WHERE P.INVNO = H.INVNO), 0)"
INVOICES_FOR_ORDER = ("SELECT H.INVNO, H.CUSTNO, H.ORDREF, H.INVDT, H.DUEDT, H.CURRCD, H.AMTCENTS, H.TAXCENTS, "
                      f"H.STATUS, {PAID} FROM ARINVH H WHERE H.ORDREF IN (?) ORDER BY H.INVNO")
ACCOUNT = ("SELECT C.CUSTNO, C.CUSTNM, C.CRLIMIT, C.CURRCD, C.STATUS, B.OPENBAL, B.OVERBAL, B.OPENCNT "
           "FROM ARCUST C LEFT JOIN ("
           "SELECT I.CUSTNO, SUM(I.BAL) AS OPENBAL, "
           "SUM(CASE WHEN I.BAL > 0 AND I.DUEDT > 0 AND I.DUEDT < ? THEN I.BAL ELSE 0 END) AS OVERBAL, "
           "COUNT(*) AS OPENCNT FROM ("
           f"SELECT H.CUSTNO, H.DUEDT, H.AMTCENTS - {PAID} AS BAL FROM ARINVH H "
           "WHERE H.STATUS = 'O' AND H.CUSTNO IN (?)"
           ") I GROUP BY I.CUSTNO"
           ") B ON B.CUSTNO = C.CUSTNO WHERE C.CUSTNO IN (?)")
STD_COSTS = "SELECT ITEMNO, STDCOST FROM ICITEM WHERE ITEMNO IN ({})"


class Sources:
    """The three systems' connections, opened as the server starts."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.settings = load_settings(env)
        self.keys = _keys(env.get("BIZFED_API_KEYS", ""))
        self.sales: Any = None
        self.warehouse: AsyncConnectionPool[Any] | None = None
        self.accounting = concurrent.futures.ThreadPoolExecutor(self.settings.accounting_workers,
                                                                thread_name_prefix="naive-acct")
        self._local = threading.local()

    async def open(self) -> None:
        s = self.settings
        url = make_url(s.sales_url)
        self.sales = await asyncmy.create_pool(
            minsize=1, maxsize=s.sales_pool, host=url.host or "127.0.0.1", port=url.port or 3306,
            user=url.username or "", password=url.password or "", database=url.database,
            charset=str(url.query.get("charset", "utf8mb4")), autocommit=True,
            init_command=f"SET SESSION max_statement_time = {s.timeouts.attempt:.3f}")
        options = f"-c statement_timeout={round(s.timeouts.attempt * 1000)} -c TimeZone=UTC"
        self.warehouse = AsyncConnectionPool(s.warehouse_dsn, min_size=1, max_size=s.warehouse_pool, open=False,
                                             kwargs={"autocommit": True, "options": options})
        await self.warehouse.open()
        pyodbc.pooling = False

    async def close(self) -> None:
        if self.warehouse is not None:
            await self.warehouse.close()
        if self.sales is not None:
            self.sales.close()
            await self.sales.wait_closed()
        self.accounting.shutdown(wait=False)

    async def sales_rows(self, *statements: tuple[str, Sequence[Any]]) -> list[list[Any]]:
        """Each statement's rows, run one after the other on one pooled connection."""
        async with self.sales.acquire() as conn, conn.cursor() as cur:
            out = []
            for sql, args in statements:
                await cur.execute(sql, args)
                out.append(list(await cur.fetchall()))
            return out

    async def warehouse_rows(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        assert self.warehouse is not None
        async with self.warehouse.connection() as conn:
            cur = await conn.execute(sql, params)
            rows: list[Any] = await cur.fetchall()
            return rows

    async def accounting_rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.accounting, self._odbc_rows, sql, params)

    def _odbc_rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        # pyodbc connections are per thread; the one cursor is reused so repeated statements stay prepared
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            conn = pyodbc.connect(self.settings.accounting_odbc, autocommit=True,
                                  timeout=max(1, math.ceil(self.settings.timeouts.connect)))
            conn.timeout = max(1, math.ceil(self.settings.timeouts.attempt))
            # MariaDB Connector/ODBC garbles some text exchanged as UTF-16; UTF-8 round-trips
            conn.setencoding(encoding="utf-8")
            conn.setdecoding(pyodbc.SQL_CHAR, encoding="utf-8")
            conn.setdecoding(pyodbc.SQL_WCHAR, encoding="utf-8")
            cursor = self._local.cursor = conn.cursor()
        cursor.execute(sql, *params)
        return list(cursor.fetchall())


def _keys(raw: str) -> dict[str, str]:
    """``key:role`` pairs from BIZFED_API_KEYS, key -> role."""
    pairs = (part.strip().rpartition(":") for part in raw.split(",") if part.strip())
    return {key: role for key, _, role in pairs}


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


def _amount(value: Decimal, currency: str) -> dict[str, str]:
    return {"amount": str(value.quantize(CENT)), "currency": currency}


def _day(value: int | None) -> date | None:
    if not value:
        return None
    return date(value // 10000, value // 100 % 100, value % 100)


def _today() -> int:
    today = datetime.now(UTC).date()
    return today.year * 10000 + today.month * 100 + today.day


def _invoice(row: Sequence[Any], today: int) -> dict[str, Any]:
    invno, _custno, _ordref, _invdt, duedt, currcd, amount, _tax, status, paid = row
    state = INVOICE_STATUS.get((status or "").strip().upper())
    total, settled = CENT * amount, CENT * paid
    balance = total - settled if state == "open" else CENT * 0
    currency = currcd.strip()
    return {"invno": invno.strip(), "status": state, "amount": _amount(total, currency),
            "paid": _amount(settled, currency), "balance": _amount(balance, currency), "due_on": _day(duedt),
            "overdue": state == "open" and balance > 0 and 0 < duedt < today}


def _payment_status(invoices: list[dict[str, Any]], paid: list[Decimal]) -> str:
    billed = [(inv, p) for inv, p in zip(invoices, paid, strict=True) if inv["status"] != "void"]
    if not billed:
        return "unbilled"
    if all(inv["status"] == "paid" for inv, _ in billed):
        return "paid"
    if any(inv["status"] == "open" and p > 0 for inv, p in billed):
        return "partial"
    return "open"


def _fulfilment(ordered: dict[str, int], shipped: dict[str, int]) -> str:
    if not ordered or all(shipped.get(sku, 0) <= 0 for sku in ordered):
        return "none"
    if all(shipped.get(sku, 0) >= qty for sku, qty in ordered.items()):
        return "complete"
    return "partial"


def _json(data: Any, status: int = 200) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(data, default=str, option=JSON_OPTS), status=status,
                        content_type="application/json")


def _role(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    sources: Sources = request.app.ctx.sources
    return sources.keys.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None


async def get_order(request: Request, order_no: str) -> HTTPResponse:
    role = _role(request)
    if role is None:
        return _json({"error": "unauthorized"}, 401)
    finance = role in FINANCE_ROLES
    src: Sources = request.app.ctx.sources
    no = order_no.strip()
    today = _today()

    async def nothing() -> list[Any]:
        return []

    (heads, totals), (lines,), (customers,), shipped_rows, invoice_rows = await asyncio.gather(
        src.sales_rows((ORDER, (no,)), (ORDER_TOTAL, (no,))),
        src.sales_rows((ORDER_LINES, (no,))),
        src.sales_rows((ORDER_CUSTOMER, (no,))),
        src.warehouse_rows(SHIPPED, {"refs": [no]}),
        src.accounting_rows(INVOICES_FOR_ORDER, (no.ljust(20),)) if finance else nothing())
    if not heads:
        return _json({"error": "not found"}, 404)
    order_no_, customer_id, status, ordered_at, ship_from, currency = heads[0]
    currency = currency.strip()
    total = totals[0][1] if totals else Decimal("0.00")
    shipped: dict[tuple[str, str], int] = {}
    for reference, sku, qty in shipped_rows:
        key = (reference.strip(), sku.strip().upper())
        shipped[key] = shipped.get(key, 0) + int(qty)
    line_rows: list[dict[str, Any]] = []
    ordered: dict[str, int] = {}
    shipped_by_sku: dict[str, int] = {}
    for _, line_no, product_id, sku, title, qty, unit_price, discount_pct, line_currency in lines:
        sku = _text(sku.upper()) if sku is not None else None
        line_currency = line_currency.strip()
        if sku is None:
            shipped_qty = 0
        else:
            shipped_qty = shipped.get((order_no_, sku), 0)
            ordered[sku] = ordered.get(sku, 0) + qty
            shipped_by_sku[sku] = shipped_qty
        line_total = (unit_price * qty * (HUNDRED - discount_pct) / HUNDRED).quantize(CENT, ROUND_HALF_UP)
        line_rows.append({"line_no": line_no, "product_id": product_id, "sku": sku, "title": title or "",
                          "qty": qty, "unit_price": _amount(unit_price, line_currency),
                          "discount_pct": str(discount_pct.quantize(CENT)),
                          "total": _amount(line_total, line_currency), "shipped_qty": shipped_qty})
    invoices = [_invoice(row, today) for row in invoice_rows]
    state = status.strip().lower()
    return _json({"data": {
        "order_no": order_no_, "customer_id": customer_id, "status": state if state in ORDER_STATUSES else None,
        "ordered_at": ordered_at, "ship_from": _text(ship_from), "total": _amount(total, currency),
        "customer": {"id": customer_id, "name": customers[0][1] if customers else None},
        "lines": line_rows,
        "fulfilment": _fulfilment(ordered, shipped_by_sku),
        "invoices": invoices if finance else None,
        "payment_status": _payment_status(invoices, [CENT * row[9] for row in invoice_rows]) if finance else None,
    }})


async def list_products(request: Request) -> HTTPResponse:
    role = _role(request)
    if role is None:
        return _json({"error": "unauthorized"}, 401)
    finance = role in FINANCE_ROLES
    src: Sources = request.app.ctx.sources
    limit = int(request.args.get("limit", "50"))
    items = await src.warehouse_rows(ITEMS, {"limit": limit + 1})
    kept = items[:limit]
    skus = list(dict.fromkeys(row[0].strip().upper() for row in kept))
    marks = ", ".join(["%s"] * len(skus))

    async def costs() -> list[Any]:
        if not finance or not skus:
            return []
        return await src.accounting_rows(STD_COSTS.format(", ".join("?" * len(skus))), [s.ljust(20) for s in skus])

    async def prices() -> list[Any]:
        if not skus:
            return []
        (rows,) = await src.sales_rows((PRODUCTS_BY_SKU.format(marks), [s.lower() for s in skus]))
        return rows

    price_rows, cost_rows = await asyncio.gather(prices(), costs())
    price: dict[str, dict[str, str]] = {}
    for _, _, sku, list_price, currency in price_rows:
        if sku is not None and sku.strip():
            price.setdefault(sku.strip().upper(), _amount(list_price.quantize(CENT, ROUND_HALF_UP), currency.strip()))
    cost = {itemno.strip().upper(): _amount(CENT * int(stdcost), "EUR") for itemno, stdcost in cost_rows}
    rows = [{"sku": sku.strip().upper(), "name": name, "unit": unit.strip(), "active": bool(active),
             "on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved,
             "list_price": price.get(sku.strip().upper()),
             "std_cost": cost.get(sku.strip().upper()) if finance else None}
            for sku, name, unit, active, on_hand, reserved in kept]
    after = base64.urlsafe_b64encode(kept[-1][0].strip().upper().encode()).decode() if len(items) > limit else None
    return _json({"data": rows, "page": {"next_cursor": after, "limit": limit}})


async def get_customer(request: Request, customer_id: int) -> HTTPResponse:
    role = _role(request)
    if role is None:
        return _json({"error": "unauthorized"}, 401)
    finance = role in FINANCE_ROLES
    src: Sources = request.app.ctx.sources
    ident = customer_id
    (found,), (stats,) = await asyncio.gather(src.sales_rows((CUSTOMER, (ident,))),
                                              src.sales_rows((ORDER_STATS, (ident,))))
    if not found:
        return _json({"error": "not found"}, 404)
    id_, name, email, country, created_at, acct_no = found[0]
    acct_no = _text(acct_no)
    account = None
    if finance and acct_no:
        padded = acct_no.ljust(10)
        rows = await src.accounting_rows(ACCOUNT, (_today(), padded, padded))
        if rows:
            custno, custnm, crlimit, currcd, status, open_bal, overdue_bal, open_count = rows[0]
            cur = currcd.strip()
            account = {"acct_no": custno.strip(), "name": custnm.strip(),
                       "status": ACCOUNT_STATUS.get((status or "").strip().upper()),
                       "credit_limit": _amount(CENT * int(crlimit or 0), cur),
                       "open_balance": _amount(CENT * int(open_bal or 0), cur),
                       "overdue_balance": _amount(CENT * int(overdue_bal or 0), cur),
                       "open_invoices": int(open_count or 0)}
    count, last = (int(stats[0][1]), stats[0][2]) if stats else (0, None)
    return _json({"data": {
        "id": id_, "name": name, "email": _text(email), "country": _text(country), "created_at": created_at,
        "acct_no": acct_no, "account": account, "orders": {"count": count, "last_ordered_at": last},
    }})


async def live(request: Request) -> HTTPResponse:
    return _json({"status": "ok"})


def create_app(env: Mapping[str, str] | None = None) -> Sanic[Any, Any]:
    import os

    app: Sanic[Any, Any] = Sanic("naive")
    app.config.ACCESS_LOG = False
    sources = Sources(os.environ if env is None else env)
    app.add_route(get_order, "/v1/orders/<order_no:str>")
    app.add_route(list_products, "/v1/products")
    app.add_route(get_customer, "/v1/customers/<customer_id:int>")
    app.add_route(live, "/health/live")

    @app.before_server_start
    async def connect(app: Sanic[Any, Any]) -> None:
        await sources.open()
        app.ctx.sources = sources

    @app.after_server_stop
    async def disconnect(app: Sanic[Any, Any]) -> None:
        await sources.close()

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"], help="as bizfed's: serve the API")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    from sanic.worker.loader import AppLoader

    loader = AppLoader(factory=create_app)
    app = loader.load()
    app.prepare(host="127.0.0.1", port=args.port, workers=args.workers, single_process=args.workers == 1,
                motd=False, access_log=False)
    if args.workers == 1:
        Sanic.serve_single(primary=app)
    else:
        Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main()

