"""List filters (products, customers, orders, invoices, sold-items) against the same filters in SQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.acceptance.oracle import Oracle
from tests.acceptance.support import Api, assert_no_diffs, compare_list, diff

PRODUCT_QUERIES = ("bracket", "STEEL", "O'BRIEN", "müller", "Ωmega", "Łódź", "wh-00", "m8", "_", "%",
                   "no-such-thing-zzz")
CUSTOMER_QUERIES = ("gmbh", "O'BRIEN", "o'neill", "東京", "ЕООД", "Müller", "pte", "_", "%", "no-such-customer-zzz")


def _utc(year: int, month: int, day: int, *rest: int) -> datetime:
    return datetime(year, month, day, *rest, tzinfo=UTC)


def _check_search(rows: list[dict[str, Any]], key: str, q: str, must: dict[Any, list[str | None]],
                  may: dict[Any, list[str | None]], expected_rows: dict[Any, dict[str, Any]], what: str) -> None:
    """Rows matching q (case-insensitive substring) in the must-fields all come back; none outside may-fields."""
    needle = q.casefold()

    def hits(fields: dict[Any, list[str | None]]) -> set[Any]:
        return {k for k, values in fields.items() if any(v is not None and needle in v.casefold() for v in values)}

    got = [row[key] for row in rows]
    assert len(got) == len(set(got)), f"{what}: duplicates {[k for k, n in Counter(got).items() if n > 1]}"
    assert got == sorted(got), f"{what}: not in {key} order"
    missing = hits(must) - set(got)
    stray = set(got) - hits(may)
    assert not missing, f"{what}: rows matching {q!r} left out: {sorted(missing, key=str)[:20]}"
    assert not stray, f"{what}: rows not matching {q!r} returned: {sorted(stray, key=str)[:20]}"
    problems: list[str] = []
    for row in rows:
        problems.extend(diff(expected_rows[row[key]], row, f"[{key}={row[key]}]"))
    assert_no_diffs(problems, what)


# -- products --------------------------------------------------------------------


def test_products_location_filter(api: Api, oracle: Oracle) -> None:
    """?location=X lists only items with a stock row at X, with that location's stock only."""
    for loc in oracle.locations:
        code = loc["code"]
        compare_list(oracle.product_list(location=code), api.walk("/v1/products", {"location": code}), "sku",
                     f"products?location={code}")


@pytest.mark.parametrize(("in_stock", "active"), [(True, None), (False, None), (None, True), (None, False),
                                                  (True, False), (False, True)])
def test_products_in_stock_and_active_filters(api: Api, oracle: Oracle, in_stock: bool | None,
                                              active: bool | None) -> None:
    """?in_stock= keeps items with available > 0 (or <= 0); ?active= keeps active (or inactive) items."""
    params = {name: str(value).lower() for name, value in (("in_stock", in_stock), ("active", active))
              if value is not None}
    compare_list(oracle.product_list(in_stock=in_stock, active=active), api.walk("/v1/products", params), "sku",
                 f"products?{params}")


def test_products_location_and_in_stock_combined(api: Api, oracle: Oracle) -> None:
    """?location=X&in_stock=true judges availability on X's stock alone."""
    code = oracle.locations[0]["code"]
    compare_list(oracle.product_list(location=code, in_stock=True),
                 api.walk("/v1/products", {"location": code, "in_stock": "true"}), "sku",
                 f"products?location={code}&in_stock=true")


def test_products_q_filter(api: Api, oracle: Oracle) -> None:
    """?q= finds every item whose name or SKU contains q, ignoring case, and nothing unrelated."""
    must = {sku: [item["name"], sku] for sku, item in oracle.items.items()}
    may = {sku: [item["name"], sku, item["description"], (oracle.first_listing.get(sku) or (None,))[0]]
           for sku, item in oracle.items.items()}
    expected = {row["sku"]: row for row in oracle.product_list()}
    for q in PRODUCT_QUERIES:
        _check_search(api.walk("/v1/products", {"q": q}), "sku", q, must, may, expected, f"products?q={q}")


# -- customers -------------------------------------------------------------------


def test_customers_q_filter(api: Api, oracle: Oracle) -> None:
    """?q= finds every customer whose name contains q, ignoring case (apostrophes and non-Latin letters too)."""
    must = {cid: [c["name"]] for cid, c in oracle.customers.items()}
    may = {cid: [c["name"], c["email"], c["acct_no"]] for cid, c in oracle.customers.items()}
    expected = {row["id"]: row for row in oracle.customer_list()}
    for q in CUSTOMER_QUERIES:
        _check_search(api.walk("/v1/customers", {"q": q}), "id", q, must, may, expected, f"customers?q={q}")


