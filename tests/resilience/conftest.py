"""Fixtures for fault-injection tests: seeded legacy databases and proxies in front of every source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from deploy.legacy.schema import LegacyTargets
from deploy.local.faultproxy import FaultProxy
from tests.servers import Upstreams

# Tight but workable settings, so faults show within seconds; assertions are relative to these.
SOURCE_TIMEOUT = 1.0
DEADLINE = 3.0
RESET = 2.0
FAIL_MAX = 3
ACCOUNTING_TTL = 0.5
TIGHT = {
    "BIZFED_SOURCE_TIMEOUT": str(SOURCE_TIMEOUT),
    "BIZFED_CONNECT_TIMEOUT": str(SOURCE_TIMEOUT),
    "BIZFED_REQUEST_DEADLINE": str(DEADLINE),
    "BIZFED_BREAKER_FAIL_MAX": str(FAIL_MAX),
    "BIZFED_BREAKER_RESET": str(RESET),
    "BIZFED_RETRY_ATTEMPTS": "2",
    # Accounting answers are fresh only briefly, so stale-if-error is what covers an outage.
    "BIZFED_FRESHNESS_ACCOUNTING": f"{ACCOUNTING_TTL},0,3600",
}


@dataclass
class Faults:
    """One proxy per source (Sales and Accounting share a MariaDB server but not a proxy) and Redis."""

    upstreams: Upstreams
    warehouse: FaultProxy
    sales: FaultProxy
    accounting: FaultProxy
    redis: FaultProxy

    def env(self, redis_db: int, **extra: str) -> dict[str, str]:
        return {**self.upstreams.env(warehouse=self.warehouse.port, sales=self.sales.port,
                                     accounting=self.accounting.port, redis=self.redis.port, redis_db=redis_db),
                **TIGHT, **extra}

    def heal(self) -> None:
        for proxy in (self.warehouse, self.sales, self.accounting, self.redis):
            proxy.pass_through()


@pytest.fixture(name="faults", scope="module")
def _faults(seeded: LegacyTargets, redis_url: str, proxy_factory: Callable[[int], FaultProxy]) -> Faults:
    up = Upstreams(seeded, redis_url)
    return Faults(up, proxy_factory(up.warehouse_port), proxy_factory(up.mariadb_port),
                  proxy_factory(up.mariadb_port), proxy_factory(up.redis_port))
