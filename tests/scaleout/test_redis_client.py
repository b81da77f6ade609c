"""The Redis URL forms bizfed understands: one server, Sentinel and Cluster, and how settings judge them."""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, ResponseError

from api.settings import SettingsError, load_settings
from cache.redis_client import make_redis, make_redis_cluster, parse_redis_url
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
    """With no sentinel listening a command fails within a second instead of stalling."""
    client = make_redis(f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/bizfed")
    try:
        started = time.monotonic()
        with pytest.raises(RedisConnectionError):
            await client.get("x")
        assert time.monotonic() - started < 1.0
    finally:
        await client.aclose()


def test_make_redis_refuses_cluster_urls():
    """make_redis points a Cluster URL at make_redis_cluster rather than half-working."""
    with pytest.raises(ValueError, match="make_redis_cluster"):
        make_redis("redis+cluster://127.0.0.1:7000")
    assert isinstance(make_redis("redis://127.0.0.1:6379/0"), Redis)


@pytest.fixture(name="cluster_url", scope="module")
def _cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three Redis Cluster primaries on loopback, each in a data folder of its own; stopped afterwards."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip("redis-server and redis-cli (Debian redis-server, redis-tools) are not installed")
    root = tmp_path_factory.mktemp("cluster")
    ports = _cluster_ports(3)
    procs = []
    try:
        for port in ports:
            folder = Path(root, str(port))
            folder.mkdir()
            procs.append(subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
                 "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--logfile", str(folder / "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL))
        _wait_ping(cli, ports)
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=30)
        _wait_cluster_ok(cli, ports[0])
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports[:2])
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def _cluster_ports(n: int) -> list[int]:
    """``n`` consecutive free ports whose cluster bus ports (port + 10000) are free and valid too."""
    for _ in range(200):
        base = random.randrange(20000, 50000)
        wanted = [*range(base, base + n), *range(base + 10000, base + 10000 + n)]
        with contextlib.ExitStack() as stack:
            try:
                for port in wanted:
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
        return list(range(base, base + n))
    pytest.fail("no free ports for the cluster nodes")


def _wait_ping(cli: str, ports: list[int]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(subprocess.run([cli, "-p", str(p), "ping"], capture_output=True, text=True).stdout.strip() == "PONG"
               for p in ports):
            return
        time.sleep(0.1)
    pytest.fail("cluster nodes did not answer PING")


def _wait_cluster_ok(cli: str, port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        out = subprocess.run([cli, "-p", str(port), "cluster", "info"], capture_output=True, text=True).stdout
        if "cluster_state:ok" in out:
            return
        time.sleep(0.2)
    pytest.fail("the cluster did not reach cluster_state:ok")


async def test_cluster_client_routes_keys_and_shows_the_slot_limit(cluster_url: str):
    """The Cluster client reads and writes keys across slots; a multi-key script works only within one slot."""
    client = make_redis_cluster(cluster_url)
    try:
        names = [f"bizfed:test:{i}" for i in range(20)]
        for name in names:
            await client.set(name, name, px=60_000)
        assert [await client.get(n) for n in names] == [n.encode() for n in names]
        script = client.register_script("return redis.call('MGET', unpack(KEYS))")
        with pytest.raises((ResponseError, RedisClusterException)):
            await script(keys=["bizfed:a", "bizfed:b"])  # different slots: what the cache's scripts would hit
        tagged = ["{bizfed}:a", "{bizfed}:b"]
        for name in tagged:
            await client.set(name, "v", px=60_000)
        assert await script(keys=tagged) == [b"v", b"v"]
    finally:
        await client.aclose()
