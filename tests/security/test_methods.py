"""Every route × every method × every role, over the OpenAPI document and the route table, so no route escapes.

HEAD answers exactly like GET without a body (same auth, status and headers), OPTIONS never fails, any other
method is a 405 with ``Allow``, and nothing answered without a key carries data.
"""

from __future__ import annotations

import os
import re
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.settings import load_settings
from tests.security.support import check_problem
from tests.security.test_access import PUBLIC, PUBLIC_PREFIXES, RANK, RULES
from tests.servers import KEYS, Server, Upstreams

CALLERS: tuple[str | None, ...] = (None, "reader", "finance", "admin")
UNSUPPORTED = ("DELETE", "PUT", "PATCH")
# Headers that differ between any two answers, whatever the method.
VOLATILE = {"date", "x-request-id", "age", "content-length", "content-encoding", "transfer-encoding", "connection",
            "keep-alive"}
# Concrete values for path parameters (the seeded data's ids are filled in by the ``paths`` fixture).
SAMPLE_VALUES = {"customer_id": "1", "name": "dashboard.js", "__file_uri__": "swagger-ui.css"}


def _template(path: str) -> str:
    """``/v1/orders/<order_no:str>`` and ``/v1/orders/{order_no}`` as one spelling."""
    return re.sub(r"<([^:>]+)(:[^>]*)?>", r"{\1}", "/" + path.lstrip("/"))


@pytest.fixture(name="paths", scope="module")
def _paths(upstreams: Upstreams, server: Server) -> dict[str, dict[str, Any]]:
    """Each path template the app serves, with its methods, its rule and a concrete path with real ids."""
    app = create_app(load_settings(upstreams.env()), name=f"security_methods_{os.getpid()}")
    values = dict(SAMPLE_VALUES)
    for path, key in (("/v1/products", "sku"), ("/v1/orders", "order_no")):
        values[key] = server.get(path, role="admin", params={"limit": 1}).json()["data"][0][key]
    table: dict[str, dict[str, Any]] = {}
    for route in app.router.routes:
        template = _template(route.path)
        entry = table.setdefault(template, {"methods": set(), "concrete": template.format(**values)})
        entry["methods"] |= set(route.methods)
    document = server.get("/openapi.json").json()
    for template, operations in document["paths"].items():
        assert template in table, f"{template} is in the OpenAPI document but the app does not serve it"
        documented = {m.upper() for m in operations if m.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}}
        assert documented <= table[template]["methods"], f"{template}: documented {documented}"
    return table


def _rule(method: str, template: str) -> str | None:
    """The least role of a route, None when it is public; every route must be one or the other."""
    name = f"{method} {re.sub(r'{([^}]+)}', lambda m: f'<{m.group(1)}:str>', template)}"
    if name in RULES:
        return RULES[name]
    for public in PUBLIC:
        if re.sub(r"<([^:>]+)(:[^>]*)?>", r"{\1}", public) == f"{method} {template}":
            return None
    if name.startswith(PUBLIC_PREFIXES) or f"{method} {template}".startswith(PUBLIC_PREFIXES):
        return None
    raise AssertionError(f"{method} {template} has no access rule in tests/security/test_access.py")