def test_customers_country_filter(api: Api, oracle: Oracle) -> None:
    """?country=XX lists exactly the customers of that country."""
    countries = sorted({c["country"] for c in oracle.customers.values() if c["country"]})
    for country in [*countries[:4], "ZZ"]:
        compare_list(oracle.customer_list(country=country), api.walk("/v1/customers", {"country": country}), "id",
                     f"customers?country={country}")


# -- orders ----------------------------------------------------------------------


def test_orders_customer_and_status_filters(api: Api, oracle: Oracle) -> None:
    """?customer_id= and ?status= list exactly the matching orders."""
    busiest = max(oracle.customer_orders, key=lambda c: (oracle.customer_orders[c][0], -c))
    quiet = min(oracle.customer_orders, key=lambda c: (oracle.customer_orders[c][0], c))
    idle = oracle.edges.customer_without_orders
    for cid in [c for c in (busiest, quiet, idle) if c is not None]:
        compare_list(oracle.order_list(customer_id=cid), api.walk("/v1/orders", {"customer_id": cid}),
                     "order_no", f"orders?customer_id={cid}")
    for status in ("draft", "confirmed", "shipped", "delivered", "cancelled"):
        compare_list(oracle.order_list(status=status), api.walk("/v1/orders", {"status": status}), "order_no",
                     f"orders?status={status}")
    compare_list(oracle.order_list(customer_id=busiest, status="delivered"),
                 api.walk("/v1/orders", {"customer_id": busiest, "status": "delivered"}), "order_no",
                 "orders?customer_id&status")


def test_orders_since_until_dates_and_times(api: Api, oracle: Oracle) -> None:
    """?since=/?until= take dates (midnight UTC) or ISO times with any offset; the window is [since, until)."""
    windows: list[tuple[dict[str, str], datetime | None, datetime | None]] = [
        ({"since": "2024-01-01", "until": "2024-07-01"}, _utc(2024, 1, 1), _utc(2024, 7, 1)),
        ({"since": "2025-06-15"}, _utc(2025, 6, 15), None),
        ({"until": "2023-03-01"}, None, _utc(2023, 3, 1)),
        ({"since": "2024-03-10T08:30:00Z", "until": "2024-05-20T17:45:10Z"},
         _utc(2024, 3, 10, 8, 30), _utc(2024, 5, 20, 17, 45, 10)),
        ({"since": "2024-03-10T10:30:00+02:00", "until": "2024-05-20T12:45:10-05:00"},
         _utc(2024, 3, 10, 8, 30), _utc(2024, 5, 20, 17, 45, 10)),
        ({"since": "2030-01-01"}, _utc(2030, 1, 1), None),
    ]
    for params, since, until in windows:
        compare_list(oracle.order_list(since=since, until=until), api.walk("/v1/orders", params), "order_no",
                     f"orders?{params}")


