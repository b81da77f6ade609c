"""The fallbacks with the logs really off: a Warehouse server with ``wal_level=replica`` and a Sales server
whose binlog is not row-based. In ``auto`` mode both sources are polled, ``/v1/sources`` says which setting
kept the log from use, and changes still show within the bound."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace

import psycopg
import pymysql
import pytest
from sqlalchemy.engine import make_url

from deploy.legacy.schema import LegacyTargets, drop_all
from deploy.legacy.seed import seed
from deploy.local.stack import throwaway_postgres
from tests.changes.support import Legacy, watching
from tests.changes.test_capture_api import INTERVAL, LONG, shows, warm
from tests.servers import Server, Upstreams, flush_redis_db

REDIS_DB = 3


@pytest.fixture(name="legacy_targets", scope="module")
def _legacy_targets(base_targets: LegacyTargets) -> Iterator[LegacyTargets]:
    """Seeded databases whose Warehouse lives on a cluster of its own, started with ``wal_level=replica``."""
    with throwaway_postgres("wal_level=replica") as dsn:
        renamed = base_targets.renamed(f"fb{uuid.uuid4().hex[:8]}_{os.getpid()}")
        targets = replace(renamed, warehouse_dsn=psycopg.conninfo.make_conninfo(dsn, dbname="warehouse"))
        seed(targets, 1, 42, log=lambda *_: None)
        try:
            yield targets
        finally:
            drop_all(targets)


@contextlib.contextmanager
def statement_binlog(sales_url: str) -> Iterator[None]:
    """The Sales server's binlog switched to statement format (a dynamic global), restored afterwards."""
    url = make_url(sales_url)
    conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password or "",
                           autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@GLOBAL.binlog_format")
            (before,) = cur.fetchone()
            cur.execute("SET GLOBAL binlog_format = 'STATEMENT'")
        try:
            yield
        finally:
            with conn.cursor() as cur:
                cur.execute(f"SET GLOBAL binlog_format = '{before}'")
    finally:
        conn.close()


@pytest.fixture(name="server", scope="module")
def _server(legacy_targets: LegacyTargets, redis_url: str, launch: Callable[..., Server]) -> Server:
    flush_redis_db(redis_url, REDIS_DB)
    env = {**Upstreams(legacy_targets, redis_url).env(redis_db=REDIS_DB), "BIZFED_WATCH_INTERVAL": str(INTERVAL),
           "BIZFED_FRESHNESS_WAREHOUSE": LONG, "BIZFED_FRESHNESS_SALES": LONG, "BIZFED_LOCAL_CACHE_TTL": "60"}
    # Only while capture starts: the feed checks the server's settings when it starts.
    with statement_binlog(legacy_targets.sales_url):
        server = launch(env, name="capture-fallbacks")
        watching(server, {"warehouse": "poll", "sales": "poll", "accounting": "poll"}, timeout=60)
    return server



def test_sources_say_which_setting_kept_each_log_from_use(server: Server) -> None:
    states = server.get("/v1/sources", role="admin").json()["data"]
    assert "wal_level" in states["warehouse"]["changes"]["log_unavailable"], states["warehouse"]["changes"]
    assert "binlog_format" in states["sales"]["changes"]["log_unavailable"], states["sales"]["changes"]


def test_a_stock_count_shows_by_polling(server: Server, legacy: Legacy) -> None:
    sku, location = legacy.stocked_sku()
    path = f"/v1/products/{sku}"
    on_hand = warm(server, path, role="reader")["data"]["on_hand"]
    legacy.warehouse("UPDATE stock SET on_hand = on_hand + 4, updated_at = now() WHERE sku = %s "
                     "AND location_code = %s", (sku, location))
    shows(server, path, lambda d: d["on_hand"] == on_hand + 4, "the stock count, by polling", role="reader")


def test_an_order_status_change_shows_by_polling(server: Server, legacy: Legacy) -> None:
    order_no, _ = legacy.order_with_status_other_than("delivered")
    path = f"/v1/orders/{order_no}"
    warm(server, path)
    legacy.sales("UPDATE orders SET status = 'delivered' WHERE order_no = %s", (order_no,))
    shows(server, path, lambda d: d["status"] == "delivered", "the order status, by polling")
