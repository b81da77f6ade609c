"""Each fake satisfies its port, checked statically: mypy fails this module when a fake's method is missing or
its signature drifts from the Protocol's (``tests/fast/test_conformance.py`` runs mypy on it)."""

from __future__ import annotations

from federation.capture import Invalidator
from federation.gateway import ReadThrough
from federation.ports import Accounting, Sales, Warehouse
from tests.fakes.accounting import FakeAccounting
from tests.fakes.cache import FakeCache
from tests.fakes.sales import FakeSales
from tests.fakes.warehouse import FakeWarehouse


def ports() -> tuple[Warehouse, Sales, Accounting, ReadThrough, Invalidator]:
    warehouse: Warehouse = FakeWarehouse()
    sales: Sales = FakeSales()
    accounting: Accounting = FakeAccounting()
    cache: ReadThrough = FakeCache()
    invalidator: Invalidator = FakeCache()
    return warehouse, sales, accounting, cache, invalidator
