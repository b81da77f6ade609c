"""The cache's Redis client: tight timeouts and at most one retry, so an outage costs milliseconds."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def make_redis(url: str, *, timeout: float = 0.25, connect_timeout: float = 0.25, retries: int = 1,
               max_connections: int = 64, pool_timeout: float = 0.25,
               health_check_interval: int = 15) -> Redis:
    """A client for ``url`` that connects lazily; ``aclose()`` it on shutdown.

    redis-py's defaults (5 s socket timeout, 10 retries, a pool that raises when full)
    would make a slow or dead Redis stall every request, so each is set explicitly.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), retries),
        health_check_interval=health_check_interval,
    )
    return Redis.from_pool(pool)
