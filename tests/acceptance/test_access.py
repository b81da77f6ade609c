"""Who may call what: keys and roles on every route, and what a reader is not shown."""

from __future__ import annotations

import pytest

from tests.acceptance.oracle import ACCOUNTING_FIELDS, Oracle
from tests.acceptance.support import Api, assert_no_diffs, assert_redacted, check_problem, diff, redacted_names

ROLES = ("reader", "finance", "admin")
LIST_KEYS = {"/v1/locations": "code", "/v1/products": "sku", "/v1/customers": "id", "/v1/orders": "order_no",
             "/v1/sold-items": "sku"}


@pytest.fixture(name="routes", scope="session")
def _routes(oracle: Oracle) -> dict[str, str]:
    """Every GET route of /v1, with ids that exist in the dataset."""
    sku = min(oracle.items)
    customer = min(oracle.customers)
    order_no = min(oracle.orders)
    return {"locations": "/v1/locations", "products": "/v1/products", "product": f"/v1/products/{sku}",
            "customers": "/v1/customers", "customer": f"/v1/customers/{customer}", "orders": "/v1/orders",
            "order": f"/v1/orders/{order_no}", "invoices": "/v1/invoices", "sold-items": "/v1/sold-items",
            "sources": "/v1/sources"}


def test_no_key_is_401_everywhere(api: Api, routes: dict[str, str]) -> None:
    """Every /v1 route without a key answers 401 problem+json, and names the Bearer scheme."""
    for path in [*routes.values(), "/v1/no-such-route"]:
        response = api.get(path, role=None)
        if path.endswith("no-such-route") and response.status_code == 404:
            continue  # an unknown route may be 404 before authentication
        check_problem(response, 401)
    check_problem(api.request("POST", "/v1/cache/invalidate", role=None, json_body={"resource": "products"}), 401)


@pytest.mark.parametrize("authorization", ["Bearer not-a-key", "Bearer", "Basic YWNjLXJlYWRlcjo=", "acc-reader",
                                           "Bearer acc-reader-but-longer", "Bearer ACC-READER"])
def test_unknown_or_malformed_key_is_401(api: Api, routes: dict[str, str], authorization: str) -> None:
    """An unknown key, a key in the wrong scheme or a near-miss spelling is 401 on every route."""
    for path in routes.values():
        check_problem(api.get(path, role=None, headers={"Authorization": authorization}), 401)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(api: Api, routes: dict[str, str], role: str) -> None:
    """reader, finance and admin get 200 on every GET route, except a reader on /v1/invoices gets 403."""
    for name, path in routes.items():
        response = api.get(path, role=role)
        if role == "reader" and name == "invoices":
            check_problem(response, 403)
            continue
        assert response.status_code == 200, f"{role} GET {path}: {response.status_code} {response.text[:300]}"


def test_reader_is_forbidden_invoices_with_any_filter(api: Api, oracle: Oracle) -> None:
    """A reader gets 403 from /v1/invoices whatever the query, never a filtered list."""
    acct = next(iter(sorted(oracle.accounts)))
    for params in ({"status": "open"}, {"acct_no": acct}, {"overdue": "true"}, {"limit": 1}):
        check_problem(api.get("/v1/invoices", role="reader", params=params), 403)


@pytest.mark.parametrize("role", ["reader", "finance"])
def test_cache_control_is_admin_only(api: Api, role: str) -> None:
    """POST /v1/cache/invalidate is refused (403) to reader and finance keys."""
    check_problem(api.request("POST", "/v1/cache/invalidate", role=role, json_body={"resource": "products"}), 403)


def test_admin_may_call_cache_control(api: Api) -> None:
    """An admin key passes the role check of POST /v1/cache/invalidate."""
    response = api.request("POST", "/v1/cache/invalidate", role="admin", json_body={"resource": "products"})
    assert response.status_code not in (401, 403), response.text


def test_public_operations_need_no_key(api: Api) -> None:
    """Health probes, metrics, docs and the OpenAPI document answer without a key."""
    for path in ("/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs"):
        response = api.get(path, role=None)
        assert response.status_code == 200, f"{path}: {response.status_code}"
    assert "paths" in api.get("/openapi.json", role=None).json()


def test_dashboard_needs_a_key(api: Api) -> None:
    """The dashboard refuses anonymous callers and accepts a key in ?key= for the browser."""
    assert api.get("/dashboard", role=None).status_code == 401
    assert api.get("/dashboard", role=None, params={"key": "not-a-key"}).status_code == 401
    assert api.get("/dashboard", role=None, params={"key": "acc-reader"}).status_code == 200


def test_reader_lists_are_redacted(api: Api, oracle: Oracle) -> None:
    """A reader's products and customers pages carry null Accounting fields and list them in meta.redacted."""
    for path, resource, key, expected in (
            ("/v1/products", "products", "sku", oracle.product_list(finance=False)),
            ("/v1/customers", "customers", "id", oracle.customer_list(finance=False))):
        body = api.ok(path, role="reader", params={"limit": 40})
        assert_redacted(body, ACCOUNTING_FIELDS[resource])
        by_key = {row[key]: row for row in expected}
        problems = [p for row in body["data"] for p in diff(by_key[row[key]], row, f"{resource}[{row[key]}]")]
        assert_no_diffs(problems, f"{path} as reader")


def test_finance_sees_accounting_fields_and_nothing_redacted(api: Api, oracle: Oracle) -> None:
    """For finance the same pages hold std_cost and balances, and meta.redacted is absent or empty."""
    body = api.ok("/v1/products", params={"limit": 40})
    assert not redacted_names(body)
    costed = [row for row in body["data"] if row["sku"] in oracle.std_cost]
    assert costed, "no costed item on the first page"
    assert all(row["std_cost"] is not None for row in costed)
    body = api.ok("/v1/customers", params={"limit": 40})
    assert not redacted_names(body)
    for row in body["data"]:
        has_account = oracle.customers[row["id"]]["acct_no"] in oracle.accounts
        assert (row["open_balance"] is not None) == has_account, row
        assert (row["account_status"] is not None) == has_account, row


def test_lists_of_every_role_answer_the_same_rows(api: Api) -> None:
    """Roles change which fields are shown, never which rows a list holds."""
    for path, key in LIST_KEYS.items():
        keys = {}
        for role in ROLES:
            data = api.ok(path, role=role, params={"limit": 30})["data"]
            keys[role] = [row[key] for row in data]
        assert keys["reader"] == keys["finance"] == keys["admin"], path
