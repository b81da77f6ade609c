"""A bug in our own code inside a source call is a 500 naming its request id, not a source failure:
it opens no breaker, is no error of the source's, is not covered by a stale answer, and is counted;
real source faults still give partial answers and 503s."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.resilience.conftest import ACCOUNTING_TTL, FAIL_MAX, Faults
from tests.security.support import check_problem
from tests.servers import Server, flush_redis_db, wait_for

# tests/resilience/buggy_serve.py plants the bug: Accounting's invoices of an order are read, then
# a field the result never had is read (an AttributeError, as a slip in our code would raise).
BUGGY = "tests.resilience.buggy_serve"
BUG_OP = "accounting.invoices_for_orders"
ORDER_ROUTE = "/v1/orders/{order_no}"
INTERNAL_ERRORS = "bizfed_internal_errors_total"
REDIS_DB = 14
# The servers run from outside the checkout, where only the installed packages are importable, not tests/.
CHECKOUT = str(Path(__file__).resolve().parents[2])


@pytest.fixture(autouse=True)
def _healed(faults: Faults) -> Iterator[None]:
    """Every test starts and ends with all proxies passing traffic."""
    faults.heal()
    yield
    faults.heal()


@pytest.fixture(name="buggy")
def _buggy(faults: Faults, redis_url: str, launch: Callable[..., Server]) -> Callable[..., Server]:
    """Starts a server whose ``BUG_OP`` fails with an AttributeError after ``after`` good calls."""

    def start(after: int = 0, **extra: str) -> Server:
        flush_redis_db(redis_url, REDIS_DB)
        env = {**faults.env(REDIS_DB), "BUGGY_OP": BUG_OP, "BUGGY_AFTER": str(after), "PYTHONPATH": CHECKOUT,
               **extra}
        return launch(env, name="buggy", module=BUGGY)

    return start


def _an_order(server: Server, limit: int = 1) -> str:
    response = server.get(f"/v1/orders?limit={limit}", role="reader")
    assert response.status_code == 200, response.text
    return str(response.json()["data"][0]["order_no"])


def test_a_bug_in_a_source_call_is_a_500_that_opens_no_breaker(buggy: Callable[..., Server]):
    """More than fail_max orders whose Accounting call hits the bug are each a 500 problem with the request id
    (traceback only in the log), counted as internal errors; the breaker stays closed, Accounting shows no
    error, and Accounting's other calls and the order without them still answer."""
    server = buggy()
    order_no = _an_order(server)
    counted = server.value(INTERNAL_ERRORS, route=ORDER_ROUTE)
    for n in range(FAIL_MAX + 2):
        response = server.get(f"/v1/orders/{order_no}", role="finance", headers={"X-Request-ID": f"bug-{n}"})
        body = check_problem(response, 500)
        assert body["type"].endswith("/internal")
        assert body["request_id"] == response.headers["x-request-id"] == f"bug-{n}"
        assert f"bug-{n}" in body["detail"]
        for secret in ("AttributeError", "amount_due", "invoices_for_orders", "accounting"):
            assert secret not in response.text
    log = server.log_text()
    assert "Traceback" in log
    assert "AttributeError" in log
    assert "amount_due" in log
    assert server.value(INTERNAL_ERRORS, route=ORDER_ROUTE) == counted + FAIL_MAX + 2

    accounting = server.get("/v1/sources", role="finance").json()["data"]["accounting"]
    assert accounting["breaker"] == "closed"
    assert accounting["last_error"] is None
    assert accounting["error_rate"] == 0

    invoices = server.get("/v1/invoices?limit=5", role="finance")
    assert invoices.status_code == 200, invoices.text
    assert invoices.json()["meta"]["sources"]["accounting"]["status"] == "ok"
    assert invoices.json()["data"]
    as_reader = server.get(f"/v1/orders/{order_no}", role="reader")
    assert as_reader.status_code == 200, as_reader.text
    assert as_reader.json()["meta"]["partial"] is False


def test_a_bug_is_not_answered_with_a_stale_entry(buggy: Callable[..., Server]):
    """An order whose Accounting entry is past its freshness but inside stale-if-error is a 500 when the
    refresh hits the bug: the stale invoices stand in for a source's failure, never for our own."""
    server = buggy(after=1, BIZFED_LOCAL_CACHE_TTL="0")
    order_no = _an_order(server)
    first = server.get(f"/v1/orders/{order_no}", role="finance")
    assert first.status_code == 200, first.text
    assert first.json()["meta"]["sources"]["accounting"]["status"] == "ok"
    # Hits until the entry is past Accounting's freshness (inside its hour of stale-if-error); then the refresh
    # hits the bug, and a stale answer in its place would be a 200.
    answers = []

    def refreshed() -> bool:
        answers.append(server.get(f"/v1/orders/{order_no}", role="finance"))
        return answers[-1].status_code != 200 or answers[-1].json()["meta"]["sources"]["accounting"]["cache"] != "hit"

    wait_for(refreshed, 10 * ACCOUNTING_TTL, "an answer that is no longer a fresh hit", interval=0.05)
    check_problem(answers[-1], 500)
    accounting = server.get("/v1/sources", role="finance").json()["data"]["accounting"]
    assert accounting["last_error"] is None


def test_real_source_faults_still_degrade_as_before(buggy: Callable[..., Server], faults: Faults):
    """Beside the bug, a reset Accounting still makes a customer a partial 200 and a reset Sales still
    makes the order list a 503 problem with Retry-After."""
    server = buggy()
    customers = server.get("/v1/customers?limit=50", role="reader").json()["data"]
    customer_id = next(c["id"] for c in customers if c["acct_no"])
    faults.accounting.reset()
    response = server.get(f"/v1/customers/{customer_id}", role="finance")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["meta"]["partial"] is True
    assert body["meta"]["sources"]["accounting"]["status"] == "unavailable"
    assert body["data"]["account"] is None

    faults.sales.reset()
    refused = server.get("/v1/orders?limit=7", role="reader")
    problem = check_problem(refused, 503)
    assert problem["source"] == "sales"
    assert int(refused.headers["retry-after"]) >= 1
