"""The created legacy schemas, read back from the catalogs, match the legacy systems' description."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pyodbc
import pytest

from deploy.legacy.schema import LegacyTargets, sales_as_odbc
from deploy.legacy.seed import connect_odbc

# The description of the three systems, written out by hand: (column, type, nullable, default).
WAREHOUSE_COLUMNS = {
    "locations": [
        ("code", "varchar(8)", False, None),
        ("name", "text", False, None),
        ("city", "text", False, None),
        ("country", "char(2)", False, None),
        ("timezone", "text", False, None),
    ],
    "items": [
        ("sku", "varchar(20)", False, None),
        ("name", "text", False, None),
        ("description", "text", True, None),
        ("unit", "varchar(8)", False, "'EA'::character varying"),
        ("weight_grams", "integer", True, None),
        ("active", "boolean", False, "true"),
        ("updated_at", "timestamptz", False, None),
    ],
    "stock": [
        ("sku", "varchar(20)", False, None),
        ("location_code", "varchar(8)", False, None),
        ("on_hand", "integer", False, None),
        ("reserved", "integer", False, "0"),
        ("updated_at", "timestamptz", False, None),
    ],
    "movements": [
        ("id", "bigint", False, "nextval('movements_id_seq'::regclass)"),
        ("sku", "varchar(20)", False, None),
        ("location_code", "varchar(8)", False, None),
        ("qty", "integer", False, None),
        ("kind", "varchar(12)", False, None),
        ("reference", "varchar(32)", True, None),
        ("moved_at", "timestamptz", False, None),
    ],
}
WAREHOUSE_PRIMARY_KEYS = {
    "locations": ("code",), "items": ("sku",), "stock": ("sku", "location_code"), "movements": ("id",),
}
WAREHOUSE_INDEXES = {("movements", ("reference",)), ("movements", ("sku", "moved_at")), ("items", ("lower(name)",))}
WAREHOUSE_FOREIGN_KEYS = {
    ("stock", "sku", "items", "sku"), ("stock", "location_code", "locations", "code"),
    ("movements", "sku", "items", "sku"), ("movements", "location_code", "locations", "code"),
}

SALES_COLUMNS = {
    "customers": [
        ("id", "INT", False, None),
        ("name", "VARCHAR(200)", False, None),
        ("email", "VARCHAR(254)", True, None),
        ("country", "CHAR(2)", True, None),
        ("created_at", "DATETIME", False, None),
        ("acct_no", "VARCHAR(10)", True, None),
    ],
    "products": [
        ("id", "INT", False, None),
        ("title", "VARCHAR(200)", False, None),
        ("sku", "VARCHAR(20)", True, None),
        ("list_price", "DECIMAL(12,2)", False, None),
        ("currency", "CHAR(3)", False, None),
    ],
    "orders": [
        ("order_no", "VARCHAR(20)", False, None),
        ("customer_id", "INT", False, None),
        ("status", "ENUM('draft','confirmed','shipped','delivered','cancelled')", False, None),
        ("ordered_at", "DATETIME", False, None),
        ("ship_from", "VARCHAR(8)", True, None),
        ("currency", "CHAR(3)", False, None),
    ],
    "order_lines": [
        ("order_no", "VARCHAR(20)", False, None),
        ("line_no", "SMALLINT", False, None),
        ("product_id", "INT", False, None),
        ("qty", "INT", False, None),
        ("unit_price", "DECIMAL(12,2)", False, None),
        ("discount_pct", "DECIMAL(5,2)", False, Decimal(0)),
    ],
}
SALES_PRIMARY_KEYS = {
    "customers": ("id",), "products": ("id",), "orders": ("order_no",), "order_lines": ("order_no", "line_no"),
}
SALES_INDEXES = {
    ("orders", ("customer_id",)), ("orders", ("ordered_at",)), ("products", ("sku",)), ("customers", ("acct_no",)),
}
SALES_FOREIGN_KEYS = {
    ("orders", "customer_id", "customers", "id"), ("order_lines", "order_no", "orders", "order_no"),
    ("order_lines", "product_id", "products", "id"),
}
SALES_AUTO_INCREMENT = {("customers", "id")}

ACCOUNTING_COLUMNS = {
    "ARCUST": [
        ("CUSTNO", "CHAR(10)", False, None),
        ("CUSTNM", "VARCHAR(60)", False, None),
        ("CRLIMIT", "BIGINT", False, None),
        ("CURRCD", "CHAR(3)", False, None),
        ("STATUS", "CHAR(1)", False, None),
    ],
    "ARINVH": [
        ("INVNO", "CHAR(12)", False, None),
        ("CUSTNO", "CHAR(10)", False, None),
        ("ORDREF", "CHAR(20)", False, None),
        ("INVDT", "INTEGER", False, None),
        ("DUEDT", "INTEGER", False, None),
        ("CURRCD", "CHAR(3)", False, None),
        ("AMTCENTS", "BIGINT", False, None),
        ("TAXCENTS", "BIGINT", False, None),
        ("STATUS", "CHAR(1)", False, None),
    ],
    "ARPAYM": [
        ("PAYNO", "CHAR(12)", False, None),
        ("INVNO", "CHAR(12)", False, None),
        ("PAYDT", "INTEGER", False, None),
        ("AMTCENTS", "BIGINT", False, None),
        ("METHOD", "CHAR(2)", False, None),
    ],
    "ICITEM": [
        ("ITEMNO", "CHAR(20)", False, None),
        ("STDCOST", "BIGINT", False, None),
        ("LASTUPD", "INTEGER", False, None),
    ],
}
ACCOUNTING_PRIMARY_KEYS = {"ARCUST": ("CUSTNO",), "ARINVH": ("INVNO",), "ARPAYM": ("PAYNO",), "ICITEM": ("ITEMNO",)}
ACCOUNTING_INDEXES = {("ARINVH", ("CUSTNO",)), ("ARINVH", ("ORDREF",)), ("ARPAYM", ("INVNO",))}

# MariaDB reports INTEGER columns as INT; the description uses both spellings.
MARIADB_SYNONYMS = {"INTEGER": "INT"}


@pytest.fixture(name="warehouse", scope="module")
def _warehouse(empty_legacy: LegacyTargets) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(empty_legacy.warehouse_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(name="sales", scope="module")
def _sales(empty_legacy: LegacyTargets) -> Iterator[pyodbc.Connection]:
    conn = connect_odbc(sales_as_odbc(empty_legacy.sales_url, empty_legacy.accounting_odbc))
    yield conn
    conn.close()


@pytest.fixture(name="accounting", scope="module")
def _accounting(empty_legacy: LegacyTargets) -> Iterator[pyodbc.Connection]:
    conn = connect_odbc(empty_legacy.accounting_odbc)
    yield conn
    conn.close()


def _pg_type(data_type: str, length: int | None) -> str:
    short = {"character varying": "varchar", "character": "char", "timestamp with time zone": "timestamptz"}
    name = short.get(data_type, data_type)
    return f"{name}({length})" if length is not None else name


def _warehouse_columns(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, list[tuple[object, ...]]]:
    rows = conn.execute(
        "SELECT c.table_name, c.column_name, c.data_type, c.character_maximum_length, c.is_nullable, "
        "c.column_default FROM information_schema.columns c JOIN information_schema.tables t "
        "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
        "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
        "ORDER BY c.table_name, c.ordinal_position").fetchall()
    tables: dict[str, list[tuple[object, ...]]] = {}
    for table, column, data_type, length, nullable, default in rows:
        tables.setdefault(str(table), []).append(
            (column, _pg_type(str(data_type), length), nullable == "YES", default))
    return tables


def _pg_indexes(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[str, bool, tuple[str, ...]]]:
    rows = conn.execute(
        "SELECT t.relname, i.indisprimary, "
        "ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k ORDER BY k) "
        "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE n.nspname = 'public'").fetchall()
    return [(str(table), bool(primary), tuple(columns)) for table, primary, columns in rows]


def _mariadb_type(data_type: str, column_type: str, length: int | None, precision: int | None,
                  scale: int | None) -> str:
    if data_type in ("varchar", "char"):
        return f"{data_type.upper()}({length})"
    if data_type == "decimal":
        return f"DECIMAL({precision},{scale})"
    if data_type == "enum":
        return "ENUM" + column_type[len("enum"):]
    return data_type.upper()


def _mariadb_default(default: str | None) -> object:
    # MariaDB reports "no default" on a nullable column as the string 'NULL'.
    if default is None or default == "NULL":
        return None
    return Decimal(default)


def _mariadb_columns(conn: pyodbc.Connection) -> dict[str, list[tuple[object, ...]]]:
    rows = conn.execute(
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, "
        "NUMERIC_SCALE, IS_NULLABLE, COLUMN_DEFAULT FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION").fetchall()
    tables: dict[str, list[tuple[object, ...]]] = {}
    for table, column, data_type, column_type, length, precision, scale, nullable, default in rows:
        tables.setdefault(table, []).append(
            (column, _mariadb_type(data_type, column_type, length, precision, scale), nullable == "YES",
             _mariadb_default(default)))
    return tables


def _mariadb_indexes(conn: pyodbc.Connection) -> dict[tuple[str, str], tuple[str, ...]]:
    rows = conn.execute(
        "SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX").fetchall()
    indexes: dict[tuple[str, str], tuple[str, ...]] = {}
    for table, index, column in rows:
        indexes[(table, index)] = (*indexes.get((table, index), ()), column)
    return indexes


def _mariadb_foreign_keys(conn: pyodbc.Connection) -> set[tuple[str, str, str, str]]:
    rows = conn.execute(
        "SELECT TABLE_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME "
        "FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL").fetchall()
    return {tuple(row) for row in rows}


def _expected_mariadb(columns: dict[str, list[tuple[str, str, bool, object]]]) -> dict[str, list[tuple[object, ...]]]:
    return {table: [(name, MARIADB_SYNONYMS.get(kind, kind), nullable, default)
                    for name, kind, nullable, default in cols]
            for table, cols in columns.items()}


def _check_mariadb_indexes(conn: pyodbc.Connection, primary_keys: dict[str, tuple[str, ...]],
                           listed: set[tuple[str, tuple[str, ...]]],
                           foreign_keys: set[tuple[str, str, str, str]]) -> None:
    indexes = _mariadb_indexes(conn)
    assert {table: cols for (table, name), cols in indexes.items() if name == "PRIMARY"} == primary_keys
    secondary = {(table, cols) for (table, name), cols in indexes.items() if name != "PRIMARY"}
    assert listed <= secondary
    # InnoDB adds an index for a foreign key that no listed index can serve; nothing else may be extra.
    fk_columns = {(table, (column,)) for table, column, _, _ in foreign_keys}
    assert secondary - listed <= fk_columns


def test_warehouse_columns_match_description(warehouse):
    """Every Warehouse table has exactly the described columns, types, lengths, nullability and defaults."""
    assert _warehouse_columns(warehouse) == {
        table: [tuple(col) for col in cols] for table, cols in WAREHOUSE_COLUMNS.items()}


def test_warehouse_keys_and_indexes_match_description(warehouse):
    """Warehouse has the described primary keys and exactly the listed secondary indexes."""
    indexes = _pg_indexes(warehouse)
    assert {table: cols for table, primary, cols in indexes if primary} == WAREHOUSE_PRIMARY_KEYS
    assert {(table, cols) for table, primary, cols in indexes if not primary} == WAREHOUSE_INDEXES


def test_warehouse_foreign_keys_match_description(warehouse):
    """Stock and movements reference items and locations, as the description's FK notes say."""
    rows = warehouse.execute(
        "SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, af.attname "
        "FROM pg_constraint c CROSS JOIN LATERAL unnest(c.conkey, c.confkey) AS k(col, fcol) "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.col "
        "JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = k.fcol "
        "WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace").fetchall()
    assert set(rows) == WAREHOUSE_FOREIGN_KEYS


