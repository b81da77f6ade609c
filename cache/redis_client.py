"""The cache's Redis client: tight timeouts and at most one retry, so an outage costs milliseconds.

Three URL forms are understood: a single server (``redis://``, ``rediss://``, ``unix://``),
Redis Sentinel (``redis+sentinel://[[user]:password@]host:port,host:port/service[/db]``), whose
client asks the sentinels for the current primary and so follows a failover by itself, and
and Redis Cluster (``redis+cluster://[[user]:password@]host:port,host:port``), which is parsed
but not served yet: the cache's multi-key scripts need every key in one hash slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

SINGLE_SCHEMES = ("redis://", "rediss://", "unix://")
SENTINEL_SCHEME = "redis+sentinel://"
CLUSTER_SCHEME = "redis+cluster://"


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """A parsed Redis URL; ``hosts`` are the sentinels or cluster seed nodes (empty for a single server)."""

    kind: Literal["single", "sentinel", "cluster"]
    url: str
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_redis_url(url: str) -> RedisAddress:
    """The address ``url`` names; ``ValueError`` with a one-line reason when it is malformed."""
    if url.startswith(SINGLE_SCHEMES):
        return RedisAddress("single", url)
    if url.startswith(SENTINEL_SCHEME):
        rest = url.removeprefix(SENTINEL_SCHEME)
        kind: Literal["sentinel", "cluster"] = "sentinel"
    elif url.startswith(CLUSTER_SCHEME):
        rest = url.removeprefix(CLUSTER_SCHEME)
        kind = "cluster"
    else:
        raise ValueError("expected a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL")
    if "?" in rest or "#" in rest:
        raise ValueError(f"{kind} URLs take no query or fragment")
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username, password = (unquote(user) or None), (unquote(secret) if colon else None)
    hosts = tuple(_host_port(part, kind) for part in hostlist.split(","))
    parts = [p for p in path.split("/") if p] if path else []
    if kind == "cluster":
        if parts:
            raise ValueError("a redis+cluster:// URL has no path: Cluster has one database and no service name")
        return RedisAddress("cluster", url, hosts, username=username, password=password)
    if not parts or len(parts) > 2:
        raise ValueError("a redis+sentinel:// URL needs the service name as its path: "
                         "redis+sentinel://host:port,host:port/service[/db]")
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise ValueError(f"the database after the service name must be a number, got {parts[1]!r}")
        db = int(parts[1])
    return RedisAddress("sentinel", url, hosts, unquote(parts[0]), db, username, password)


def _host_port(text: str, kind: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{kind} hosts must be comma-separated host:port pairs, got {text!r}")
    return host, int(port)


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The Sentinel pool, but waiting (up to ``timeout``) for a free connection like the single-server pool."""


class _SentinelRedis(Redis):
    """The primary's client; closing it also closes the clients of the sentinels it asks."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        pool = self.connection_pool
        try:
            await super().aclose(close_connection_pool)
        finally:
            if isinstance(pool, SentinelConnectionPool):
                await pool.sentinel_manager.aclose()


# Every way a Redis call can fail. uvloop raises RuntimeError when a write meets a
# transport Redis has just closed, so a restart shows up as that, not as a RedisError.
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError, RuntimeError)


def pool_exhausted(exc: BaseException) -> bool:
    """True when every pooled connection was busy: this process is loaded, Redis is not down."""
    # BlockingConnectionPool reports a wait timeout as a bare ConnectionError caused by TimeoutError.
    return isinstance(exc, RedisConnectionError) and isinstance(exc.__cause__, TimeoutError)


def make_redis(url: str, *, timeout: float = 0.25, connect_timeout: float = 0.25, retries: int = 1,
               max_connections: int = 64, pool_timeout: float = 0.25,
               health_check_interval: int = 15) -> Redis:
    """A client for a single-server or Sentinel ``url`` that connects lazily; ``aclose()`` it on shutdown.

    redis-py's defaults (5 s socket timeout, 10 retries, a pool that raises when full)
    would make a slow or dead Redis stall every request, so each is set explicitly; with
    Sentinel the same bounds apply to asking the sentinels. A Cluster URL raises ``ValueError``.
    """
    address = parse_redis_url(url)
    # A full pool makes callers wait at most pool_timeout, then fail; every failure is retried at most once.
    pooling: dict[str, Any] = {"max_connections": max_connections, "timeout": pool_timeout,
                               "retry": Retry(NoBackoff(), retries), "health_check_interval": health_check_interval}
    if address.kind == "single":
        pool = BlockingConnectionPool.from_url(url, socket_timeout=timeout, socket_connect_timeout=connect_timeout,
                                               **pooling)
        return Redis.from_pool(pool)
    if address.kind == "cluster":
        raise ValueError("redis+cluster:// is not supported yet: the cache's scripts span several keys, "
                         "which Cluster accepts only within one hash slot")
    socket_kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout}
    # The sentinels get the same tight bounds; a dead sentinel must not stall finding the primary.
    sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]  # unannotated before redis-py 8.2
        address.hosts, sentinel_kwargs={**socket_kwargs, "retry": Retry(NoBackoff(), 0)}, **socket_kwargs)
    client: Redis = sentinel.master_for(
        address.service,
        redis_class=_SentinelRedis,
        connection_pool_class=_BlockingSentinelPool,
        db=address.db,
        username=address.username,
        password=address.password,
        **pooling,
    )
    return client