def _call(server: Server, method: str, path: str, caller: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {KEYS[caller]}"} if caller else {}
    params = {"key": KEYS[caller]} if caller and path == "/dashboard" else None
    return httpx.request(method, server.base + path, headers=headers, params=params, timeout=30.0)


def _expected_get(rule: str | None, caller: str | None) -> int:
    if rule is None:
        return 200
    if caller is None:
        return 401
    return 200 if RANK[caller] >= RANK[rule] else 403


def _carries_data(response: httpx.Response) -> bool:
    """Anything but an empty body or a problem document."""
    if not response.content:
        return False
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        return "data" in response.json()
    return True


def _stable(headers: httpx.Headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() not in VOLATILE}


def test_every_get_route_answers_head_like_get(server: Server, paths: dict[str, dict[str, Any]]) -> None:
    """HEAD gives GET's status and headers with an empty body, for every GET route and every caller."""
    problems = []
    for template, entry in sorted(paths.items()):
        if "GET" not in entry["methods"]:
            continue
        rule = _rule("GET", template)
        for caller in CALLERS:
            get = _call(server, "GET", entry["concrete"], caller)
            head = _call(server, "HEAD", entry["concrete"], caller)
            label = f"HEAD {template} as {caller or 'nobody'}"
            if get.status_code != _expected_get(rule, caller) and template != "/health/ready":
                problems.append(f"GET {template} as {caller or 'nobody'}: {get.status_code}")
            if head.status_code != get.status_code:
                problems.append(f"{label}: {head.status_code}, GET gave {get.status_code}")
            if head.content:
                problems.append(f"{label}: a body of {len(head.content)} bytes")
            if _stable(head.headers).keys() != _stable(get.headers).keys():
                problems.append(f"{label}: headers {sorted(_stable(head.headers))} vs {sorted(_stable(get.headers))}")
            for name in ("content-type", "cache-control", "www-authenticate", "vary"):
                if head.headers.get(name) != get.headers.get(name):
                    problems.append(f"{label}: {name} {head.headers.get(name)!r} vs {get.headers.get(name)!r}")
    assert not problems, "\n".join(problems)


def test_options_never_fails_and_lists_the_methods(server: Server, paths: dict[str, dict[str, Any]]) -> None:
    """OPTIONS on every route and for every caller is a 2xx whose Allow lists the route's methods."""
    for template, entry in sorted(paths.items()):
        for caller in CALLERS:
            response = _call(server, "OPTIONS", entry["concrete"], caller)
            assert 200 <= response.status_code < 300, f"OPTIONS {template}: {response.status_code}"
            allowed = {m.strip() for m in response.headers.get("allow", "").split(",")}
            assert entry["methods"] - {"OPTIONS"} <= allowed, f"OPTIONS {template}: Allow {allowed}"
            assert not _carries_data(response), f"OPTIONS {template} carries a body"


def test_unsupported_methods_are_405_with_allow(server: Server, paths: dict[str, dict[str, Any]]) -> None:
    """Every method a route does not serve is a 405 problem naming the ones it does, whoever asks."""
    for template, entry in sorted(paths.items()):
        for method in UNSUPPORTED + (("GET", "HEAD") if "GET" not in entry["methods"] else ()):
            if method in entry["methods"]:
                continue
            for caller in CALLERS:
                response = _call(server, method, entry["concrete"], caller)
                label = f"{method} {template} as {caller or 'nobody'}"
                if method == "HEAD":
                    assert response.status_code == 405, label
                    assert not response.content, label
                else:
                    check_problem(response, 405, what=label)
                allowed = {m.strip() for m in response.headers.get("allow", "").split(",") if m.strip()}
                assert allowed, f"{label}: no Allow header"
                served = entry["methods"] | {"OPTIONS"} | ({"HEAD"} if "GET" in entry["methods"] else set())
                assert allowed <= served, f"{label}: Allow {allowed}"
                assert method not in allowed, f"{label}: Allow {allowed}"


def test_nothing_answered_without_a_key_carries_data(server: Server, paths: dict[str, dict[str, Any]]) -> None:
    """Without a key, every protected route, by any method, answers without a data body or its length."""
    for template, entry in sorted(paths.items()):
        methods = ("GET", "HEAD", "OPTIONS", *UNSUPPORTED)
        protected = any(_rule(m, template) is not None for m in entry["methods"] - {"HEAD", "OPTIONS"})
        if not protected:
            continue
        sizes = set()
        for method in methods:
            response = _call(server, method, entry["concrete"], None)
            assert response.status_code in (204, 401, 405), f"{method} {template}: {response.status_code}"
            assert not _carries_data(response), f"{method} {template} answered data without a key"
            if method == "HEAD":
                sizes.add(response.headers.get("content-length"))
        reader = _call(server, "GET", entry["concrete"], "admin")
        if reader.status_code == 200 and len(reader.content) > 400:
            assert str(len(reader.content)) not in sizes, f"HEAD {template} told an anonymous caller the length"
