"""The cache seen through the API: Warehouse changes show within seconds, admins invalidate by tag,
hot reads are replayed from snapshots until an invalidation."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest

from deploy.legacy.schema import LegacyTargets
from tests.servers import Server, Upstreams, flush_redis_db, wait_for

WATCH_INTERVAL = 0.5


@pytest.fixture(name="server", scope="module")
def _server(seeded: LegacyTargets, redis_url: str, launch: Callable[..., Server]) -> Server:
    """A server whose Warehouse answers stay fresh for ten minutes unless the watcher drops them.

    The first level and snapshots live long too, so only invalidations can explain a change."""
    flush_redis_db(redis_url, 8)
    env = {**Upstreams(seeded, redis_url).env(redis_db=8), "BIZFED_FRESHNESS_WAREHOUSE": "600,0,600",
           "BIZFED_FRESHNESS_SALES": "600,0,600", "BIZFED_FRESHNESS_ACCOUNTING": "600,0,600",
           "BIZFED_LOCAL_CACHE_TTL": "60", "BIZFED_WATCH_INTERVAL": str(WATCH_INTERVAL)}
    return launch(env, name="cache-api")


def _stocked_sku(server: Server) -> str:
    rows = server.get("/v1/products?in_stock=true&limit=1", role="reader").json()["data"]
    return str(rows[0]["sku"])


def test_stock_change_is_visible_within_the_watch_interval(server: Server, seeded: LegacyTargets):
    """A stock row changed with SQL shows through the API within a few watch intervals, inside the fresh TTL."""
    sku = _stocked_sku(server)
    before = server.get(f"/v1/products/{sku}", role="reader").json()
    again = server.get(f"/v1/products/{sku}", role="reader").json()
    assert again["meta"]["sources"]["warehouse"]["cache"] == "hit"
    with psycopg.connect(seeded.warehouse_dsn, autocommit=True) as conn:
        conn.execute("UPDATE stock SET on_hand = on_hand + 7, updated_at = now() "
                     "WHERE sku = %s AND location_code = (SELECT min(location_code) FROM stock WHERE sku = %s)",
                     (sku, sku))
    changed = time.monotonic()
    wait_for(lambda: server.get(f"/v1/products/{sku}", role="reader").json()["data"]["on_hand"]
             == before["data"]["on_hand"] + 7, WATCH_INTERVAL * 10, "the stock change through the API")
    assert time.monotonic() - changed < WATCH_INTERVAL * 10


def test_admin_invalidates_by_tag(server: Server):
    """POST /v1/cache/invalidate with a SKU tag drops that product's cached answers, and only for admins."""
    sku = _stocked_sku(server)
    server.get(f"/v1/products/{sku}", role="reader")
    assert server.get(f"/v1/products/{sku}", role="reader").json()["meta"]["sources"]["warehouse"]["cache"] == "hit"
    denied = server.post("/v1/cache/invalidate", role="finance", json={"tags": [sku]})
    assert denied.status_code == 403
    response = server.post("/v1/cache/invalidate", role="admin", json={"tags": [sku]})
    assert response.status_code == 200
    assert response.json()["data"]["dropped"] >= 1
    after = server.get(f"/v1/products/{sku}", role="reader").json()
    assert after["meta"]["sources"]["warehouse"]["cache"] == "miss"


def _snapshot_serves(server: Server) -> float:
    for line in server.get("/metrics").text.splitlines():
        if line.startswith("bizfed_cache_snapshot_serves_total "):
            return float(line.split()[1])
    return 0.0


def test_hot_reads_replay_a_snapshot_per_role_until_an_invalidation(server: Server):
    """A repeated read is answered whole from a snapshot, truthfully labelled; roles never share one;
    an invalidation drops it at once."""
    sku = _stocked_sku(server)
    path = f"/v1/products/{sku}"
    first = server.get(path, role="reader")
    served = _snapshot_serves(server)
    second = server.get(path, role="reader")
    assert _snapshot_serves(server) == served + 1
    assert second.json()["data"] == first.json()["data"]
    assert second.headers["etag"] == first.headers["etag"]
    sources = second.json()["meta"]["sources"]
    assert {s["cache"] for s in sources.values()} == {"hit"}, sources
    assert "fwd=" not in second.headers["cache-status"]
    assert second.json()["meta"]["redacted"] == ["std_cost"]

    finance = server.get(path, role="finance").json()
    assert "redacted" not in finance["meta"]
    assert "accounting" in finance["meta"]["sources"]
    assert server.get(path, role="reader").json()["meta"]["redacted"] == ["std_cost"]

    assert server.post("/v1/cache/invalidate", role="admin", json={"tags": [sku]}).status_code == 200
    served = _snapshot_serves(server)
    after = server.get(path, role="reader").json()
    assert after["meta"]["sources"]["warehouse"]["cache"] == "miss"
    assert _snapshot_serves(server) == served


def test_an_invalidation_reaches_another_process_snapshots_within_a_second(
        seeded: LegacyTargets, redis_url: str, launch: Callable[..., Server]):
    """Two processes keep snapshots for a minute; a stock change invalidated through one shows
    through the other within about a second (pub/sub clears its first level and snapshots)."""
    env = {**Upstreams(seeded, redis_url).env(redis_db=8), "BIZFED_FRESHNESS_WAREHOUSE": "600,0,600",
           "BIZFED_FRESHNESS_SALES": "600,0,600", "BIZFED_LOCAL_CACHE_TTL": "60",
           # no change capture: only the admin's invalidation can explain a change
           "BIZFED_CHANGES_WAREHOUSE": "off", "BIZFED_CHANGES_SALES": "off", "BIZFED_CHANGES_ACCOUNTING": "off"}
    first, second = launch(env, name="snapshots-a"), launch(env, name="snapshots-b")
    sku = _stocked_sku(first)
    path = f"/v1/products/{sku}"
    for server in (first, second, first, second):
        on_hand = server.get(path, role="reader").json()["data"]["on_hand"]
    assert second.get(path, role="reader").json()["meta"]["sources"]["warehouse"]["cache"] == "hit"
    with psycopg.connect(seeded.warehouse_dsn, autocommit=True) as conn:
        conn.execute("UPDATE stock SET on_hand = on_hand + 5 WHERE sku = %s AND location_code = "
                     "(SELECT min(location_code) FROM stock WHERE sku = %s)", (sku, sku))
    assert second.get(path, role="reader").json()["data"]["on_hand"] == on_hand, "changed without an invalidation"
    assert first.post("/v1/cache/invalidate", role="admin", json={"tags": [sku]}).status_code == 200
    sent = time.monotonic()
    wait_for(lambda: second.get(path, role="reader").json()["data"]["on_hand"] == on_hand + 5, 5,
             "the change through the other process")
    assert time.monotonic() - sent < 1.5
