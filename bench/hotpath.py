"""What the cached-path benchmarks share: servers whose answers stay fresh, hot product paths, and
the ceiling apps (``bench.ceiling``) fed the very bytes bizfed answered."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping

import httpx
import redis

from bench.ceiling import PREFIX
from bench.harness import ADMIN, server, server_env
from deploy.legacy.schema import LegacyTargets

AUTH = {"Authorization": f"Bearer {ADMIN}"}
# Fresh for ten minutes: every read of a run is a hit.
FRESH_FOR_LONG = {f"BIZFED_FRESHNESS_{source}": "600,0,600" for source in ("WAREHOUSE", "SALES", "ACCOUNTING")}


def bench_redis(env: Mapping[str, str], db: int = 14) -> tuple[str, redis.Redis]:
    """The URL of database ``db`` on the stack's Redis, and a client of it; the database starts empty."""
    url = env["BIZFED_REDIS_URL"].rsplit("/", 1)[0] + f"/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    return url, client


def cached_env(env: Mapping[str, str], targets: LegacyTargets, redis_url: str) -> dict[str, str]:
    return server_env(env, targets, BIZFED_REDIS_URL=redis_url, **FRESH_FOR_LONG)


def hot_paths(base: str, count: int) -> list[str]:
    """``/v1/products/{sku}`` for the first ``count`` products."""
    skus = [p["sku"] for p in httpx.get(f"{base}/v1/products?limit={count}", headers=AUTH).json()["data"]]
    return [f"/v1/products/{sku}" for sku in skus]


def warm_up(client: redis.Redis, bases: Iterable[str], paths: list[str]) -> None:
    """Each server answers each path once, which caches it; the answer is kept for the ceilings."""
    for path in paths:
        for base in bases:
            body = httpx.get(base + path, headers=AUTH).content
        client.set(PREFIX + path.rsplit("/", 1)[1], body)


def start_ceiling(running: contextlib.ExitStack, env: Mapping[str, str], redis_url: str, source: str,
                  workers: int = 1) -> str:
    """A ceiling app answering from one Redis GET (``redis``) or from memory (``memory``), stopped with ``running``."""
    return running.enter_context(server({"PATH": env["PATH"]}, workers=workers, module="bench.ceiling",
                                        args=("--redis", redis_url, "--source", source)))
