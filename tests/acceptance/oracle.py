"""The expected answer of every resource, recomputed with SQL straight against the three legacy databases.

Written from the contract's definitions alone: nothing here comes from ``connectors`` or ``federation``.
Each derived number is computed in SQL (sums, rounding, balances, overdue); Python only joins the
systems, which live on different servers, and shapes the rows into the API's canonical fields.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

import psycopg
import pyodbc

from deploy.legacy.schema import LegacyTargets, sales_as_odbc

CENT = Decimal("0.01")
ACCOUNT_STATUS = {"A": "active", "H": "on_hold", "X": "closed"}
INVOICE_STATUS = {"O": "open", "P": "paid", "V": "void"}
COUNTED = ("cancelled", "draft")  # order statuses that never count as sold

# Accounting-derived fields per resource, null for a reader.
ACCOUNTING_FIELDS = {
    "products": ("std_cost",),
    "product": ("std_cost",),
    "customers": ("account_status", "open_balance"),
    "customer": ("account",),
    "order": ("invoices", "payment_status"),
}

Row = dict[str, Any]


def money(value: Decimal | int | None, currency: str) -> dict[str, str]:
    """Money from a Sales decimal, in the API's canonical form."""
    amount = Decimal(value or 0).quantize(CENT)
    return {"amount": f"{amount:f}", "currency": currency.strip()}


def cents(value: int | Decimal | None, currency: str) -> dict[str, str]:
    """Money from Accounting's integer cents."""
    amount = (Decimal(int(value or 0)) / 100).quantize(CENT)
    return {"amount": f"{amount:f}", "currency": currency.strip()}


def utc(value: datetime | None) -> datetime | None:
    """A Sales naive-UTC DATETIME as an aware instant."""
    return None if value is None else value.replace(tzinfo=UTC)


