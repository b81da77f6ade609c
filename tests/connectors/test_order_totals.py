"""Order totals: MariaDB sums the rounded lines in SQL; the total must be the contract's Decimal, digit for digit."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.sales import SalesConnector
from deploy.legacy.sales_tables import customers, order_lines, orders, products
from federation.queries import OrderFilter
from tests.connectors.conftest import make_sales, opened

D = Decimal
QTY_MAX, PRICE_MAX, DISCOUNT_MAX = 2_147_483_647, D("9999999999.99"), D("999.99")  # INT, DECIMAL(12,2), (5,2)

# (qty, unit_price, discount_pct) lines of one order each, and the total the contract gives
EDGES: list[tuple[list[tuple[int, Decimal, Decimal]], str]] = [
    ([(1, D("0.05"), D("50.00"))], "0.03"),              # 0.025: half-up, not to even
    ([(1, D("0.15"), D("50.00"))], "0.08"),              # 0.075
    ([(3, D("3.00"), D("33.33"))], "6.00"),              # 6.0003
    ([(1, D("0.01"), D("100.40"))], "0.00"),             # -0.00004 rounds to a negative zero; the sum is 0.00
    ([(1, D("0.05"), D("150.00"))], "-0.03"),            # -0.025: half away from zero
    ([(-1, D("0.05"), D("50.00"))], "-0.03"),
    ([(1, D("0.01"), D("0")), (-1, D("0.01"), D("0"))], "0.00"),
    ([(7, D("0.00"), D("12.50"))], "0.00"),
    ([(QTY_MAX, PRICE_MAX, -DISCOUNT_MAX)], "236221053686116778946.31"),
    ([(QTY_MAX, PRICE_MAX, -DISCOUNT_MAX)] * 40, "9448842147444671157852.40"),
    ([(-QTY_MAX, PRICE_MAX, DISCOUNT_MAX)], "193271380746159728619.25"),  # 27 digits before rounding
    ([], "0.00"),                                        # no lines
]
RANDOM_ORDERS = 700   # more than a page: the walk crosses a keyset boundary


def _random_lines(rnd: random.Random) -> list[tuple[int, Decimal, Decimal]]:
    lines = []
    for _ in range(rnd.randint(1, 6)):
        qty = rnd.choice([1, 2, 3, 7, 12, 999, rnd.randint(1, 10**6), -rnd.randint(1, 50)])
        price = D(rnd.randint(0, 10**rnd.randint(1, 12) - 1)).scaleb(-2)
        discount = rnd.choice([D("0"), D("0.00"), D("5.00"), D("12.50"), D("33.33"), D("66.67"), D("99.99"),
                               D("100.00"), D(rnd.randint(-99999, 99999)).scaleb(-2)])
        lines.append((qty, price, discount))
    return lines


def _all_orders() -> dict[str, list[tuple[int, Decimal, Decimal]]]:
    rnd = random.Random(20241124)
    found = {f"SO-EDGE-{i:03d}": lines for i, (lines, _) in enumerate(EDGES)}
    found.update({f"SO-RAND-{i:06d}": _random_lines(rnd) for i in range(RANDOM_ORDERS)})
    return found


def _expected_total(lines: list[tuple[int, Decimal, Decimal]]) -> Decimal:
    """The contract's total, worked out here in whole numbers: each line qty × price × (1 − discount/100)
    rounded half away from zero to cents, then the cents summed (so an order without lines is 0.00)."""
    cents = 0
    for qty, price, discount in lines:
        # price in cents and discount in hundredths of a percent are whole numbers: the product is
        # exact, in units of 1/10 000 of a cent
        exact = qty * int(price.scaleb(2)) * (10_000 - int(discount.scaleb(2)))
        rounded = (abs(exact) + 5_000) // 10_000
        cents += rounded if exact >= 0 else -rounded
    return D(cents).scaleb(-2)


@pytest.fixture(name="totals_sales", scope="module")
async def _totals_sales(sales_url: str) -> AsyncIterator[SalesConnector]:
    engine = create_async_engine(sales_url)
    start = datetime(2024, 1, 1)
    order_rows: list[dict[str, Any]] = []
    line_rows: list[dict[str, Any]] = []
    for i, (order_no, lines) in enumerate(_all_orders().items()):
        order_rows.append({"order_no": order_no, "customer_id": 1, "status": "confirmed",
                           "ordered_at": start + timedelta(minutes=i), "ship_from": None, "currency": "EUR"})
        line_rows += [{"order_no": order_no, "line_no": n, "product_id": 1, "qty": qty, "unit_price": price,
                       "discount_pct": discount} for n, (qty, price, discount) in enumerate(lines, 1)]
    async with engine.begin() as conn:
        await conn.execute(insert(customers), [{"id": 1, "name": "Totals", "created_at": start}])
        await conn.execute(insert(products), [{"id": 1, "title": "Thing", "list_price": D("1.00"), "currency": "EUR"}])
        await conn.execute(insert(orders), order_rows)
        await conn.execute(insert(order_lines), line_rows)
    await engine.dispose()
    async with opened(make_sales(sales_url)) as connector:
        yield connector


def test_expected_totals_agree_with_the_contract_edges() -> None:
    """The test's own arithmetic gives the contract's total for every edge case (so it can judge the rest)."""
    assert [str(_expected_total(lines)) for lines, _ in EDGES] == [expected for _, expected in EDGES]


async def test_listed_totals_are_the_contract_ones_digit_for_digit(totals_sales: SalesConnector) -> None:
    """Every order's total, summed by MariaDB, has the value, exponent and sign the contract gives."""
    wanted = _all_orders()
    statements: list[str] = []
    totals_sales.on_statement = lambda sql: statements.append(sql.lower())
    found: dict[str, Decimal] = {}
    after = None
    while page := await totals_sales.orders(OrderFilter(), after, 500):
        found.update((o.order_no, o.total) for o in page)
        after = page[-1].order_no
    assert found.keys() == wanted.keys()
    assert any("sum(round(" in s for s in statements), "the totals were not summed by the database"
    edges = {f"SO-EDGE-{i:03d}": total for i, (_, total) in enumerate(EDGES)}
    assert {no: str(found[no]) for no in edges} == edges
    expected = {no: str(_expected_total(lines)) for no, lines in wanted.items()}
    mismatched = {no: (str(found[no]), expected[no]) for no in wanted if str(found[no]) != expected[no]}
    assert mismatched == {}
    order = await totals_sales.order("SO-EDGE-003")
    assert order is not None
    assert str(order.total) == "0.00"
