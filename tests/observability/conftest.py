"""Fixtures for the observability tests: `bizfed serve` subprocesses whose sources sit behind fault proxies."""

from __future__ import annotations

import pytest

from deploy.legacy.schema import LegacyTargets
from tests.servers import Upstreams


@pytest.fixture(name="upstreams", scope="module")
def _upstreams(empty_legacy: LegacyTargets, redis_url: str) -> Upstreams:
    """Empty throw-away legacy databases for this module, and the stack's Redis."""
    return Upstreams(empty_legacy, redis_url)
