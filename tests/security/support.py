"""Helpers for the security suite: problem checks, leak markers, and checksums of every legacy table."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import httpx
import psycopg
import pyodbc
from psycopg import sql

from deploy.legacy.schema import LegacyTargets, sales_as_odbc
from deploy.local.addresses import dsn_port, odbc_port
from tests.servers import odbc_value

# Words that would betray a stack trace, SQL or driver text, or a connection string in a response.
LEAK_MARKERS = ("Traceback", 'File "', ".py\"", "/work/", "site-packages", "psycopg", "pyodbc", "asyncmy",
                "sqlalchemy", "SQLSTATE", "syntax error", "ProgrammingError", "OperationalError", "IntegrityError",
                "DataError", "pymysql", "MariaDB", "MySQL", "PostgreSQL", "postgresql://", "mysql+", "redis://",
                "DRIVER=", "UID=", "PWD=", "127.0.0.1", "localhost")


def leak_markers(targets: LegacyTargets) -> tuple[str, ...]:
    """The static markers plus this dataset's database names and server ports."""
    names = [str(psycopg.conninfo.conninfo_to_dict(targets.warehouse_dsn)["dbname"]),
             targets.sales_url.rsplit("/", 1)[-1].split("?")[0],
             odbc_value(targets.accounting_odbc, "DATABASE")]
    ports = [f":{dsn_port(targets.warehouse_dsn)}", f":{odbc_port(targets.accounting_odbc)}"]
    return (*LEAK_MARKERS, *names, *ports)


def leaks(text: str, markers: Iterable[str]) -> list[str]:
    lowered = text.lower()
    return [m for m in markers if m.lower() in lowered]


def check_problem(response: httpx.Response, status: int | tuple[int, ...], markers: Iterable[str] = LEAK_MARKERS,
                  what: str = "") -> dict[str, Any]:
    """The RFC 9457 body of an error response with an expected status, leaking nothing internal."""
    wanted = (status,) if isinstance(status, int) else status
    label = what or f"{response.request.method} {response.request.url}"
    assert response.status_code in wanted, f"{label}: {response.status_code} (wanted {wanted}) {response.text[:300]}"
    assert response.headers.get("content-type", "").startswith("application/problem+json"), \
        f"{label}: content-type {response.headers.get('content-type')}"
    body: dict[str, Any] = response.json()
    for field in ("type", "title", "status", "detail"):
        assert field in body, f"{label}: problem without {field}: {body}"
    assert body["status"] == response.status_code, f"{label}: body status {body['status']}"
    found = leaks(response.text, markers)
    assert not found, f"{label}: the problem leaks {found}: {response.text[:300]}"
    return body


def legacy_checksums(targets: LegacyTargets) -> dict[str, str]:
    """A checksum of the shape and content of every table in the three legacy databases."""
    sums = _postgres_checksums(targets.warehouse_dsn)
    for system, odbc in (("sales", sales_as_odbc(targets.sales_url, targets.accounting_odbc)),
                         ("accounting", targets.accounting_odbc)):
        sums.update(_mariadb_checksums(system, odbc))
    return sums


def _postgres_checksums(dsn: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT n.nspname, c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2").fetchall()
        shape = conn.execute(
            "SELECT table_schema, table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
            "ORDER BY 1, 2, ordinal_position").fetchall()
        sums["warehouse:(columns)"] = hashlib.sha256(repr(shape).encode()).hexdigest()
        for schema, table, oid in tables:
            pk = [row[0] for row in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s AND i.indisprimary "
                "ORDER BY array_position(i.indkey, a.attnum)", (oid,)).fetchall()]
            # Without a primary key the whole row's text still gives a total order.
            order = sql.SQL(", ").join(sql.Identifier("t", c) for c in pk) if pk else sql.SQL("t::text")
            query = sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY {}), '')) "
                            "FROM {} AS t").format(order, sql.Identifier(schema, table))
            count, digest = conn.execute(query).fetchone() or (0, "")
            sums[f"warehouse:{schema}.{table}"] = f"{count}:{digest}"
    return sums


def _mariadb_checksums(system: str, odbc: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    database = odbc_value(odbc, "DATABASE")
    with pyodbc.connect(odbc, autocommit=True, timeout=10) as conn:
        tables = [row[0] for row in conn.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'").fetchall()]
        shape = conn.execute(
            "SELECT table_name, column_name, column_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = ? ORDER BY 1, ordinal_position",
            database).fetchall()
        sums[f"{system}:(columns)"] = hashlib.sha256(repr([tuple(r) for r in shape]).encode()).hexdigest()
        for table in sorted(tables):
            quoted = "`" + table.replace("`", "``") + "`"
            checksum = conn.execute(f"CHECKSUM TABLE {quoted} EXTENDED").fetchone()
            count = conn.execute(f"SELECT COUNT(*) FROM {quoted}").fetchone()
            sums[f"{system}:{table}"] = f"{count[0] if count else 0}:{checksum[1] if checksum else None}"
    return sums


def changed_tables(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Tables whose checksum differs, appeared or disappeared."""
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
