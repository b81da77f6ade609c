"""Every field of every resource, for sampled ids, edge cases and whole lists, against SQL on the legacy DBs."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.acceptance.oracle import ACCOUNTING_FIELDS, Oracle
from tests.acceptance.support import Api, assert_no_diffs, assert_redacted, compare_list, diff, redacted_names

SAMPLE_SEED = 20240501
SAMPLE_SIZE = 25


def _sample(keys: Any, n: int = SAMPLE_SIZE) -> list[Any]:
    ordered = sorted(keys)
    return random.Random(SAMPLE_SEED).sample(ordered, min(n, len(ordered)))


def _with_edges(sample: list[Any], edges: list[Any]) -> list[Any]:
    return list(dict.fromkeys([*edges, *sample]))


# -- fixtures: which ids to look at -------------------------------------------


@pytest.fixture(name="sample_skus", scope="session")
def _sample_skus(oracle: Oracle) -> list[str]:
    """25 random SKUs plus every product edge case the dataset holds."""
    return _with_edges(_sample(oracle.items), oracle.edges.skus())


@pytest.fixture(name="sample_customers", scope="session")
def _sample_customers(oracle: Oracle) -> list[int]:
    """25 random customers plus every customer edge case the dataset holds."""
    return _with_edges(_sample(oracle.customers), oracle.edges.customers())


@pytest.fixture(name="sample_orders", scope="session")
def _sample_orders(oracle: Oracle) -> list[str]:
    """25 random orders plus every order edge case the dataset holds."""
    return _with_edges(_sample(oracle.orders), oracle.edges.orders())


# -- the dataset itself ----------------------------------------------------------


def test_dataset_has_the_edge_cases(oracle: Oracle) -> None:
    """The seeded data holds every awkward case the suite means to check (else the checks prove less)."""
    absent = [name for name, value in vars(oracle.edges).items() if value is None]
    assert not absent, f"the dataset has no example of: {absent}"


# -- details ----------------------------------------------------------------------


def _product(api: Api, sku: str, role: str = "finance") -> dict[str, Any]:
    body = api.ok(f"/v1/products/{sku}", role=role)
    data = body["data"]
    if isinstance(data.get("stock"), list):
        data["stock"] = sorted(data["stock"], key=lambda s: str(s.get("location")))
    return body


def test_product_details_match_sql(api: Api, oracle: Oracle, sample_skus: list[str]) -> None:
    """GET /v1/products/{sku} gives every field (stock per location, totals, prices, cost, sales) as SQL does."""
    problems: list[str] = []
    for sku in sample_skus:
        body = _product(api, sku)
        problems.extend(diff(oracle.product_detail(sku), body["data"], sku))
        assert not redacted_names(body), f"{sku}: finance sees everything, yet meta.redacted = {redacted_names(body)}"
    assert_no_diffs(problems, "product details")


def test_product_path_accepts_any_spelling(api: Api, oracle: Oracle, sample_skus: list[str]) -> None:
    """A product path in lower case or padded with spaces answers the product under its warehouse SKU."""
    sku = sample_skus[0]
    expected = oracle.product_detail(sku)
    for spelling in (sku.lower(), f"{sku}%20%20", f"%20{sku.lower()}%20"):
        body = _product(api, spelling)
        assert body["data"]["sku"] == sku
        assert_no_diffs(diff(expected, body["data"], spelling), f"product {spelling!r}")


def test_customer_details_match_sql(api: Api, oracle: Oracle, sample_customers: list[int]) -> None:
    """GET /v1/customers/{id} gives the customer, its account figures and its order summary as SQL does."""
    problems: list[str] = []
    for cid in sample_customers:
        body = api.ok(f"/v1/customers/{cid}")
        problems.extend(diff(oracle.customer_detail(cid), body["data"], f"customer {cid}"))
    assert_no_diffs(problems, "customer details")


def test_order_details_match_sql(api: Api, oracle: Oracle, sample_orders: list[str]) -> None:
    """GET /v1/orders/{no} gives lines, totals, shipped quantities, fulfilment, invoices and payment status."""
    problems: list[str] = []
    for order_no in sample_orders:
        data = api.ok(f"/v1/orders/{order_no}")["data"]
        if isinstance(data.get("lines"), list):
            data["lines"] = sorted(data["lines"], key=lambda line: line.get("line_no") or 0)
        if isinstance(data.get("invoices"), list):
            data["invoices"] = sorted(data["invoices"], key=lambda inv: str(inv.get("invno")))
        problems.extend(diff(oracle.order_detail(order_no), data, order_no))
    assert_no_diffs(problems, "order details")


def test_edge_case_orders_have_the_expected_derived_states(api: Api, oracle: Oracle) -> None:
    """Partial shipment (one SKU over two lines too), service line, void invoice, part payment, overdue: as SQL says."""
    edges = oracle.edges
    checks = {
        edges.partial_shipment_order: lambda d: d["fulfilment"] == "partial",
        edges.sku_on_two_lines_order: lambda d: d["fulfilment"] == "partial",
        edges.service_line_order: lambda d: any(line["sku"] is None and line["shipped_qty"] == 0
                                                for line in d["lines"]),
        edges.void_invoice_order: lambda d: any(inv["status"] == "void" and inv["balance"]["amount"] == "0.00"
                                                for inv in d["invoices"]),
        edges.partial_payment_order: lambda d: d["payment_status"] == "partial",
        edges.overdue_invoice_order: lambda d: any(inv["overdue"] is True for inv in d["invoices"]),
        edges.unbilled_order: lambda d: d["payment_status"] == "unbilled" and d["invoices"] == [],
        edges.no_ship_from_order: lambda d: d["ship_from"] is None,
    }
    for order_no, check in checks.items():
        if order_no is None:
            continue
        data = api.ok(f"/v1/orders/{order_no}")["data"]
        assert check(data), f"{order_no}: {data}"


def test_edge_case_customers(api: Api, oracle: Oracle) -> None:
    """A prospect and a customer whose acct_no Accounting lacks have account null; overdue shows up."""
    edges = oracle.edges
    for cid in (edges.customer_without_acct, edges.customer_dangling_acct):
        if cid is not None:
            data = api.ok(f"/v1/customers/{cid}")["data"]
            assert data["account"] is None, f"customer {cid}: {data}"
    if edges.customer_with_overdue is not None:
        account = api.ok(f"/v1/customers/{edges.customer_with_overdue}")["data"]["account"]
        assert account["overdue_balance"]["amount"] != "0.00"
    if edges.customer_without_orders is not None:
        orders = api.ok(f"/v1/customers/{edges.customer_without_orders}")["data"]["orders"]
        assert orders == {"count": 0, "last_ordered_at": None}


def test_reader_sees_no_accounting_fields_in_details(api: Api, oracle: Oracle, sample_skus: list[str],
                                                     sample_customers: list[int], sample_orders: list[str]) -> None:
    """For a reader, std_cost, account, invoices and payment_status are null and listed in meta.redacted."""
    problems: list[str] = []
    for sku in sample_skus[:8]:
        body = _product(api, sku, role="reader")
        problems.extend(diff(oracle.product_detail(sku, finance=False), body["data"], sku))
        assert_redacted(body, ACCOUNTING_FIELDS["product"])
    for cid in sample_customers[:8]:
        body = api.ok(f"/v1/customers/{cid}", role="reader")
        problems.extend(diff(oracle.customer_detail(cid, finance=False), body["data"], f"customer {cid}"))
        assert_redacted(body, ACCOUNTING_FIELDS["customer"])
    for order_no in sample_orders[:8]:
        body = api.ok(f"/v1/orders/{order_no}", role="reader")
        data = body["data"]
        data["lines"] = sorted(data["lines"], key=lambda line: line.get("line_no") or 0)
        problems.extend(diff(oracle.order_detail(order_no, finance=False), data, order_no))
        assert_redacted(body, ACCOUNTING_FIELDS["order"])
    assert_no_diffs(problems, "reader details")


# -- whole lists -------------------------------------------------------------------


WHOLE = pytest.mark.whole_list


@pytest.mark.parametrize(("path", "key", "role"), [
    # every warehouse location once, by code, with every field as stored
    pytest.param("/v1/locations", "code", "reader", id="locations"),
    # every item (active or not) once, by SKU, with stock summed over locations, list price and std cost
    pytest.param("/v1/products", "sku", "finance", marks=WHOLE, id="products"),
    # every customer once, by id, with account status and open balance from Accounting
    pytest.param("/v1/customers", "id", "finance", marks=WHOLE, id="customers"),
    # every order (any status) once, by order number, with its total as the sum of rounded line totals
    pytest.param("/v1/orders", "order_no", "finance", marks=WHOLE, id="orders"),
    # every invoice once, by number, with paid, balance, overdue, customer and order links as SQL derives them
    pytest.param("/v1/invoices", "invno", "finance", marks=WHOLE, id="invoices"),
    # unfiltered sold-items: every counted line summed per SKU, ranked by units sold then SKU
    pytest.param("/v1/sold-items", "sku", "reader", marks=WHOLE, id="sold-items"),
])
def test_whole_list(api: Api, oracle: Oracle, path: str, key: str, role: str) -> None:
    """A list resource walked whole holds every row once, in its key order, with every field as SQL derives it."""
    compare_list(oracle.whole_list(path, finance=role != "reader"), api.walk(path, role=role), key,
                 path.removeprefix("/v1/"))


@pytest.mark.whole_list
@pytest.mark.parametrize("resource", ["products", "customers", "orders"])
def test_every_detail_matches_sql(api: Api, oracle: Oracle, resource: str) -> None:
    """Not only a sample: the detail of every product, customer and order equals what SQL derives."""
    problems: list[str] = []
    if resource == "products":
        for sku in sorted(oracle.items):
            problems.extend(diff(oracle.product_detail(sku), _product(api, sku)["data"], sku))
    elif resource == "customers":
        for cid in sorted(oracle.customers):
            data = api.ok(f"/v1/customers/{cid}")["data"]
            problems.extend(diff(oracle.customer_detail(cid), data, f"customer {cid}"))
    else:
        for order_no in sorted(oracle.orders):
            data = api.ok(f"/v1/orders/{order_no}")["data"]
            data["lines"] = sorted(data["lines"], key=lambda line: line.get("line_no") or 0)
            if isinstance(data.get("invoices"), list):
                data["invoices"] = sorted(data["invoices"], key=lambda inv: str(inv.get("invno")))
            problems.extend(diff(oracle.order_detail(order_no), data, order_no))
    assert_no_diffs(problems, f"every {resource} detail")


@pytest.mark.whole_list
def test_reader_whole_lists_are_redacted(api: Api, oracle: Oracle) -> None:
    """A reader's product and customer lists carry the same rows with the Accounting fields null and listed."""
    compare_list(oracle.product_list(finance=False), api.walk("/v1/products", role="reader"), "sku",
                 "products (reader)")
    compare_list(oracle.customer_list(finance=False), api.walk("/v1/customers", role="reader"), "id",
                 "customers (reader)")
    for path, fields in (("/v1/products", ACCOUNTING_FIELDS["products"]),
                         ("/v1/customers", ACCOUNTING_FIELDS["customers"])):
        assert_redacted(api.ok(path, role="reader", params={"limit": 5}), fields)
