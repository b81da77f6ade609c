"""Benchmark plumbing: throwaway seeded databases, a bizfed server process, and wrk runs."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from deploy.legacy.schema import LegacyTargets, drop_all
from deploy.legacy.seed import seed
from deploy.local import stack
from deploy.local.process import start_group, stop_group

ROOT = Path(__file__).resolve().parents[1]
KEYS = "bench-reader:reader,bench-finance:finance,bench-admin:admin"
ADMIN = "bench-admin"
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local i = math.random(#paths)
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
"""


@dataclass(frozen=True)
class LoadResult:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int

    def row(self) -> str:
        return (f"| {self.name} | {self.requests_per_s:,.0f} | {self.p50_ms:.2f} | {self.p99_ms:.2f} | "
                f"{self.errors}/{self.requests} |")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def seeded(scale: int, seed_value: int = 42, name: str = "bench") -> Iterator[tuple[dict[str, str], LegacyTargets]]:
    """The stack's settings and throwaway legacy databases filled at ``scale``."""
    env = stack.up()
    targets = LegacyTargets.from_env(env).renamed(f"{name}{scale}")
    started = time.monotonic()
    seed(targets, scale, seed_value, log=lambda *_: None)
    print(f"bench: seeded scale {scale} in {time.monotonic() - started:.1f}s", flush=True)
    try:
        yield env, targets
    finally:
        drop_all(targets)


def server_env(env: Mapping[str, str], targets: LegacyTargets, **extra: str) -> dict[str, str]:
    # The rate limiter runs as in production, with a limit no run can reach.
    return {**os.environ, **env, "BIZFED_WAREHOUSE_DSN": targets.warehouse_dsn,
            "BIZFED_SALES_URL": targets.sales_url, "BIZFED_ACCOUNTING_ODBC": targets.accounting_odbc,
            "BIZFED_API_KEYS": KEYS, "BIZFED_RATE_LIMIT": "1000000000", **extra}


@contextlib.contextmanager
def server(env: Mapping[str, str], *, workers: int = 1, module: str = "api.cli",
           args: tuple[str, ...] = (), code: Path = ROOT) -> Iterator[str]:
    """A running server (``bizfed serve`` by default) from the code in ``code``; yields its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", module, *(args or ("serve", "--port", str(port), "--workers", str(workers)))]
    if args:
        cmd += ["--port", str(port), "--workers", str(workers)]
    log = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False)  # noqa: SIM115
    proc = start_group(cmd, env={**env, "PYTHONPATH": str(code)} if code != ROOT else env, cwd=code, output=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/health/live", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {log.name}")
            time.sleep(0.2)
        yield base
    finally:
        stop_group(proc)


def wrk(name: str, base: str, paths: list[str], *, key: str = ADMIN, seconds: int = 10, connections: int = 32,
        threads: int = 1) -> LoadResult:
    """Drive ``paths`` (round robin from a random start) with wrk and parse its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "paths.lua")
        script.write_text(WRK_SCRIPT)
        listing = Path(tmp, "paths.txt")
        listing.write_text("\n".join(paths) + "\n")
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
             "-H", f"Authorization: Bearer {key}", base],
            env={**os.environ, "BENCH_PATHS": str(listing)}, capture_output=True, text=True, check=True).stdout
    return LoadResult(name, _number(out, r"Requests/sec:\s+([\d.]+)"), _latency(out, "50%"), _latency(out, "99%"),
                      _errors(out), int(_number(out, r"(\d+) requests in")))


def interleaved(scenarios: Mapping[str, str], paths: list[str], *, rounds: int = 5, seconds: int = 3,
                connections: int = 32, threads: int = 1) -> dict[str, list[LoadResult]]:
    """Each scenario (name -> base URL, all running at once) driven ``rounds`` times in turn.

    On a shared machine interference only ever takes throughput away, so comparing the best of
    interleaved runs (``best``) is fairer than comparing one long run of each, made minutes apart.
    """
    runs: dict[str, list[LoadResult]] = {name: [] for name in scenarios}
    for _ in range(rounds):
        for name, base in scenarios.items():
            runs[name].append(wrk(name, base, paths, seconds=seconds, connections=connections, threads=threads))
    return runs


def best(runs: list[LoadResult]) -> LoadResult:
    return max(runs, key=lambda r: r.requests_per_s)


def spread(runs: list[LoadResult]) -> str:
    rates = sorted(r.requests_per_s for r in runs)
    return f"{rates[0]:,.0f}–{rates[-1]:,.0f}"


def _number(text: str, pattern: str) -> float:
    match = re.search(pattern, text)
    if not match:
        raise ValueError(f"wrk output lacks {pattern!r}:\n{text}")
    return float(match.group(1))


def _latency(text: str, pct: str) -> float:
    match = re.search(rf"^\s+{re.escape(pct)}\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if not match:
        raise ValueError(f"wrk output lacks the {pct} latency:\n{text}")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def _errors(text: str) -> int:
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return (int(non2xx.group(1)) if non2xx else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)


def table(title: str, results: list[LoadResult]) -> str:
    head = f"\n{title}\n\n| scenario | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|\n"
    return head + "\n".join(r.row() for r in results) + "\n"