def test_orders_since_is_inclusive_and_until_exclusive(api: Api, oracle: Oracle) -> None:
    """An order placed exactly at `since` is listed; one placed exactly at `until` is not."""
    order_no = sorted(oracle.orders)[len(oracle.orders) // 2]
    at = oracle.orders[order_no]["ordered_at"].replace(tzinfo=UTC)
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    after = api.walk("/v1/orders", {"since": stamp, "until": (at + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert order_no in [r["order_no"] for r in after], f"since={stamp} left out {order_no}"
    compare_list(oracle.order_list(since=at, until=at + timedelta(days=3)), after, "order_no", "orders since=t")
    before = api.walk("/v1/orders", {"since": (at - timedelta(days=3)).strftime("%Y-%m-%d"), "until": stamp})
    assert order_no not in [r["order_no"] for r in before], f"until={stamp} included {order_no}"
    compare_list(oracle.order_list(since=datetime.combine((at - timedelta(days=3)).date(), datetime.min.time(), UTC),
                                   until=at), before, "order_no", "orders until=t")


# -- invoices --------------------------------------------------------------------


def test_invoices_status_and_overdue_filters(api: Api, oracle: Oracle) -> None:
    """?status= and ?overdue= list exactly the invoices SQL finds (overdue: open, balance > 0, due before today)."""
    for status in ("open", "paid", "void"):
        compare_list(oracle.invoice_list(status=status), api.walk("/v1/invoices", {"status": status}), "invno",
                     f"invoices?status={status}")
    for overdue in (True, False):
        compare_list(oracle.invoice_list(overdue=overdue), api.walk("/v1/invoices", {"overdue": str(overdue).lower()}),
                     "invno", f"invoices?overdue={overdue}")
    compare_list(oracle.invoice_list(status="open", overdue=False),
                 api.walk("/v1/invoices", {"status": "open", "overdue": "false"}), "invno",
                 "invoices?status=open&overdue=false")


def test_invoices_acct_no_and_customer_filters(api: Api, oracle: Oracle) -> None:
    """?acct_no= and ?customer_id= list the account's invoices, orphan and manual invoices included."""
    edges = oracle.edges
    accts = {oracle.invoices[i]["acct_no"] for i in (edges.orphan_invoice, edges.manual_invoice) if i}
    with_overdue = edges.customer_with_overdue
    if with_overdue is not None:
        accts.add(oracle.customers[with_overdue]["acct_no"])
    for acct in sorted(accts):
        compare_list(oracle.invoice_list(acct_no=acct), api.walk("/v1/invoices", {"acct_no": acct}), "invno",
                     f"invoices?acct_no={acct}")
    customers = [c for c in (with_overdue, edges.customer_without_acct, edges.customer_dangling_acct) if c]
    customers += [oracle.customer_by_acct[a] for a in sorted(accts) if a in oracle.customer_by_acct]
    for cid in dict.fromkeys(customers):
        acct = oracle.customers[cid]["acct_no"]
        expected = oracle.invoice_list(acct_no=acct) if acct else []
        compare_list(expected, api.walk("/v1/invoices", {"customer_id": cid}), "invno",
                     f"invoices?customer_id={cid}")
    if edges.orphan_invoice:
        row = next(r for r in api.walk("/v1/invoices", {"acct_no": oracle.invoices[edges.orphan_invoice]["acct_no"]})
                   if r["invno"] == edges.orphan_invoice)
        assert row["order_no"] == oracle.invoices[edges.orphan_invoice]["order_no"]
    if edges.manual_invoice:
        row = next(r for r in api.walk("/v1/invoices", {"acct_no": oracle.invoices[edges.manual_invoice]["acct_no"]})
                   if r["invno"] == edges.manual_invoice)
        assert row["order_no"] is None


# -- sold-items ------------------------------------------------------------------


def test_sold_items_windows_and_location(api: Api, oracle: Oracle) -> None:
    """sold-items sums counted lines in [since, until) (and ship_from = location), ranked by units then SKU."""
    windows: list[tuple[dict[str, str], dict[str, Any]]] = [
        ({"since": "2024-01-01", "until": "2025-01-01"}, {"since": _utc(2024, 1, 1), "until": _utc(2025, 1, 1)}),
        ({"since": "2025-02-01T06:00:00Z"}, {"since": _utc(2025, 2, 1, 6)}),
        ({"until": "2023-06-01T00:00:00+02:00"}, {"until": _utc(2023, 5, 31, 22)}),
        ({"since": "2031-01-01"}, {"since": _utc(2031, 1, 1)}),
    ]
    for loc in oracle.locations:
        windows.append(({"location": loc["code"]}, {"location": loc["code"]}))
    code = oracle.locations[0]["code"]
    windows.append(({"location": code, "since": "2024-01-01", "until": "2024-12-31T12:00:00Z"},
                    {"location": code, "since": _utc(2024, 1, 1), "until": _utc(2024, 12, 31, 12)}))
    for params, window in windows:
        compare_list(oracle.sold_items(**window), api.walk("/v1/sold-items", params, role="reader"), "sku",
                     f"sold-items?{params}")


def test_sold_items_unknown_sku_has_null_warehouse_fields(api: Api, oracle: Oracle) -> None:
    """A sold SKU the warehouse does not know is listed with null name, on_hand and available."""
    sku = oracle.edges.sales_sku_unknown_to_warehouse
    assert sku is not None, "the dataset has no sold SKU unknown to the warehouse"
    row = next((r for r in api.walk("/v1/sold-items", role="reader") if r["sku"] == sku), None)
    assert row is not None, f"{sku} missing from sold-items"
    assert (row["name"], row["on_hand"], row["available"]) == (None, None, None)
