"""Settings refuse a source URL the connectors cannot use, naming the variable and the form expected."""

from __future__ import annotations

import pytest

from api.settings import SettingsError, load_settings

BASE = {
    "BIZFED_WAREHOUSE_DSN": "postgresql://bizfed@127.0.0.1/warehouse",
    "BIZFED_SALES_URL": "mysql+asyncmy://bizfed@127.0.0.1/sales",
    "BIZFED_ACCOUNTING_ODBC": "DRIVER=MariaDB Unicode;SERVER=127.0.0.1;DATABASE=accounting",
    "BIZFED_REDIS_URL": "redis://127.0.0.1:6379/0",
    "BIZFED_API_KEYS": "k-reader-0123456789:reader",
}


def test_a_mariadb_sales_url_is_taken() -> None:
    assert load_settings(BASE).sales_url == BASE["BIZFED_SALES_URL"]
    assert load_settings({**BASE, "BIZFED_SALES_URL": "mariadb+asyncmy://u@h/sales"}).sales_url.startswith("mariadb")


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///sales.db", "postgresql://h/sales", "mysql://h/sales",
                                 "h:3306/sales"])
def test_any_other_sales_url_is_refused(url: str) -> None:
    with pytest.raises(SettingsError, match="BIZFED_SALES_URL must be a MariaDB URL"):
        load_settings({**BASE, "BIZFED_SALES_URL": url})
