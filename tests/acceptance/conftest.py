"""Acceptance fixtures: one seeded throw-away dataset per seed, `bizfed serve` over it, and the SQL oracle.

Every test that uses ``api`` or ``oracle`` runs once per seed in ``SEEDS``; pytest groups the tests by
seed, so each dataset is seeded once, served by one server, and dropped before the next one is made.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.legacy.schema import LegacyTargets, drop_all
from deploy.local.process import start_group, stop_group
from tests.acceptance.oracle import Oracle
from tests.acceptance.support import API_KEYS_ENV, Api
from tests.servers import free_port, redis_with, wait_live

REPO = Path(__file__).resolve().parents[2]
SEEDS = (42, 7)
SCALE = 1
# A Redis database of its own, so no other test run shares our breaker state or cache keys.
REDIS_DB = 13
START_TIMEOUT_S = 30.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "whole_list: walks a whole list resource (the heavier acceptance tests)")


@dataclass(frozen=True)
class Dataset:
    seed: int
    targets: LegacyTargets
    counts: dict[str, int]


@pytest.fixture(name="dataset", scope="session", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def _dataset(request: pytest.FixtureRequest, base_targets: LegacyTargets) -> Iterator[Dataset]:
    """Three throw-away legacy databases filled by the demo seeder with one seed, dropped afterwards."""
    from deploy.legacy.seed import seed

    seed_value: int = request.param
    targets = base_targets.renamed(f"acc{seed_value}")
    counts = seed(targets, SCALE, seed_value)
    try:
        yield Dataset(seed_value, targets, dict(counts))
    finally:
        drop_all(targets)


@pytest.fixture(name="oracle", scope="session")
def _oracle(dataset: Dataset) -> Iterator[Oracle]:
    """The expected answers, computed with SQL straight against the dataset."""
    oracle = Oracle(dataset.targets)
    try:
        yield oracle
    finally:
        oracle.close()


@dataclass(frozen=True)
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 6000) -> str:
        state = "running" if self.proc.poll() is None else f"exited with {self.proc.returncode}"
        return f"[bizfed serve {state}]\n" + self.log_path.read_text(errors="replace")[-chars:]


@pytest.fixture(name="server", scope="session")
def _server(dataset: Dataset, stack_env: dict[str, str], redis_url: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`bizfed serve` on a free port over the dataset, with the cache off."""
    port = free_port()
    env = {**os.environ, **stack_env,
           "BIZFED_WAREHOUSE_DSN": dataset.targets.warehouse_dsn,
           "BIZFED_SALES_URL": dataset.targets.sales_url,
           "BIZFED_ACCOUNTING_ODBC": dataset.targets.accounting_odbc,
           "BIZFED_REDIS_URL": redis_with(redis_url, db=REDIS_DB),
           "BIZFED_API_KEYS": API_KEYS_ENV,
           "BIZFED_CACHE": "off"}
    env.pop("BIZFED_ENV_FILE", None)
    log_path = tmp_path_factory.mktemp(f"server-seed{dataset.seed}") / "server.log"
    with log_path.open("wb") as log:
        proc = start_group([sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                            "--workers", "1"], env=env, cwd=REPO, output=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_live(base, proc, log_path, START_TIMEOUT_S)
        yield Server(base, proc, log_path)
    finally:
        stop_group(proc)


@pytest.fixture(name="api", scope="session")
def _api(server: Server) -> Iterator[Api]:
    """An HTTP client on the running server."""
    client = Api(server.url, server.log_tail)
    try:
        yield client
    finally:
        client.close()
