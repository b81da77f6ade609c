"""Running `bizfed serve` subprocesses in tests, with their sources optionally behind fault proxies."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from deploy.legacy.schema import LegacyTargets
from deploy.local.addresses import dsn_port, dsn_with_port, odbc_port, odbc_with_port, url_with_port
from deploy.local.faultproxy import FaultProxy
from deploy.local.process import start_group, stop_group

REPO = Path(__file__).resolve().parents[1]   # tests/servers.py -> the checkout
ARTIFACTS = REPO / "tests" / "artifacts"
KEYS = {"reader": "test-reader-7Yq2", "finance": "test-finance-P4mz", "admin": "test-admin-Kw9c"}
API_KEYS_ENV = ",".join(f"{key}:{role}" for role, key in KEYS.items())
# A Redis database of its own, so no other suite shares our cache entries or breaker openings.
REDIS_DB = 12
START_TIMEOUT_S = 45.0


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released), for a server to take or a client to fail on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def odbc_value(conn_str: str, key: str) -> str:
    """The value of one key of an ODBC connection string."""
    for part in conn_str.split(";"):
        name, _, value = part.partition("=")
        if name.strip().upper() == key.upper():
            return value.strip()
    raise KeyError(key)


def redis_with(url: str, port: int | None = None, db: int = REDIS_DB) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc if port is None else f"{parts.netloc.rpartition(':')[0]}:{port}"
    return urlunsplit((parts.scheme, netloc, f"/{db}", parts.query, parts.fragment))


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, keyed by name and sorted labels."""
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@dataclass
class Server:
    base: str
    log_path: Path
    proc: subprocess.Popen[bytes]

    def get(self, path: str, *, role: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, role=role, **kwargs)

    def post(self, path: str, *, role: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, role=role, **kwargs)

    def request(self, method: str, path: str, *, role: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if role is not None:
            headers["Authorization"] = f"Bearer {KEYS[role]}"
        return httpx.request(method, self.base + path, headers=headers, timeout=30.0, **kwargs)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = self.get("/metrics")
        assert response.status_code == 200, response.text
        return metric_samples(response.text)

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels`` (0 when there are none)."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.metrics().items() if n == name and wanted <= set(ls))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Upstreams:
    """The real servers of the private stack, and the databases this module's servers use."""

    targets: LegacyTargets
    redis_url: str

    @property
    def warehouse_port(self) -> int:
        return dsn_port(self.targets.warehouse_dsn)

    @property
    def mariadb_port(self) -> int:
        return odbc_port(self.targets.accounting_odbc)

    @property
    def redis_port(self) -> int:
        return urlsplit(self.redis_url).port or 6379

    def env(self, *, warehouse: int | None = None, sales: int | None = None, accounting: int | None = None,
            redis: int | None = None, redis_db: int = REDIS_DB) -> dict[str, str]:
        """Server settings; each given port replaces that dependency's (a proxy in front of it)."""
        t = self.targets
        return {
            "BIZFED_WAREHOUSE_DSN": dsn_with_port(t.warehouse_dsn, warehouse) if warehouse else t.warehouse_dsn,
            "BIZFED_SALES_URL": url_with_port(t.sales_url, sales) if sales else t.sales_url,
            "BIZFED_ACCOUNTING_ODBC": odbc_with_port(t.accounting_odbc, accounting) if accounting
            else t.accounting_odbc,
            "BIZFED_REDIS_URL": redis_with(self.redis_url, redis, redis_db),
            "BIZFED_API_KEYS": API_KEYS_ENV,
        }


def proxy_factory_fixture() -> Iterator[Callable[[int], FaultProxy]]:
    """Starts fault proxies in front of loopback ports; every one is stopped at the end of the module."""
    started: list[FaultProxy] = []

    def make(upstream_port: int) -> FaultProxy:
        proxy = FaultProxy("127.0.0.1", upstream_port).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


def launch_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Starts `bizfed serve` subprocesses (module-scoped); each is terminated at the end of the module."""
    running: list[subprocess.Popen[bytes]] = []

    def launch(env: Mapping[str, str], *, workers: int = 1, name: str = "server", module: str = "api.cli") -> Server:
        """``module`` is run as ``python -m module serve ...``: ``api.cli`` or a test's variant of it."""
        port = free_port()
        full = {k: v for k, v in os.environ.items() if not k.startswith(("BIZFED_", "PROMETHEUS_"))}
        full.update(env)
        log_path = tmp_path_factory.mktemp(name) / "server.log"
        with log_path.open("wb") as log:
            proc = start_group([sys.executable, "-m", module, "serve", "--host", "127.0.0.1", "--port",
                                str(port), "--workers", str(workers)], env=full, cwd=REPO, output=log)
        running.append(proc)
        server = Server(f"http://127.0.0.1:{port}", log_path, proc)
        wait_live(server.base, proc, log_path)
        wait_workers_ready(log_path, workers)
        return server

    yield launch
    for proc in running:
        stop_group(proc)


def wait_live(base: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = START_TIMEOUT_S) -> None:
    """Return once `bizfed serve` at ``base`` answers /health/live; fail with its log if it exits or stays dark."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"bizfed serve exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health/live", timeout=1.0).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"bizfed serve not live within {timeout:.0f}s:\n{log_path.read_text(errors='replace')[-4000:]}")


def wait_workers_ready(log_path: Path, workers: int, timeout: float = START_TIMEOUT_S) -> None:
    """Return once every worker has said it is ready: one answering /health/live may be the first of several,
    and a stop signal that reaches a worker still starting is one Sanic's manager waits 30 s on."""
    deadline = time.monotonic() + timeout
    while log_path.read_text(errors="replace").count("Worker ready") < workers:
        if time.monotonic() > deadline:
            pytest.fail(f"not all {workers} workers ready within {timeout:.0f}s:\n"
                        f"{log_path.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    pytest.fail(f"not within {timeout:.0f}s: {what}")


def flush_redis_db(redis_url: str, db: int = REDIS_DB) -> None:
    """Empty this suite's own Redis database, so no entry from an earlier run is served."""
    client = redis.Redis.from_url(redis_with(redis_url, db=db), socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()
