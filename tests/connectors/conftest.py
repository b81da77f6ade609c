"""Connector fixtures: each connector against this module's fresh legacy databases."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from connectors import sales as sales_module
from connectors.accounting import AccountingConnector
from connectors.sales import SalesConnector
from connectors.warehouse import WarehouseConnector
from deploy.legacy.schema import LegacyTargets

QUERY_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def odbc_value(conn_str: str, key: str) -> str:
    """The value of one key of an ODBC connection string."""
    for part in conn_str.split(";"):
        name, _, value = part.partition("=")
        if name.strip().upper() == key.upper():
            return value.strip()
    raise KeyError(key)


def odbc_with(conn_str: str, **values: str) -> str:
    """The ODBC connection string with some keys replaced (or added)."""
    keep = [p for p in conn_str.split(";") if p and p.partition("=")[0].strip().upper() not in values]
    return ";".join([*keep, *(f"{k}={v}" for k, v in values.items())])


async def create_sqlite_sales(path: Path) -> str:
    """An SQLite Sales database with the tables created from the connector's Core metadata."""
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(sales_module.metadata.create_all)
    await engine.dispose()
    return url


def make_warehouse(dsn: str, **kw: Any) -> WarehouseConnector:
    kw = {"query_timeout": QUERY_TIMEOUT, "connect_timeout": CONNECT_TIMEOUT, "max_waiting": 20} | kw
    return WarehouseConnector(dsn, **kw)


def make_sales(url: str, **kw: Any) -> SalesConnector:
    kw = {"pool_size": 5, "query_timeout": QUERY_TIMEOUT, "connect_timeout": CONNECT_TIMEOUT} | kw
    return SalesConnector(url, **kw)


def make_accounting(odbc: str, **kw: Any) -> AccountingConnector:
    kw = {"max_workers": 4, "login_timeout": CONNECT_TIMEOUT, "query_timeout": QUERY_TIMEOUT} | kw
    return AccountingConnector(odbc, **kw)


@pytest.fixture(name="sales_url", scope="module", params=["mariadb", "sqlite"])
async def _sales_url(request: pytest.FixtureRequest, empty_legacy: LegacyTargets,
                     tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Sales database of this module: the MariaDB one, or an SQLite file built from the metadata."""
    if request.param == "mariadb":
        return empty_legacy.sales_url
    return await create_sqlite_sales(tmp_path_factory.mktemp("sales") / "sales.db")


@pytest.fixture(name="warehouse", scope="module")
async def _warehouse(empty_legacy: LegacyTargets) -> AsyncIterator[WarehouseConnector]:
    connector = make_warehouse(empty_legacy.warehouse_dsn)
    await connector.open()
    yield connector
    await connector.close()


@pytest.fixture(name="sales", scope="module")
async def _sales(sales_url: str) -> AsyncIterator[SalesConnector]:
    connector = make_sales(sales_url)
    await connector.open()
    yield connector
    await connector.close()


@pytest.fixture(name="accounting", scope="module")
async def _accounting(empty_legacy: LegacyTargets) -> AsyncIterator[AccountingConnector]:
    connector = make_accounting(empty_legacy.accounting_odbc)
    await connector.open()
    yield connector
    await connector.close()


@pytest.fixture(name="closing")
async def _closing() -> AsyncIterator[Callable[[Any], Any]]:
    """Register connectors built inside a test; they are closed when it ends."""
    opened: list[Any] = []
    yield opened.append
    for connector in opened:
        await connector.close()