def test_movements_id_is_a_bigserial(warehouse):
    """movements.id draws from a sequence owned by the column, which is what bigserial creates."""
    row = warehouse.execute("SELECT pg_get_serial_sequence('movements', 'id')").fetchone()
    assert row == ("public.movements_id_seq",)


def test_sales_columns_match_description(sales):
    """Every Sales table has exactly the described columns, types, lengths, nullability and defaults."""
    assert _mariadb_columns(sales) == _expected_mariadb(SALES_COLUMNS)


def test_sales_keys_and_indexes_match_description(sales):
    """Sales has the described primary keys, foreign keys and listed indexes, and no others."""
    foreign_keys = _mariadb_foreign_keys(sales)
    assert foreign_keys == SALES_FOREIGN_KEYS
    _check_mariadb_indexes(sales, SALES_PRIMARY_KEYS, SALES_INDEXES, foreign_keys)


def test_sales_auto_increment_only_on_customer_id(sales):
    """customers.id is AUTO_INCREMENT and products.id is a plain INT key, as described."""
    rows = sales.execute("SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
                         "WHERE TABLE_SCHEMA = DATABASE() AND EXTRA LIKE '%auto_increment%'").fetchall()
    assert {tuple(row) for row in rows} == SALES_AUTO_INCREMENT


