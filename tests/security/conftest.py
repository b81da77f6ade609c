"""Security fixtures: one seeded dataset and one `bizfed serve` over it, shared by the whole security suite."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest

from deploy.legacy.schema import LegacyTargets
from tests.conftest import seeded_legacy
from tests.security.support import legacy_checksums
from tests.servers import API_KEYS_ENV, Server, Upstreams, flush_redis_db, launch_fixture

# Redis databases no other suite uses, so no foreign cache entry or rate counter is seen.
REDIS_DB = 10
CURSOR_SECRET = "security-suite-cursor-secret-9Lr"
# Configured only by its SHA-256: the clear key exists in this test and nowhere in the configuration.
HASHED_FINANCE = "sec-hashed-finance-3Jt8"
# A second reader key, as while a reader key is being rotated.
ROTATED_READER = "sec-reader-next-Qz51"
KEYS_ENV = (f"{API_KEYS_ENV},sha256={hashlib.sha256(HASHED_FINANCE.encode()).hexdigest()}:finance,"
            f"{ROTATED_READER}:reader")


@pytest.fixture(name="seeded", scope="session")
def _seeded(base_targets: LegacyTargets) -> Iterator[LegacyTargets]:
    """Seeded legacy databases shared by the whole security suite."""
    yield from seeded_legacy(base_targets, "sec")


@pytest.fixture(name="pristine", scope="session")
def _pristine(seeded: LegacyTargets) -> dict[str, str]:
    """Checksums of every legacy table straight after seeding, before any request reached them."""
    return legacy_checksums(seeded)


@pytest.fixture(name="upstreams", scope="session")
def _upstreams(seeded: LegacyTargets, redis_url: str) -> Upstreams:
    return Upstreams(seeded, redis_url)


@pytest.fixture(name="session_launch", scope="session")
def _session_launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Starts `bizfed serve` subprocesses that live for the whole session."""
    yield from launch_fixture(tmp_path_factory)


def server_env(upstreams: Upstreams, redis_db: int = REDIS_DB, **extra: str) -> dict[str, str]:
    """The suite's settings: its own Redis database, extra keys, and a cursor secret the tests know."""
    return {**upstreams.env(redis_db=redis_db), "BIZFED_API_KEYS": KEYS_ENV, "BIZFED_CURSOR_SECRET": CURSOR_SECRET,
            **extra}


@pytest.fixture(name="server", scope="session")
def _server(session_launch: Callable[..., Server], upstreams: Upstreams, pristine: dict[str, str],
            redis_url: str) -> Server:
    """`bizfed serve` over the seeded databases with the cache on (started after the pristine checksums)."""
    flush_redis_db(redis_url, REDIS_DB)
    return session_launch(server_env(upstreams), name="security")
