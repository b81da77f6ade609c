"""Create the three legacy databases from the DDL in this folder.

Used by ``bizfed seed`` and by the test fixtures, which make throw-away
copies (``warehouse_t1`` …) so tests never touch the demo data.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, replace
from importlib import resources

import psycopg
import pyodbc
from sqlalchemy.engine import make_url


@dataclass(frozen=True)
class LegacyTargets:
    """Where the three legacy databases are, in the form each connector takes."""

    warehouse_dsn: str
    sales_url: str
    accounting_odbc: str

    @classmethod
    def from_env(cls, env: dict[str, str]) -> LegacyTargets:
        return cls(env["BIZFED_WAREHOUSE_DSN"], env["BIZFED_SALES_URL"], env["BIZFED_ACCOUNTING_ODBC"])

    def renamed(self, suffix: str) -> LegacyTargets:
        """The same servers, databases named ``<name>_<suffix>``."""
        wh = psycopg.conninfo.conninfo_to_dict(self.warehouse_dsn)
        wh["dbname"] = f"{wh.get('dbname', 'warehouse')}_{suffix}"
        sales = make_url(self.sales_url)
        sales = sales.set(database=f"{sales.database}_{suffix}")
        acct = _odbc_set(self.accounting_odbc, "DATABASE", f"{_odbc_get(self.accounting_odbc, 'DATABASE')}_{suffix}")
        return replace(self, warehouse_dsn=psycopg.conninfo.make_conninfo("", **wh),
                       sales_url=sales.render_as_string(hide_password=False), accounting_odbc=acct)


def ddl(name: str) -> list[str]:
    """The statements of ``<name>.sql``, comments removed."""
    text = resources.files("deploy.legacy").joinpath(f"{name}.sql").read_text()
    text = re.sub(r"--[^\n]*", "", text)
    return [s.strip() for s in text.split(";") if s.strip()]


def _odbc_get(conn_str: str, key: str) -> str:
    for part in conn_str.split(";"):
        k, _, v = part.partition("=")
        if k.strip().upper() == key:
            return v.strip()
    raise KeyError(key)


def _odbc_set(conn_str: str, key: str, value: str) -> str:
    parts = [p for p in conn_str.split(";") if p and p.partition("=")[0].strip().upper() != key]
    return ";".join([*parts, f"{key}={value}"])


def odbc_server(conn_str: str) -> str:
    """The connection string without its DATABASE, for server-level statements."""
    return ";".join(p for p in conn_str.split(";") if p and p.partition("=")[0].strip().upper() != "DATABASE")


def sales_as_odbc(sales_url: str, accounting_odbc: str) -> str:
    """An ODBC string for the Sales MariaDB, reusing Accounting's driver (demo stack only)."""
    url = make_url(sales_url)
    driver = _odbc_get(accounting_odbc, "DRIVER")
    return (f"DRIVER={driver};SERVER={url.host};PORT={url.port or 3306};DATABASE={url.database};"
            f"UID={url.username or 'root'};PWD={url.password or ''};CHARSET=utf8mb4")


def create_warehouse(dsn: str, *, drop: bool = False) -> None:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    db = str(info["dbname"])
    admin = psycopg.conninfo.make_conninfo("", **{**info, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        if drop:
            conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(db)))
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone()
        if not exists:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(db)))
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('public.items')").fetchone() == (None,):
            for stmt in ddl("warehouse"):
                conn.execute(stmt.encode())
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


def create_mariadb(odbc: str, schema: str, *, drop: bool = False) -> None:
    """Create database ``DATABASE`` of the ODBC string and the tables of ``<schema>.sql``."""
    db = _odbc_get(odbc, "DATABASE")
    if not re.fullmatch(r"\w+", db):
        raise ValueError(f"unexpected database name {db!r}")
    with pyodbc.connect(odbc_server(odbc), autocommit=True, timeout=10) as conn:
        if drop:
            conn.execute(f"DROP DATABASE IF EXISTS {db}")
        conn.execute(f"CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4")
    with pyodbc.connect(odbc, autocommit=True, timeout=10) as conn:
        existing = {row[0].lower() for row in conn.execute("SHOW TABLES").fetchall()}
        if not existing:
            for stmt in ddl(schema):
                conn.execute(stmt)


def create_all(targets: LegacyTargets, *, drop: bool = False) -> None:
    """Create (or with ``drop``, recreate) all three databases with their tables."""
    create_warehouse(targets.warehouse_dsn, drop=drop)
    create_mariadb(sales_as_odbc(targets.sales_url, targets.accounting_odbc), "sales", drop=drop)
    create_mariadb(targets.accounting_odbc, "accounting", drop=drop)


def drop_all(targets: LegacyTargets) -> None:
    info = psycopg.conninfo.conninfo_to_dict(targets.warehouse_dsn)
    admin = psycopg.conninfo.make_conninfo("", **{**info, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        # A logical replication slot (change capture's) on the database keeps even a forced DROP from it.
        for slot, pid in conn.execute("SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s",
                                      (str(info["dbname"]),)).fetchall():
            if pid is not None:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                     .format(psycopg.sql.Identifier(str(info["dbname"]))))
    for odbc in (sales_as_odbc(targets.sales_url, targets.accounting_odbc), targets.accounting_odbc):
        db = _odbc_get(odbc, "DATABASE")
        with pyodbc.connect(odbc_server(odbc), autocommit=True, timeout=10) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db}")
