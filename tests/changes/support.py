"""Writing to the legacy databases as their own applications would, and finding rows worth changing."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import psycopg
import pymysql
from sqlalchemy.engine import make_url

from deploy.legacy.schema import LegacyTargets
from tests.servers import Server, odbc_value


def watching(server: Server, modes: Mapping[str, str], timeout: float) -> None:
    """Wait until each source's changes are watched in the expected mode; fail showing what /v1/sources says."""
    deadline = time.monotonic() + timeout
    seen: Any = None
    while time.monotonic() < deadline:
        seen = {name: entry.get("changes") for name, entry in
                server.get("/v1/sources", role="admin").json()["data"].items() if name in modes}
        if all((seen.get(n) or {}).get("mode") == m and (seen.get(n) or {}).get("state") == "watching"
               for n, m in modes.items()):
            return
        time.sleep(0.25)
    raise AssertionError(f"change capture not watching as {dict(modes)} within {timeout:.0f}s: {seen}")


class Legacy:
    """Connections to a module's three legacy databases, as the business's own applications write them."""

    def __init__(self, targets: LegacyTargets) -> None:
        self.targets = targets
        sales = make_url(targets.sales_url)
        self.sales_db = str(sales.database)
        self.accounting_db = odbc_value(targets.accounting_odbc, "DATABASE")
        self._mariadb = {"host": sales.host or "127.0.0.1", "port": sales.port or 3306,
                         "user": sales.username or "root", "password": sales.password or ""}
        self._my = pymysql.connect(**self._mariadb, autocommit=True, charset="utf8mb4")
        self._pg = psycopg.connect(targets.warehouse_dsn, autocommit=True)

    def __enter__(self) -> Legacy:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._my.close()
        self._pg.close()

    # Writes, each committed on its own.
    def sales(self, sql: str, values: Sequence[Any] = ()) -> None:
        self._mysql(self.sales_db, sql, values)

    def accounting(self, sql: str, values: Sequence[Any] = ()) -> None:
        self._mysql(self.accounting_db, sql, values)

    def warehouse(self, sql: str, values: Sequence[Any] = ()) -> None:
        self._pg.execute(sql.encode(), values)

    def post_payment(self, invno: str, cents: int) -> None:
        payno = "P" + "".join(secrets.choice("0123456789") for _ in range(11))
        today = int(datetime.now(UTC).strftime("%Y%m%d"))
        self.accounting("INSERT INTO ARPAYM (PAYNO, INVNO, PAYDT, AMTCENTS, METHOD) VALUES (%s, %s, %s, %s, 'BT')",
                        (payno, invno.ljust(12), today, cents))

    # Finding rows to change: a random one each time, so repeated tests change different rows.
    def open_invoice_of_an_order(self) -> tuple[str, str, int]:
        row = self._one(f"SELECT TRIM(h.INVNO), TRIM(h.ORDREF), h.AMTCENTS FROM {self.accounting_db}.ARINVH h "
                        f"JOIN {self.sales_db}.orders o ON o.order_no = TRIM(h.ORDREF) WHERE h.STATUS = 'O' "
                        "ORDER BY RAND() LIMIT 1")
        return str(row[0]), str(row[1]), int(row[2])

    def open_invoice(self) -> tuple[str, str]:
        row = self._one(f"SELECT TRIM(INVNO), TRIM(CUSTNO) FROM {self.accounting_db}.ARINVH WHERE STATUS = 'O' "
                        "ORDER BY RAND() LIMIT 1")
        return str(row[0]), str(row[1])

    def customer_with_account(self) -> tuple[int, str]:
        row = self._one(f"SELECT c.id, c.acct_no FROM {self.sales_db}.customers c JOIN {self.accounting_db}.ARCUST a "
                        "ON TRIM(a.CUSTNO) = c.acct_no ORDER BY RAND() LIMIT 1")
        return int(row[0]), str(row[1])

    def customer_with_an_order(self) -> tuple[int, str]:
        row = self._one(f"SELECT customer_id, order_no FROM {self.sales_db}.orders ORDER BY RAND() LIMIT 1")
        return int(row[0]), str(row[1])

    def order_with_status_other_than(self, status: str) -> tuple[str, str]:
        row = self._one(f"SELECT order_no, status FROM {self.sales_db}.orders WHERE status <> %s "
                        "ORDER BY RAND() LIMIT 1", (status,))
        return str(row[0]), str(row[1])

    def order_with_lines(self, at_least: int) -> tuple[str, int]:
        row = self._one(f"SELECT order_no, MAX(line_no) FROM {self.sales_db}.order_lines GROUP BY order_no "
                        "HAVING COUNT(*) >= %s ORDER BY RAND() LIMIT 1", (at_least,))
        return str(row[0]), int(row[1])

    def costed_sku(self) -> str:
        costed = {str(r[0]).strip() for r in self._all(f"SELECT ITEMNO FROM {self.accounting_db}.ICITEM")}
        return self._warehouse_sku_among(costed)

    def priced_sku(self) -> str:
        priced = {str(r[0]).strip().upper() for r in
                  self._all(f"SELECT sku FROM {self.sales_db}.products WHERE sku IS NOT NULL")}
        return self._warehouse_sku_among(priced)

    def order_line_with_a_known_sku(self) -> tuple[str, str, str]:
        lines = self._all(f"SELECT l.order_no, UPPER(TRIM(p.sku)) FROM {self.sales_db}.order_lines l "
                          f"JOIN {self.sales_db}.products p ON p.id = l.product_id WHERE p.sku IS NOT NULL "
                          "ORDER BY RAND() LIMIT 200")
        known = {r[0] for r in self._pg.execute("SELECT sku FROM items").fetchall()}
        order_no, sku = next((str(o), str(s)) for o, s in lines if s in known)
        location = self._pg.execute("SELECT min(code) FROM locations").fetchone()
        assert location is not None
        return order_no, sku, str(location[0])

    def stocked_sku(self) -> tuple[str, str]:
        row = self._pg.execute("SELECT sku, location_code FROM stock ORDER BY random() LIMIT 1").fetchone()
        assert row is not None
        return str(row[0]), str(row[1])

    # Faults.
    def kill_watchers(self) -> None:
        """Cut every connection to this module's databases but our own: the watchers' (binlog dump and
        slot readers included) and the API's alike."""
        own = self._pg.info.backend_pid
        dbname = self._pg.info.dbname
        for (pid,) in self._pg.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                                       (dbname, own)).fetchall():
            self._pg.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with self._my.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            me = cur.fetchone()[0]
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> %s AND "
                        "(DB IN (%s, %s) OR COMMAND LIKE 'Binlog Dump%%')", (me, self.sales_db, self.accounting_db))
            for (thread,) in cur.fetchall():
                with contextlib.suppress(pymysql.err.OperationalError, pymysql.err.InternalError):
                    cur.execute(f"KILL {int(thread)}")

    @contextlib.contextmanager
    def restricted_logins(self) -> Iterator[LegacyTargets]:
        """The same databases reached by logins that may read the tables but not the change logs."""
        name = f"bizfed_ro_{secrets.token_hex(3)}"
        password = secrets.token_hex(8)
        pg_db = self._pg.info.dbname
        self._pg.execute(f'CREATE ROLE "{name}" LOGIN'.encode())
        self._pg.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{name}"'.encode())
        with self._my.cursor() as cur:
            cur.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'")
            for db in (self.sales_db, self.accounting_db):
                cur.execute(f"GRANT SELECT ON {db}.* TO '{name}'@'%'")
        wh = psycopg.conninfo.conninfo_to_dict(self.targets.warehouse_dsn)
        sales = make_url(self.targets.sales_url).set(username=name, password=password)
        odbc = ";".join(p for p in self.targets.accounting_odbc.split(";")
                        if p and p.partition("=")[0].strip().upper() not in ("UID", "PWD"))
        try:
            yield LegacyTargets(psycopg.conninfo.make_conninfo("", **{**wh, "user": name, "dbname": pg_db}),
                                sales.render_as_string(hide_password=False), f"{odbc};UID={name};PWD={password}")
        finally:
            self._pg.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{name}"'.encode())
            for (pid,) in self._pg.execute("SELECT pid FROM pg_stat_activity WHERE usename = %s", (name,)).fetchall():
                self._pg.execute("SELECT pg_terminate_backend(%s)", (pid,))
            self._pg.execute(f'DROP ROLE IF EXISTS "{name}"'.encode())
            with self._my.cursor() as cur:
                cur.execute(f"DROP USER IF EXISTS '{name}'@'%'")

    def _mysql(self, db: str, sql: str, values: Sequence[Any]) -> None:
        with self._my.cursor() as cur:
            cur.execute(f"USE {db}")
            cur.execute(sql, tuple(values))

    def _one(self, sql: str, values: Sequence[Any] = ()) -> tuple[Any, ...]:
        rows = self._all(sql, values)
        assert rows, sql
        return rows[0]

    def _all(self, sql: str, values: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._my.cursor() as cur:
            cur.execute(sql, tuple(values))
            return list(cur.fetchall())

    def _warehouse_sku_among(self, skus: set[str]) -> str:
        rows = self._pg.execute("SELECT sku FROM items ORDER BY random()").fetchall()
        return next(str(r[0]) for r in rows if str(r[0]) in skus)
