"""Connector fixtures: each connector against this module's fresh legacy databases."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol, TypeVar

import pytest

from connectors.accounting import AccountingConnector
from connectors.sales import SalesConnector
from connectors.warehouse import WarehouseConnector
from deploy.legacy.schema import LegacyTargets
from deploy.local.addresses import dsn_port, dsn_with_port, odbc_port, odbc_with_port, url_port, url_with_port
from deploy.local.faultproxy import FaultProxy

QUERY_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0


class _Connector(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...


C = TypeVar("C", bound=_Connector)


def odbc_with(conn_str: str, **values: str) -> str:
    """The ODBC connection string with some keys replaced (or added)."""
    keep = [p for p in conn_str.split(";") if p and p.partition("=")[0].strip().upper() not in values]
    return ";".join([*keep, *(f"{k}={v}" for k, v in values.items())])


def make_warehouse(dsn: str, **kw: Any) -> WarehouseConnector:
    kw = {"query_timeout": QUERY_TIMEOUT, "connect_timeout": CONNECT_TIMEOUT, "max_waiting": 20} | kw
    return WarehouseConnector(dsn, **kw)


def make_sales(url: str, **kw: Any) -> SalesConnector:
    kw = {"pool_size": 5, "query_timeout": QUERY_TIMEOUT, "connect_timeout": CONNECT_TIMEOUT} | kw
    return SalesConnector(url, **kw)


def make_accounting(odbc: str, **kw: Any) -> AccountingConnector:
    kw = {"max_workers": 4, "login_timeout": CONNECT_TIMEOUT, "query_timeout": QUERY_TIMEOUT} | kw
    return AccountingConnector(odbc, **kw)


@pytest.fixture(name="sales_url", scope="module")
def _sales_url(empty_legacy: LegacyTargets) -> str:
    """The Sales database of this module (MariaDB)."""
    return empty_legacy.sales_url


@contextlib.asynccontextmanager
async def opened(connector: C) -> AsyncIterator[C]:
    """The connector, opened; closed again when the block ends."""
    await connector.open()
    try:
        yield connector
    finally:
        await connector.close()


@pytest.fixture(name="warehouse", scope="module")
async def _warehouse(empty_legacy: LegacyTargets) -> AsyncIterator[WarehouseConnector]:
    async with opened(make_warehouse(empty_legacy.warehouse_dsn)) as connector:
        yield connector


@pytest.fixture(name="sales", scope="module")
async def _sales(sales_url: str) -> AsyncIterator[SalesConnector]:
    async with opened(make_sales(sales_url)) as connector:
        yield connector


@pytest.fixture(name="accounting", scope="module")
async def _accounting(empty_legacy: LegacyTargets) -> AsyncIterator[AccountingConnector]:
    async with opened(make_accounting(empty_legacy.accounting_odbc)) as connector:
        yield connector


@pytest.fixture(name="closing")
async def _closing() -> AsyncIterator[Callable[[Any], Any]]:
    """Register connectors built inside a test; they are closed when it ends."""
    opened: list[Any] = []
    yield opened.append
    for connector in opened:
        await connector.close()


PROXIED_CALLS = 3   # the pool size of a connector behind a proxy: more than one connection is involved


@pytest.fixture(name="proxied")
def _proxied(request: pytest.FixtureRequest, empty_legacy: LegacyTargets) -> Iterator[tuple[Any, FaultProxy]]:
    """A connector (``request.param`` names which) to its real server through a fault proxy."""
    kind = request.param
    if kind == "warehouse":
        proxy = FaultProxy("127.0.0.1", dsn_port(empty_legacy.warehouse_dsn)).start()
        connector: Any = make_warehouse(dsn_with_port(empty_legacy.warehouse_dsn, proxy.port), pool_max=PROXIED_CALLS)
    elif kind == "sales":
        proxy = FaultProxy("127.0.0.1", url_port(empty_legacy.sales_url)).start()
        connector = make_sales(url_with_port(empty_legacy.sales_url, proxy.port), pool_size=PROXIED_CALLS)
    else:
        proxy = FaultProxy("127.0.0.1", odbc_port(empty_legacy.accounting_odbc)).start()
        connector = make_accounting(odbc_with_port(empty_legacy.accounting_odbc, proxy.port), max_workers=PROXIED_CALLS)
    try:
        yield connector, proxy
    finally:
        proxy.stop()
