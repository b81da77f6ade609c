"""Reading and rewriting the port in each legacy system's connection setting, to put a fault proxy in between."""

from __future__ import annotations

import re

import psycopg
from sqlalchemy.engine import make_url

_ODBC_PORT = re.compile(r"(?i)\bPORT=(\d+)")


def dsn_port(dsn: str) -> int:
    """The port of a libpq connection string or URL (5432 when it names none)."""
    return int(psycopg.conninfo.conninfo_to_dict(dsn).get("port") or 5432)


def dsn_with_port(dsn: str, port: int) -> str:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    info["port"] = str(port)
    info.setdefault("host", "127.0.0.1")
    return psycopg.conninfo.make_conninfo("", **info)


def url_port(url: str) -> int:
    """The port of an SQLAlchemy URL (MariaDB's 3306 when it names none)."""
    return int(make_url(url).port or 3306)


def url_with_port(url: str, port: int) -> str:
    return make_url(url).set(port=port).render_as_string(hide_password=False)


def odbc_port(odbc: str) -> int:
    found = _ODBC_PORT.search(odbc)
    if not found:
        raise ValueError("the Accounting ODBC string names no PORT")
    return int(found.group(1))


def odbc_with_port(odbc: str, port: int) -> str:
    return _ODBC_PORT.sub(f"PORT={port}", odbc)