def ymd_date(value: int) -> date | None:
    """An Accounting YYYYMMDD integer as a date; 0 means none."""
    value = int(value)
    return None if value == 0 else date(value // 10000, value // 100 % 100, value % 100)


def strip(value: str | None) -> str | None:
    return None if value is None else value.strip()


def _odbc(conn_str: str) -> pyodbc.Connection:
    """A connection that moves text as UTF-8 both ways.

    MariaDB Connector/ODBC 3.1 loses characters in UTF-16 (SQL_WCHAR) results -- 'Panel Ø32' arrives
    as 'Panel Ø3' -- and garbles non-ASCII statement text, so the oracle never uses UTF-16.
    """
    conn = pyodbc.connect(conn_str, autocommit=True, timeout=30)
    conn.setencoding(encoding="utf-8")
    conn.setdecoding(pyodbc.SQL_CHAR, encoding="utf-8")
    conn.setdecoding(pyodbc.SQL_WCHAR, encoding="utf-8", ctype=pyodbc.SQL_CHAR)
    return conn


@dataclass
class EdgeCases:
    """Ids of rows that exercise each awkward corner of the data, found by SQL (None when absent)."""

    partial_shipment_order: str | None
    sku_on_two_lines_order: str | None      # one line's quantity shipped, not the SKU's sum over its lines
    service_line_order: str | None
    void_invoice_order: str | None
    partial_payment_order: str | None
    overdue_invoice_order: str | None
    unbilled_order: str | None
    no_ship_from_order: str | None
    customer_without_acct: int | None
    customer_dangling_acct: int | None
    customer_with_overdue: int | None
    customer_without_orders: int | None
    multi_listing_sku: str | None
    sku_absent_from_sales: str | None
    inactive_sku: str | None
    unstocked_sku: str | None
    uncosted_sku: str | None
    orphan_invoice: str | None
    manual_invoice: str | None
    sales_sku_unknown_to_warehouse: str | None

    def orders(self) -> list[str]:
        return [v for v in (self.partial_shipment_order, self.sku_on_two_lines_order, self.service_line_order,
                            self.void_invoice_order, self.partial_payment_order, self.overdue_invoice_order,
                            self.unbilled_order, self.no_ship_from_order) if v]

    def customers(self) -> list[int]:
        return [v for v in (self.customer_without_acct, self.customer_dangling_acct, self.customer_with_overdue,
                            self.customer_without_orders) if v]

    def skus(self) -> list[str]:
        return [v for v in (self.multi_listing_sku, self.sku_absent_from_sales, self.inactive_sku,
                            self.unstocked_sku, self.uncosted_sku) if v]


class Oracle:
    """SQL against the legacy databases, shaped into the contract's resources."""

    def __init__(self, targets: LegacyTargets, today: date | None = None) -> None:
        self.today = today or datetime.now(UTC).date()
        self.today_ymd = self.today.year * 10000 + self.today.month * 100 + self.today.day
        self.wh = psycopg.connect(targets.warehouse_dsn, autocommit=True)
        self.sales = _odbc(sales_as_odbc(targets.sales_url, targets.accounting_odbc))
        self.acct = _odbc(targets.accounting_odbc)

    def close(self) -> None:
        self.wh.close()
        self.sales.close()
        self.acct.close()

    # -- raw SQL -------------------------------------------------------------

    def wh_rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        return list(self.wh.execute(sql, params).fetchall())

    def sales_rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.sales.cursor().execute(sql, *params).fetchall()]

    def acct_rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.acct.cursor().execute(sql, *params).fetchall()]

    # -- warehouse -----------------------------------------------------------

    @cached_property
    def locations(self) -> list[Row]:
        rows = self.wh_rows("SELECT code, name, city, country, timezone FROM locations ORDER BY code")
        return sorted(({"code": c, "name": n, "city": ci, "country": co.strip(), "timezone": tz}
                       for c, n, ci, co, tz in rows), key=lambda r: r["code"])

    @cached_property
    def items(self) -> dict[str, Row]:
        rows = self.wh_rows("SELECT sku, name, description, unit, weight_grams, active FROM items")
        return {sku: {"sku": sku, "name": name, "description": desc, "unit": unit, "weight_grams": weight,
                      "active": active} for sku, name, desc, unit, weight, active in rows}

    @cached_property
    def stock_by_sku(self) -> dict[str, list[Row]]:
        out: dict[str, list[Row]] = defaultdict(list)
        for sku, code, on_hand, reserved, available in self.wh_rows(
                "SELECT sku, location_code, on_hand, reserved, on_hand - reserved FROM stock "
                "ORDER BY sku, location_code"):
            out[sku].append({"location": code, "on_hand": on_hand, "reserved": reserved, "available": available})
        return dict(out)

    @cached_property
    def stock_totals(self) -> dict[str, tuple[int, int, int]]:
        """(on_hand, reserved, available) summed over every location; items without rows are 0."""
        return {sku: (a, b, c) for sku, a, b, c in self.product_keys()}

    @cached_property
    def shipped(self) -> dict[tuple[str, str], int]:
        """-sum(qty) of shipment movements per (reference, sku)."""
        rows = self.wh_rows(
            "SELECT reference, sku, -SUM(qty) FROM movements WHERE kind = 'shipment' AND reference IS NOT NULL "
            "GROUP BY reference, sku")
        return {(ref, sku): int(n) for ref, sku, n in rows}

    def product_keys(self, *, location: str | None = None, in_stock: bool | None = None,
                     active: bool | None = None) -> list[tuple[str, int, int, int]]:
        """(sku, on_hand, reserved, available) of the items a products filter keeps, in SKU order."""
        join = "JOIN stock s ON s.sku = i.sku AND s.location_code = %(loc)s" if location else \
            "LEFT JOIN stock s ON s.sku = i.sku"
        where = "WHERE i.active = %(active)s" if active is not None else ""
        having = ""
        if in_stock is True:
            having = "HAVING COALESCE(SUM(s.on_hand - s.reserved), 0) > 0"
        elif in_stock is False:
            having = "HAVING COALESCE(SUM(s.on_hand - s.reserved), 0) <= 0"
        rows = self.wh_rows(
            f"SELECT i.sku, COALESCE(SUM(s.on_hand), 0), COALESCE(SUM(s.reserved), 0), "
            f"COALESCE(SUM(s.on_hand - s.reserved), 0) FROM items i {join} {where} GROUP BY i.sku {having}",
            {"loc": location, "active": active})
        return sorted((sku, int(a), int(b), int(c)) for sku, a, b, c in rows)

    # -- sales ---------------------------------------------------------------

    @cached_property
    def first_listing(self) -> dict[str, tuple[str, Decimal, str]]:
        """(title, list_price, currency) of the lowest-id Sales product per warehouse-spelled SKU."""
        rows = self.sales_rows(
            "SELECT f.sku, p.title, p.list_price, p.currency FROM products p JOIN "
            "(SELECT UPPER(TRIM(sku)) AS sku, MIN(id) AS id FROM products WHERE sku IS NOT NULL "
            " GROUP BY UPPER(TRIM(sku))) f ON f.id = p.id")
        return {sku: (title, price, cur.strip()) for sku, title, price, cur in rows}

    @cached_property
    def listings_per_sku(self) -> dict[str, int]:
        rows = self.sales_rows("SELECT UPPER(TRIM(sku)), COUNT(*) FROM products WHERE sku IS NOT NULL "
                               "GROUP BY UPPER(TRIM(sku))")
        return {sku: int(n) for sku, n in rows}

    @cached_property
    def product_sales(self) -> dict[str, tuple[int, int, datetime]]:
        """(units_sold, orders, last_ordered_at) per SKU over counted orders."""
        rows = self.sales_rows(
            "SELECT UPPER(TRIM(p.sku)), SUM(l.qty), COUNT(DISTINCT o.order_no), MAX(o.ordered_at) "
            "FROM order_lines l JOIN orders o ON o.order_no = l.order_no JOIN products p ON p.id = l.product_id "
            "WHERE p.sku IS NOT NULL AND o.status NOT IN (?, ?) GROUP BY UPPER(TRIM(p.sku))", *COUNTED)
        return {sku: (int(u), int(n), last) for sku, u, n, last in rows}

    @cached_property
    def customers(self) -> dict[int, Row]:
        rows = self.sales_rows("SELECT id, name, email, country, created_at, acct_no FROM customers")
        return {int(i): {"id": int(i), "name": name, "email": email, "country": strip(country),
                         "created_at": created, "acct_no": strip(acct) or None}
                for i, name, email, country, created, acct in rows}

    @cached_property
    def customer_by_acct(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for cid in sorted(self.customers):
            acct = self.customers[cid]["acct_no"]
            if acct is not None:
                out.setdefault(acct, cid)
        return out

    @cached_property
    def customer_orders(self) -> dict[int, tuple[int, datetime]]:
        rows = self.sales_rows("SELECT customer_id, COUNT(*), MAX(ordered_at) FROM orders GROUP BY customer_id")
        return {int(c): (int(n), last) for c, n, last in rows}

    @cached_property
    def orders(self) -> dict[str, Row]:
        rows = self.sales_rows(
            "SELECT o.order_no, o.customer_id, o.status, o.ordered_at, o.ship_from, o.currency, "
            "COALESCE((SELECT SUM(ROUND(l.qty * l.unit_price * (100 - l.discount_pct) / 100, 2)) "
            "          FROM order_lines l WHERE l.order_no = o.order_no), 0) "
            "FROM orders o")
        return {no: {"order_no": no, "customer_id": int(cid), "status": status, "ordered_at": at,
                     "ship_from": strip(ship) or None, "currency": cur.strip(), "total": total}
                for no, cid, status, at, ship, cur, total in rows}

    @cached_property
    def lines(self) -> dict[str, list[Row]]:
        rows = self.sales_rows(
            "SELECT l.order_no, l.line_no, l.product_id, UPPER(TRIM(p.sku)), p.title, l.qty, l.unit_price, "
            "l.discount_pct, ROUND(l.qty * l.unit_price * (100 - l.discount_pct) / 100, 2) "
            "FROM order_lines l JOIN products p ON p.id = l.product_id ORDER BY l.order_no, l.line_no")
        out: dict[str, list[Row]] = defaultdict(list)
        for no, line_no, pid, sku, title, qty, price, disc, total in rows:
            out[no].append({"line_no": int(line_no), "product_id": int(pid), "sku": sku or None, "title": title,
                            "qty": int(qty), "unit_price": price, "discount_pct": disc, "total": total})
        return dict(out)

    def order_keys(self, *, customer_id: int | None = None, status: str | None = None,
                   since: datetime | None = None, until: datetime | None = None) -> list[str]:
        clauses, params = ["1 = 1"], []
        if customer_id is not None:
            clauses.append("customer_id = ?")
            params.append(customer_id)
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if since is not None:
            clauses.append("ordered_at >= ?")
            params.append(since.astimezone(UTC).replace(tzinfo=None))
        if until is not None:
            clauses.append("ordered_at < ?")
            params.append(until.astimezone(UTC).replace(tzinfo=None))
        rows = self.sales_rows(f"SELECT order_no FROM orders WHERE {' AND '.join(clauses)}", *params)
        return sorted(r[0] for r in rows)

    def customer_keys(self, *, country: str | None = None) -> list[int]:
        if country is None:
            return sorted(self.customers)
        return sorted(int(r[0]) for r in self.sales_rows("SELECT id FROM customers WHERE country = ?", country))

    def sold_items(self, *, since: datetime | None = None, until: datetime | None = None,
                   location: str | None = None) -> list[Row]:
        clauses, params = ["p.sku IS NOT NULL", "o.status NOT IN (?, ?)"], list(COUNTED)
        if since is not None:
            clauses.append("o.ordered_at >= ?")
            params.append(since.astimezone(UTC).replace(tzinfo=None))
        if until is not None:
            clauses.append("o.ordered_at < ?")
            params.append(until.astimezone(UTC).replace(tzinfo=None))
        if location is not None:
            clauses.append("o.ship_from = ?")
            params.append(location)
        rows = self.sales_rows(
            "SELECT UPPER(TRIM(p.sku)), SUM(l.qty) FROM order_lines l "
            "JOIN orders o ON o.order_no = l.order_no JOIN products p ON p.id = l.product_id "
            f"WHERE {' AND '.join(clauses)} GROUP BY UPPER(TRIM(p.sku))", *params)
        out = []
        for sku, units in rows:
            item = self.items.get(sku)
            totals = self.stock_totals.get(sku)
            out.append({"sku": sku, "name": item["name"] if item else None, "units_sold": int(units),
                        "on_hand": totals[0] if totals else None, "available": totals[2] if totals else None})
        out.sort(key=lambda r: (-r["units_sold"], r["sku"]))
        return out

    # -- accounting ----------------------------------------------------------

    # One row per invoice with its derived facts; the only parameter is today as YYYYMMDD.
    _FACTS = (
        "SELECT h.INVNO, h.CUSTNO, h.ORDREF, h.INVDT, h.DUEDT, h.CURRCD, h.AMTCENTS, h.TAXCENTS, h.STATUS, "
        "COALESCE(pm.PAID, 0) AS PAID, "
        "CASE WHEN h.STATUS = 'O' THEN h.AMTCENTS - COALESCE(pm.PAID, 0) ELSE 0 END AS BALANCE, "
        "CASE WHEN h.STATUS = 'O' AND h.AMTCENTS - COALESCE(pm.PAID, 0) > 0 AND h.DUEDT > 0 AND h.DUEDT < ? "
        "     THEN 1 ELSE 0 END AS OVERDUE "
        "FROM ARINVH h LEFT JOIN (SELECT INVNO, SUM(AMTCENTS) AS PAID FROM ARPAYM GROUP BY INVNO) pm "
        "ON pm.INVNO = h.INVNO")

    @cached_property
    def invoices(self) -> dict[str, Row]:
        """Every invoice with paid, balance and overdue computed in SQL, keyed by INVNO."""
        out = {}
        for (invno, custno, ordref, invdt, duedt, cur, amt, tax, status, paid, balance,
             overdue) in self.acct_rows(
                "SELECT TRIM(INVNO), TRIM(CUSTNO), TRIM(ORDREF), INVDT, DUEDT, CURRCD, AMTCENTS, TAXCENTS, "
                f"STATUS, PAID, BALANCE, OVERDUE FROM ({self._FACTS}) f", self.today_ymd):
            out[invno] = {"invno": invno, "acct_no": custno, "order_no": ordref or None,
                          "issued_on": ymd_date(invdt), "due_on": ymd_date(duedt), "currency": cur.strip(),
                          "amount_cents": int(amt), "tax_cents": int(tax), "status_code": status.strip(),
                          "paid_cents": int(paid), "balance_cents": int(balance), "overdue": bool(overdue)}
        return out

    @cached_property
    def accounts(self) -> dict[str, Row]:
        """ARCUST with open balance, overdue balance and open-invoice count computed in SQL."""
        rows = self.acct_rows(
            "SELECT TRIM(c.CUSTNO), c.CUSTNM, c.CRLIMIT, c.CURRCD, c.STATUS, "
            "COALESCE(SUM(CASE WHEN f.STATUS = 'O' THEN f.BALANCE END), 0), "
            "COALESCE(SUM(CASE WHEN f.OVERDUE = 1 THEN f.BALANCE END), 0), "
            "COUNT(CASE WHEN f.STATUS = 'O' THEN 1 END) "
            f"FROM ARCUST c LEFT JOIN ({self._FACTS}) f ON f.CUSTNO = c.CUSTNO "
            "GROUP BY c.CUSTNO, c.CUSTNM, c.CRLIMIT, c.CURRCD, c.STATUS", self.today_ymd)
        return {custno: {"acct_no": custno, "name": name.rstrip(), "credit_limit_cents": int(limit),
                         "currency": cur.strip(), "status": ACCOUNT_STATUS[status.strip()],
                         "open_cents": int(open_c), "overdue_cents": int(over_c), "open_invoices": int(n)}
                for custno, name, limit, cur, status, open_c, over_c, n in rows}

    @cached_property
    def std_cost(self) -> dict[str, int]:
        return {sku: int(cost) for sku, cost in self.acct_rows("SELECT UPPER(TRIM(ITEMNO)), STDCOST FROM ICITEM")}

    def invoice_keys(self, *, acct_no: str | None = None, status: str | None = None,
                     overdue: bool | None = None) -> list[str]:
        clauses, params = ["1 = 1"], [self.today_ymd]
        if acct_no is not None:
            clauses.append("TRIM(CUSTNO) = ?")
            params.append(acct_no)
        if status is not None:
            clauses.append("STATUS = ?")
            params.append({v: k for k, v in INVOICE_STATUS.items()}[status])
        if overdue is not None:
            clauses.append("OVERDUE = ?")
            params.append(1 if overdue else 0)
        rows = self.acct_rows(f"SELECT TRIM(INVNO) FROM ({self._FACTS}) f WHERE {' AND '.join(clauses)}", *params)
        return sorted(r[0] for r in rows)

    @cached_property
    def invoices_by_order(self) -> dict[str, list[Row]]:
        out: dict[str, list[Row]] = defaultdict(list)
        for inv in sorted(self.invoices.values(), key=lambda r: r["invno"]):
            if inv["order_no"]:
                out[inv["order_no"]].append(inv)
        return dict(out)

    # -- the resources, as the contract shapes them -------------------------

    def product_row(self, sku: str, *, finance: bool = True,
                    stock: tuple[int, int, int] | None = None) -> Row:
        item = self.items[sku]
        on_hand, reserved, available = stock or self.stock_totals[sku]
        listing = self.first_listing.get(sku)
        cost = self.std_cost.get(sku)
        return {"sku": sku, "name": item["name"], "unit": item["unit"], "active": item["active"],
                "on_hand": on_hand, "reserved": reserved, "available": available,
                "list_price": money(listing[1], listing[2]) if listing else None,
                "std_cost": cents(cost, "EUR") if finance and cost is not None else None}

    def whole_list(self, path: str, *, finance: bool = True) -> list[Row]:
        """Every row of the unfiltered list resource at ``path``, as a finance user (or a reader) gets it."""
        return {
            "/v1/locations": lambda: self.locations,
            "/v1/products": lambda: self.product_list(finance=finance),
            "/v1/customers": lambda: self.customer_list(finance=finance),
            "/v1/orders": self.order_list,
            "/v1/invoices": self.invoice_list,
            "/v1/sold-items": self.sold_items,
        }[path]()

    def product_list(self, *, finance: bool = True, **filters: Any) -> list[Row]:
        return [self.product_row(sku, finance=finance, stock=(a, b, c))
                for sku, a, b, c in self.product_keys(**filters)]

    def product_detail(self, sku: str, *, finance: bool = True) -> Row:
        row = self.product_row(sku, finance=finance)
        item = self.items[sku]
        listing = self.first_listing.get(sku)
        sold = self.product_sales.get(sku)
        return {**row, "sales_title": listing[0] if listing else None, "description": item["description"],
                "weight_grams": item["weight_grams"], "stock": self.stock_by_sku.get(sku, []),
                "sales": {"units_sold": sold[0] if sold else 0, "orders": sold[1] if sold else 0,
                          "last_ordered_at": utc(sold[2]) if sold else None}}

    def _account_of(self, customer: Row) -> Row | None:
        acct = customer["acct_no"]
        return self.accounts.get(acct) if acct else None

    def customer_row(self, cid: int, *, finance: bool = True) -> Row:
        c = self.customers[cid]
        account = self._account_of(c) if finance else None
        return {"id": cid, "name": c["name"], "email": c["email"], "country": c["country"], "acct_no": c["acct_no"],
                "account_status": account["status"] if account else None,
                "open_balance": cents(account["open_cents"], account["currency"]) if account else None}

    def customer_list(self, *, finance: bool = True, **filters: Any) -> list[Row]:
        return [self.customer_row(cid, finance=finance) for cid in self.customer_keys(**filters)]

    def customer_detail(self, cid: int, *, finance: bool = True) -> Row:
        c = self.customers[cid]
        account = self._account_of(c) if finance else None
        count, last = self.customer_orders.get(cid, (0, None))
        return {"id": cid, "name": c["name"], "email": c["email"], "country": c["country"],
                "created_at": utc(c["created_at"]),
                "account": None if account is None else {
                    "acct_no": account["acct_no"], "name": account["name"], "status": account["status"],
                    "credit_limit": cents(account["credit_limit_cents"], account["currency"]),
                    "open_balance": cents(account["open_cents"], account["currency"]),
                    "overdue_balance": cents(account["overdue_cents"], account["currency"]),
                    "open_invoices": account["open_invoices"]},
                "orders": {"count": count, "last_ordered_at": utc(last)}}

    def order_row(self, order_no: str) -> Row:
        o = self.orders[order_no]
        return {"order_no": order_no, "customer_id": o["customer_id"], "status": o["status"],
                "ordered_at": utc(o["ordered_at"]), "ship_from": o["ship_from"],
                "total": money(o["total"], o["currency"])}

    def order_list(self, **filters: Any) -> list[Row]:
        return [self.order_row(no) for no in self.order_keys(**filters)]

    def shipped_qty(self, order_no: str, sku: str | None) -> int:
        return 0 if sku is None else self.shipped.get((order_no, sku), 0)

    def fulfilment(self, order_no: str) -> str:
        """Per SKU: the sum ordered over all the order's lines with that SKU against what shipped of it."""
        ordered: dict[str, int] = {}
        for line in self.lines.get(order_no, []):
            if line["sku"] is not None:
                ordered[line["sku"]] = ordered.get(line["sku"], 0) + line["qty"]
        shipped = {sku: self.shipped_qty(order_no, sku) for sku in ordered}
        if not any(n > 0 for n in shipped.values()):
            return "none"
        if all(shipped[sku] >= qty for sku, qty in ordered.items()):
            return "complete"
        return "partial"

    def _sku_split_short(self, order_no: str) -> bool:
        """A SKU on several lines whose shipment covers its largest line but not their sum."""
        per_sku: dict[str, list[int]] = {}
        for line in self.lines.get(order_no, []):
            if line["sku"] is not None:
                per_sku.setdefault(line["sku"], []).append(line["qty"])
        return any(len(qtys) > 1 and max(qtys) <= self.shipped_qty(order_no, sku) < sum(qtys)
                   for sku, qtys in per_sku.items())

    def payment_status(self, order_no: str) -> str:
        billed = [i for i in self.invoices_by_order.get(order_no, []) if i["status_code"] != "V"]
        if not billed:
            return "unbilled"
        if all(i["status_code"] == "P" for i in billed):
            return "paid"
        if any(i["status_code"] == "O" and i["paid_cents"] > 0 for i in billed):
            return "partial"
        return "open"

    def order_detail(self, order_no: str, *, finance: bool = True) -> Row:
        o = self.orders[order_no]
        cur = o["currency"]
        customer = self.customers[o["customer_id"]]
        lines = [{"line_no": line["line_no"], "product_id": line["product_id"], "sku": line["sku"],
                  "title": line["title"], "qty": line["qty"], "unit_price": money(line["unit_price"], cur),
                  "discount_pct": f"{Decimal(line['discount_pct']).quantize(CENT):f}",
                  "total": money(line["total"], cur), "shipped_qty": self.shipped_qty(order_no, line["sku"])}
                 for line in self.lines.get(order_no, [])]
        invoices = [{"invno": i["invno"], "status": INVOICE_STATUS[i["status_code"]],
                     "amount": cents(i["amount_cents"], i["currency"]), "paid": cents(i["paid_cents"], i["currency"]),
                     "balance": cents(i["balance_cents"], i["currency"]), "due_on": i["due_on"],
                     "overdue": i["overdue"]}
                    for i in self.invoices_by_order.get(order_no, [])]
        return {**self.order_row(order_no), "customer": {"id": customer["id"], "name": customer["name"]},
                "lines": lines, "fulfilment": self.fulfilment(order_no),
                "invoices": invoices if finance else None,
                "payment_status": self.payment_status(order_no) if finance else None}

    def invoice_row(self, invno: str) -> Row:
        i = self.invoices[invno]
        cur = i["currency"]
        return {"invno": invno, "acct_no": i["acct_no"], "customer_id": self.customer_by_acct.get(i["acct_no"]),
                "order_no": i["order_no"], "issued_on": i["issued_on"], "due_on": i["due_on"],
                "amount": cents(i["amount_cents"], cur), "tax": cents(i["tax_cents"], cur),
                "paid": cents(i["paid_cents"], cur), "balance": cents(i["balance_cents"], cur),
                "status": INVOICE_STATUS[i["status_code"]], "overdue": i["overdue"]}

    def invoice_list(self, **filters: Any) -> list[Row]:
        return [self.invoice_row(invno) for invno in self.invoice_keys(**filters)]

    # -- edge cases ------------------------------------------------------------

    @cached_property
    def edges(self) -> EdgeCases:
        def first(values: Any) -> Any:
            return min(values, default=None)

        orders = sorted(self.orders)
        service_orders = {r[0] for r in self.sales_rows(
            "SELECT l.order_no FROM order_lines l JOIN products p ON p.id = l.product_id WHERE p.sku IS NULL")}
        void_orders = {r[0] for r in self.acct_rows("SELECT TRIM(ORDREF) FROM ARINVH WHERE STATUS = 'V'")}
        partial_paid = {r[0] for r in self.acct_rows(
            "SELECT TRIM(h.ORDREF) FROM ARINVH h JOIN ARPAYM p ON p.INVNO = h.INVNO WHERE h.STATUS = 'O' "
            "GROUP BY h.INVNO, h.ORDREF, h.AMTCENTS HAVING SUM(p.AMTCENTS) < h.AMTCENTS")}
        overdue_orders = {i["order_no"] for i in self.invoices.values() if i["overdue"] and i["order_no"]}
        order_set = set(orders)
        no_orders = set(self.customers) - set(self.customer_orders)
        absent_from_sales = set(self.items) - set(self.listings_per_sku)
        sales_skus = {r[0] for r in self.sales_rows(
            "SELECT DISTINCT UPPER(TRIM(p.sku)) FROM products p JOIN order_lines l ON l.product_id = p.id "
            "JOIN orders o ON o.order_no = l.order_no WHERE p.sku IS NOT NULL AND o.status NOT IN (?, ?)",
            *COUNTED)}
        return EdgeCases(
            partial_shipment_order=first(no for no in orders if self.fulfilment(no) == "partial"),
            sku_on_two_lines_order=first(no for no in orders if self._sku_split_short(no)),
            service_line_order=first(service_orders),
            void_invoice_order=first(void_orders & order_set),
            partial_payment_order=first(partial_paid & order_set),
            overdue_invoice_order=first(overdue_orders & order_set),
            unbilled_order=first(no for no in orders if no not in self.invoices_by_order),
            no_ship_from_order=first(no for no in orders if self.orders[no]["ship_from"] is None),
            customer_without_acct=first(c for c, r in self.customers.items() if r["acct_no"] is None),
            customer_dangling_acct=first(c for c, r in self.customers.items()
                                         if r["acct_no"] and r["acct_no"] not in self.accounts),
            customer_with_overdue=first(c for c, r in self.customers.items() if r["acct_no"] in self.accounts
                                        and self.accounts[r["acct_no"]]["overdue_cents"] > 0),
            customer_without_orders=first(no_orders),
            multi_listing_sku=first(s for s, n in self.listings_per_sku.items() if n > 1 and s in self.items),
            sku_absent_from_sales=first(absent_from_sales),
            inactive_sku=first(s for s, r in self.items.items() if not r["active"]),
            unstocked_sku=first(s for s in self.items if s not in self.stock_by_sku),
            uncosted_sku=first(s for s in self.items if s not in self.std_cost),
            orphan_invoice=first(i for i, r in self.invoices.items()
                                 if r["order_no"] and r["order_no"] not in order_set),
            manual_invoice=first(i for i, r in self.invoices.items() if r["order_no"] is None),
            sales_sku_unknown_to_warehouse=first(sales_skus - set(self.items)),
        )
