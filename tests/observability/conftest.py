"""Fixtures for the observability tests: `bizfed serve` subprocesses whose sources sit behind fault proxies."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from deploy.legacy.schema import LegacyTargets
from deploy.local.faultproxy import FaultProxy
from tests.servers import REDIS_DB, Server, Upstreams, flush_redis_db

Serve = Callable[..., Server]


@pytest.fixture(name="upstreams", scope="module")
def _upstreams(empty_legacy: LegacyTargets, redis_url: str) -> Upstreams:
    """Empty throw-away legacy databases for this module, and the stack's Redis."""
    return Upstreams(empty_legacy, redis_url)


@pytest.fixture(name="accounting_proxy", scope="module")
def _accounting_proxy(upstreams: Upstreams, proxy_factory: Callable[[int], FaultProxy]) -> FaultProxy:
    """A fault proxy in front of Accounting's MariaDB server (Sales reaches the same server directly)."""
    return proxy_factory(upstreams.mariadb_port)


@pytest.fixture(name="redis_proxy", scope="module")
def _redis_proxy(upstreams: Upstreams, proxy_factory: Callable[[int], FaultProxy]) -> FaultProxy:
    """A fault proxy in front of the stack's Redis."""
    return proxy_factory(upstreams.redis_port)


@pytest.fixture(name="serve", scope="module")
def _serve(upstreams: Upstreams, launch: Callable[..., Server]) -> Serve:
    """Starts `bizfed serve` over this module's databases, on a Redis database emptied first (breaker openings
    and cache entries of earlier modules are shared through it). ``ports`` put proxies in front of
    dependencies, as ``Upstreams.env`` takes them; ``settings`` are added to the environment."""

    def serve(name: str, settings: Mapping[str, str] | None = None, *, workers: int = 1, redis_db: int = REDIS_DB,
              **ports: int) -> Server:
        flush_redis_db(upstreams.redis_url, redis_db)
        env = {**upstreams.env(redis_db=redis_db, **ports), **(settings or {})}
        return launch(env, workers=workers, name=name)

    return serve
