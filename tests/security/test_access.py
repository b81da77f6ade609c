"""Who may call what, table-driven over the app's own route table, so a new route without a rule fails here."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from sanic_routing.route import Route

from api.app import create_app
from api.settings import load_settings
from tests.security.support import check_problem
from tests.servers import KEYS, Server, Upstreams

# The least role each protected route needs; a route missing here, or declaring another role, fails the test.
RULES = {
    "GET /v1/locations": "reader", "GET /v1/products": "reader", "GET /v1/products/<sku:str>": "reader",
    "GET /v1/customers": "reader", "GET /v1/customers/<customer_id:str>": "reader", "GET /v1/orders": "reader",
    "GET /v1/orders/<order_no:str>": "reader", "GET /v1/invoices": "finance", "GET /v1/sold-items": "reader",
    "GET /v1/sources": "reader", "GET /v1/changes": "reader", "POST /v1/cache/invalidate": "admin",
    "GET /dashboard": "reader", "GET /dashboard/state": "reader", "GET /dashboard/history": "reader",
}
# Routes anyone may call: probes, metrics, the API description and static assets without data.
PUBLIC = {"GET /health/live", "GET /health/ready", "GET /metrics", "GET /openapi.json",
          "GET /dashboard/assets/<name:str>"}
PUBLIC_PREFIXES = ("GET /docs",)
# A concrete request for each protected route (ids that exist in the seeded data).
SAMPLES = {
    "GET /v1/products/<sku:str>": "/v1/products/{sku}", "GET /v1/customers/<customer_id:str>": "/v1/customers/1",
    "GET /v1/orders/<order_no:str>": "/v1/orders/{order_no}",
}
ROLES = ("reader", "finance", "admin")
RANK = {role: n for n, role in enumerate(ROLES)}
BAD_CREDENTIALS = ["Bearer not-a-key", "Bearer", "Bearer " + KEYS["reader"].upper(), KEYS["reader"],
                   "Basic " + KEYS["reader"], f"Bearer {KEYS['reader']}x", "Bearer " + KEYS["reader"][:-1]]


def _name(route: Route, method: str) -> str:
    return f"{method} /{route.path.lstrip('/')}"


@pytest.fixture(name="route_table", scope="module")
def _route_table(upstreams: Upstreams) -> dict[str, Route]:
    """Every (method, path) the app serves, from an app built in-process and never started."""
    app = create_app(load_settings(upstreams.env()), name=f"security_routes_{os.getpid()}")
    table = {}
    for route in app.router.routes:
        for method in route.methods - {"HEAD", "OPTIONS"}:
            table[_name(route, method)] = route
    return table


@pytest.fixture(name="protected", scope="module")
def _protected(route_table: dict[str, Route], server: Server) -> dict[str, tuple[str, str]]:
    """Each protected route as (method, concrete path), with ids taken from the seeded data."""
    rows: dict[str, Any] = {}
    for path, key in (("/v1/products", "sku"), ("/v1/orders", "order_no")):
        response = server.get(path, role="admin", params={"limit": 1})
        rows[key] = response.json()["data"][0][key]
    requests = {}
    for name in route_table:
        if name in RULES:
            method, _, path = name.partition(" ")
            requests[name] = (method, SAMPLES.get(name, path).format(**rows))
    return requests


def _call(server: Server, method: str, path: str, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    body = {"source": "warehouse"} if method == "POST" else None
    return httpx.request(method, server.base + path, headers=headers, json=body, timeout=30.0)


def test_every_route_has_a_rule(route_table: dict[str, Route]) -> None:
    """Each route declares the role of its rule (route.ctx.role) or is on the explicit public list."""
    problems = []
    for name, route in sorted(route_table.items()):
        declared = getattr(route.ctx, "role", None)
        public = name in PUBLIC or name.startswith(PUBLIC_PREFIXES)
        if name in RULES:
            if declared != RULES[name]:
                problems.append(f"{name}: declares role {declared!r}, the rule says {RULES[name]!r}")
        elif public:
            if declared is not None:
                problems.append(f"{name}: public by the rules but declares role {declared!r}")
        else:
            problems.append(f"{name}: no access rule (add it to RULES or PUBLIC in {__name__})")
        if name.split(" ", 1)[1].startswith("/v1") and declared is None:
            problems.append(f"{name}: a /v1 route without a role")
    assert not problems, "\n".join(problems)
    assert set(RULES) <= set(route_table), f"rules for routes that do not exist: {set(RULES) - set(route_table)}"


def test_no_key_or_a_bad_key_is_401_on_every_protected_route(server: Server,
                                                             protected: dict[str, tuple[str, str]]) -> None:
    """Without a key, or with an unknown, mangled or wrongly presented one, every protected route answers 401."""
    for name, (method, path) in protected.items():
        body = check_problem(_call(server, method, path, None), 401, what=f"{name} without a key")
        assert "Bearer" in _call(server, method, path, None).headers.get("www-authenticate", ""), name
        assert body["type"].endswith("unauthorized")
        for credentials in BAD_CREDENTIALS:
            check_problem(_call(server, method, path, credentials), 401, what=f"{name} with {credentials!r}")


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_exactly_what_its_rule_allows(server: Server, protected: dict[str, tuple[str, str]],
                                                        role: str) -> None:
    """A role at or above a route's rule gets a 2xx; a lower one gets a 403 problem (reader: invoices, invalidate)."""
    for name, (method, path) in protected.items():
        response = _call(server, method, path, f"Bearer {KEYS[role]}")
        if RANK[role] >= RANK[RULES[name]]:
            assert 200 <= response.status_code < 300, f"{role} {name}: {response.status_code} {response.text[:200]}"
        else:
            check_problem(response, 403, what=f"{role} {name}")


def test_public_routes_need_no_key(server: Server, route_table: dict[str, Route]) -> None:
    """Every public route answers without a key (assets by a real file name, docs by their index)."""
    concrete = {"GET /dashboard/assets/<name:str>": "/dashboard/assets/dashboard.js",
                "GET /docs/assets/<__file_uri__:path>": "/docs/assets/swagger-ui.css"}
    for name in route_table:
        if name in PUBLIC or name.startswith(PUBLIC_PREFIXES):
            path = concrete.get(name, name.partition(" ")[2])
            if "<" in path:
                continue
            response = httpx.get(server.base + path, timeout=30.0)
            assert response.status_code in (200, 302), f"{name}: {response.status_code}"


def test_reader_is_refused_invoices_with_any_filter(server: Server) -> None:
    """A reader's 403 on /v1/invoices does not depend on the query, so filters cannot probe Accounting."""
    for params in ({}, {"status": "open"}, {"acct_no": "C0000001"}, {"overdue": "true"}, {"limit": 1},
                   {"cursor": "x"}, {"bogus": "1"}):
        check_problem(server.get("/v1/invoices", role="reader", params=params), 403)

