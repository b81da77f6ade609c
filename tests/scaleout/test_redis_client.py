"""The Redis URL forms bizfed understands: one server, Sentinel and Cluster, and how settings judge them."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError

from api.settings import SettingsError, load_settings
from cache.redis_client import make_redis, parse_redis_url
from tests.servers import free_port

BASE_ENV = {
    "BIZFED_WAREHOUSE_DSN": "postgresql://127.0.0.1/warehouse",
    "BIZFED_SALES_URL": "mysql+asyncmy://127.0.0.1/sales",
    "BIZFED_ACCOUNTING_ODBC": "DRIVER=MariaDB;SERVER=127.0.0.1;DATABASE=accounting",
    "BIZFED_API_KEYS": "k:reader",
}


def test_sentinel_url_names_sentinels_service_db_and_password():
    """A Sentinel URL gives every sentinel, the service name, the database and the primary's credentials."""
    address = parse_redis_url("redis+sentinel://:s%40cret@10.0.0.1:26379,[::1]:26380,sentinel-c:26381/cache/3")
    assert address.kind == "sentinel"
    assert address.hosts == (("10.0.0.1", 26379), ("::1", 26380), ("sentinel-c", 26381))
    assert (address.service, address.db, address.username, address.password) == ("cache", 3, None, "s@cret")


def test_cluster_and_single_urls_parse():
    """A Cluster URL lists seed nodes; a single-server URL is left for redis-py to read."""
    cluster = parse_redis_url("redis+cluster://user:pw@a:7000,b:7001")
    assert (cluster.kind, cluster.hosts, cluster.username, cluster.password) == (
        "cluster", (("a", 7000), ("b", 7001)), "user", "pw")
    assert parse_redis_url("redis://127.0.0.1:6379/2").kind == "single"


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1:6379", "expected a redis://"),
    ("redis+sentinel://127.0.0.1:26379", "needs the service name"),
    ("redis+sentinel://127.0.0.1:26379/svc/x", "must be a number"),
    ("redis+sentinel://127.0.0.1/svc", "host:port pairs"),
    ("redis+sentinel://a:1,,b:2/svc", "host:port pairs"),
    ("redis+sentinel://a:99999/svc", "host:port pairs"),
    ("redis+sentinel://a:1/svc?x=1", "no query"),
    ("redis+cluster://a:7000/0", "no path"),
])
def test_malformed_urls_are_refused_with_a_reason(url: str, reason: str):
    """Each malformed form raises ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=reason):
        parse_redis_url(url)


def test_settings_name_the_variable_and_refuse_cluster():
    """Settings accept Sentinel, refuse a malformed URL naming BIZFED_REDIS_URL, and refuse Cluster with why."""
    url = "redis+sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/bizfed"
    assert load_settings({**BASE_ENV, "BIZFED_REDIS_URL": url}).redis_url == url
    with pytest.raises(SettingsError, match=r"^BIZFED_REDIS_URL: .*service name"):
        load_settings({**BASE_ENV, "BIZFED_REDIS_URL": "redis+sentinel://127.0.0.1:26379"})
    with pytest.raises(SettingsError, match=r"^BIZFED_REDIS_URL: redis\+cluster:// is not supported yet") as info:
        load_settings({**BASE_ENV, "BIZFED_REDIS_URL": "redis+cluster://127.0.0.1:7000"})
    assert "\n" not in str(info.value)


async def test_sentinel_client_keeps_the_tight_bounds():
    """The Sentinel client has the single-server client's timeouts, retry count and blocking pool."""
    client = make_redis("redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/bizfed/4", timeout=0.3, retries=1,
                        pool_timeout=0.2)
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        kwargs = pool.connection_kwargs
        assert (kwargs["socket_timeout"], kwargs["db"], kwargs["password"]) == (0.3, 4, "pw")
        assert kwargs["retry"].get_retries() == 1
        assert getattr(pool, "timeout", None) == 0.2, "a full pool waits briefly instead of raising at once"
        for sentinel in pool.sentinel_manager.sentinels:
            assert sentinel.connection_pool.connection_kwargs["socket_timeout"] == 0.3
            assert sentinel.connection_pool.connection_kwargs.get("password") is None
    finally:
        await client.aclose()


async def test_sentinel_client_fails_fast_without_sentinels():
    """With no sentinel listening a command fails within its bounds instead of stalling for redis-py's
    defaults (ten retries of 5 s timeouts)."""
    connect_timeout = 0.25
    client = make_redis(f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/bizfed",
                        connect_timeout=connect_timeout)
    worst = 2 * 2 * connect_timeout   # two sentinels, each tried twice (one retry)
    try:
        started = time.monotonic()
        with pytest.raises(RedisConnectionError):
            await client.get("x")
        assert time.monotonic() - started < 10 * worst
    finally:
        await client.aclose()


def test_make_redis_refuses_cluster_urls():
    """make_redis refuses a Cluster URL rather than half-working."""
    with pytest.raises(ValueError, match="not supported yet"):
        make_redis("redis+cluster://127.0.0.1:7000")
    assert isinstance(make_redis("redis://127.0.0.1:6379/0"), Redis)
