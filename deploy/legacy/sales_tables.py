"""The Sales schema (deploy/legacy/sales.sql) as SQLAlchemy tables, for tests and benches that write rows.

The connector reads with SQL of its own; these are for building data through its engine.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    TypeDecorator,
)


class UtcDateTime(TypeDecorator[datetime]):
    """A naive-UTC DATETIME column; binds aware times as naive UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value


metadata = MetaData()

customers = Table(
    "customers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("email", String(254)),
    Column("country", CHAR(2)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("acct_no", String(10)),
    Index("customers_acct_no_idx", "acct_no"),
)

products = Table(
    "products", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("title", String(200), nullable=False),
    Column("sku", String(20)),
    Column("list_price", Numeric(12, 2), nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Index("products_sku_idx", "sku"),
)

orders = Table(
    "orders", metadata,
    Column("order_no", String(20), primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    # an ENUM in MariaDB; read as text so that a stray value skips a row instead of failing the list
    Column("status", String(9), nullable=False),
    Column("ordered_at", UtcDateTime(), nullable=False),
    Column("ship_from", String(8)),
    Column("currency", CHAR(3), nullable=False),
    Index("orders_customer_id_idx", "customer_id"),
    Index("orders_ordered_at_idx", "ordered_at"),
)

order_lines = Table(
    "order_lines", metadata,
    Column("order_no", String(20), ForeignKey("orders.order_no"), nullable=False),
    Column("line_no", SmallInteger, nullable=False),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("unit_price", Numeric(12, 2), nullable=False),
    Column("discount_pct", Numeric(5, 2), nullable=False, server_default="0"),
    PrimaryKeyConstraint("order_no", "line_no"),
)
