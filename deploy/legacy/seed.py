"""Recreate the three legacy databases and bulk-load generated demo data into them.

PostgreSQL is loaded with COPY; both MariaDB databases through pyodbc with multi-row INSERTs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pyodbc
from psycopg import sql

from deploy.legacy import schema
from deploy.legacy.generate import COLUMNS, SYSTEM_TABLES, generate
from deploy.legacy.schema import LegacyTargets

Log = Callable[[str], None]
Tables = dict[str, Sequence[tuple[object, ...]]]

# Measured with MariaDB Connector/ODBC 3.1.15 (BENCHMARKS.md, "Seeding"): 500 rows per statement
# beat 100, 250 and 1000, and was 2-3x faster than fast_executemany (which moreover raises
# MemoryError with this driver unless every column's size is given with setinputsizes).
ROWS_PER_INSERT = 500


def seed(targets: LegacyTargets, scale: int, seed: int, *, log: Log = print) -> dict[str, int]:
    """Drop and recreate the three databases, load ``generate(scale, seed)``; return rows per table."""
    started = time.perf_counter()
    data = generate(scale, seed)
    counts = data.counts()
    log(f"seed: generated {sum(counts.values()):,} rows (scale {scale}, seed {seed}) "
        f"in {time.perf_counter() - started:.1f}s")
    schema.create_all(targets, drop=True)
    tables = data.tables()
    sales_odbc = schema.sales_as_odbc(targets.sales_url, targets.accounting_odbc)
    # The three servers work in parallel; pyodbc and psycopg release the GIL while they wait.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="seed") as pool:
        jobs = [pool.submit(_load_warehouse, targets.warehouse_dsn, tables, log),
                pool.submit(_load_mariadb, "sales", sales_odbc, tables, log),
                pool.submit(_load_mariadb, "accounting", targets.accounting_odbc, tables, log)]
        for job in jobs:
            job.result()
    log(f"seed: {sum(counts.values()):,} rows in {time.perf_counter() - started:.1f}s")
    return counts


def _load_warehouse(dsn: str, tables: Tables, log: Log) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        # Row-by-row foreign-key triggers took 3/4 of the COPY time; re-adding the constraints
        # after the load checks every row in one pass, inside the same transaction.
        foreign_keys = cur.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND connamespace = 'public'::regnamespace ORDER BY 1, 2").fetchall()
        for table, constraint, _ in foreign_keys:
            cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(constraint)))
        for name in SYSTEM_TABLES["warehouse"]:
            started = time.perf_counter()
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, COLUMNS[name])))
            with cur.copy(statement) as copy:
                for row in tables[name]:
                    copy.write_row(row)
            _log_table(log, "warehouse", name, len(tables[name]), started)
        for table, constraint, definition in foreign_keys:
            cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(table), sql.Identifier(constraint), sql.SQL(definition)))
        # Rows came with explicit ids, so the bigserial must continue after the highest one.
        cur.execute("SELECT setval(pg_get_serial_sequence('movements', 'id'), COALESCE(MAX(id), 1), "
                    "MAX(id) IS NOT NULL) FROM movements")
        cur.execute("ANALYZE")


def _load_mariadb(system: str, odbc: str, tables: Tables, log: Log) -> None:
    names = SYSTEM_TABLES[system]
    conn = connect_odbc(odbc)
    try:
        cur = conn.cursor()
        for name in names:
            started = time.perf_counter()
            _insert_rows(cur, name, COLUMNS[name], tables[name])
            _log_table(log, system, name, len(tables[name]), started)
        conn.commit()
        for name in names:
            cur.execute(f"ANALYZE TABLE {name}").fetchall()
    finally:
        conn.close()


def connect_odbc(odbc: str) -> pyodbc.Connection:
    """A transactional pyodbc connection that exchanges text with the driver as UTF-8."""
    conn = pyodbc.connect(odbc, autocommit=False, timeout=10)
    # MariaDB Connector/ODBC 3.1.15 garbles UTF-16 (pyodbc's default): a character whose UTF-16 low
    # byte is D8-DB (Ø, Ù, Ú, Û, many CJK) is stored with a stray byte and read back with the next
    # character missing; strings of 128+ characters fail or arrive cut; and large statements with
    # non-ASCII values fail now and then with HY001 "Memory allocation error". As UTF-8 (the
    # connection's CHARSET) every code point round-trips.
    conn.setencoding(encoding="utf-8")
    conn.setdecoding(pyodbc.SQL_CHAR, encoding="utf-8")
    conn.setdecoding(pyodbc.SQL_WCHAR, encoding="utf-8")
    return conn


def _insert_rows(cur: pyodbc.Cursor, table: str, columns: Sequence[str],
                 rows: Sequence[tuple[object, ...]]) -> None:
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    one = f"({', '.join('?' * len(columns))})"
    full = head + ", ".join([one] * ROWS_PER_INSERT)
    for start in range(0, len(rows), ROWS_PER_INSERT):
        part = rows[start:start + ROWS_PER_INSERT]
        statement = full if len(part) == ROWS_PER_INSERT else head + ", ".join([one] * len(part))
        cur.execute(statement, [value for row in part for value in row])


def _log_table(log: Log, system: str, table: str, rows: int, started: float) -> None:
    log(f"seed: {system}.{table}: {rows:,} rows in {time.perf_counter() - started:.1f}s")