def test_sales_is_utf8mb4(sales):
    """Every Sales table and text column uses the utf8mb4 character set, so any Unicode name fits."""
    tables = sales.execute("SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES "
                           "WHERE TABLE_SCHEMA = DATABASE()").fetchall()
    assert {name for name, _ in tables} == set(SALES_COLUMNS)
    assert all(collation.startswith("utf8mb4_") for _, collation in tables)
    charsets = sales.execute("SELECT DISTINCT CHARACTER_SET_NAME FROM information_schema.COLUMNS "
                             "WHERE TABLE_SCHEMA = DATABASE() AND CHARACTER_SET_NAME IS NOT NULL").fetchall()
    assert [tuple(row) for row in charsets] == [("utf8mb4",)]


def test_accounting_columns_match_description(accounting):
    """Every Accounting table has exactly the described upper-case columns, CHAR widths and integer types."""
    assert _mariadb_columns(accounting) == _expected_mariadb(ACCOUNTING_COLUMNS)


def test_accounting_keys_and_indexes_match_description(accounting):
    """Accounting has the described primary keys and listed indexes, and (as described) no foreign keys."""
    foreign_keys = _mariadb_foreign_keys(accounting)
    assert foreign_keys == set()
    _check_mariadb_indexes(accounting, ACCOUNTING_PRIMARY_KEYS, ACCOUNTING_INDEXES, foreign_keys)
