"""Benchmark plumbing: throwaway seeded databases, a bizfed server process, and wrk runs."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from deploy.legacy.schema import LegacyTargets, drop_all
from deploy.legacy.seed import seed
from deploy.local import stack
from deploy.local.process import start_group, stop_group

ROOT = Path(__file__).resolve().parents[1]
WRK_TIMEOUT_S = 15
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
    """One load run. ``errors`` counts every failed request: answers other than 2xx/3xx and socket
    errors (connect, read, write, timeout); ``detail`` says which, empty when there were none."""

    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    detail: str = ""
    cpu_per_request: float | None = None   # the server process's CPU seconds per request, when measured

    def cells(self) -> list[str]:
        errors = f"{self.errors}/{self.requests}" + (f" ({self.detail})" if self.detail else "")
        return [self.name, f"{self.requests_per_s:,.0f}", f"{self.p50_ms:.2f}", f"{self.p99_ms:.2f}", errors]


class RunsFailed(RuntimeError):
    """Every run of a scenario had failed requests: none of them may stand for its throughput."""


def md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def md_table(head: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """A markdown table; ``align``, one letter a column (``l`` or ``r``), right-aligns the ``r`` ones."""
    rule = [("---:" if a == "r" else "---") for a in align.split()] if align else ["---"] * len(head)
    return "\n".join([md_row(head), "|" + "|".join(rule) + "|", *(md_row(cells) for cells in rows)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A Redis of the run's own on a free loopback port, nothing persisted; yields its URL (database 0).

    The stack's Redis has its sixteen databases handed out to test modules, and benchmarks flush the
    databases they use: on a Redis of their own that can never pull a running test's data away."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        with Path(tmp, "server.log").open("wb") as log:
            proc = start_group([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--dir", tmp], env=os.environ, cwd=Path(tmp), output=log)
        try:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}")
                time.sleep(0.1)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop_group(proc)


@contextlib.contextmanager
def stack_env() -> Iterator[dict[str, str]]:
    """The local stack's settings, with a Redis of the run's own (``private_redis``) in place of the stack's."""
    env = stack.up()
    with private_redis() as redis_url:
        yield {**env, "BIZFED_REDIS_URL": redis_url}


@contextlib.contextmanager
def seeded(scale: int, seed_value: int = 42, name: str = "bench") -> Iterator[tuple[dict[str, str], LegacyTargets]]:
    """The stack's settings (``stack_env``) and throwaway legacy databases filled at ``scale``."""
    with stack_env() as env:
        targets = LegacyTargets.from_env(env).renamed(f"{name}{scale}")
        started = time.monotonic()
        seed(targets, scale, seed_value, log=lambda *_: None)
        print(f"bench: seeded scale {scale} in {time.monotonic() - started:.1f}s", flush=True)
        try:
            yield env, targets
        finally:
            drop_all(targets)


@contextlib.contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """``commit`` checked out, detached, in a temporary git worktree of this repository; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bizfed-tree-") as tmp:
        path = Path(tmp, "tree")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit],
                       check=True, capture_output=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False,
                           capture_output=True)


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


def run_wrk(name: str, base: str, script: str, *, key: str | None = ADMIN, seconds: int = 10,
            connections: int = 32, threads: int = 1, env: Mapping[str, str] | None = None) -> LoadResult:
    """wrk driven by the Lua ``script`` against ``base``, its figures parsed; failures are counted, not raised."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "script.lua")
        path.write_text(script)
        auth = ["-H", f"Authorization: Bearer {key}"] if key else []
        out = subprocess.run(
            # wrk gives up on an answer after 2 s by default and counts it as an error; bizfed's request
            # deadline is longer (5 s by default), so an answer slow but within it is timed instead.
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT_S}s", "--latency",
             "-s", str(path), *auth, base],
            env={**os.environ, **(env or {})}, capture_output=True, text=True, check=True,
            timeout=seconds + 60).stdout
    errors, detail = _errors(out)
    result = LoadResult(name, _number(out, r"Requests/sec:\s+([\d.]+)"), _latency(out, "50%"), _latency(out, "99%"),
                        errors, int(_number(out, r"(\d+) requests in")), detail)
    if errors:
        print(f"bench: {name}: {errors} of {result.requests} requests failed ({detail})", file=sys.stderr, flush=True)
    return result


def wrk(name: str, base: str, paths: list[str], *, key: str = ADMIN, seconds: int = 10, connections: int = 32,
        threads: int = 1) -> LoadResult:
    """Drive ``paths`` (round robin from a random start) with wrk and parse its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp, "paths.txt")
        listing.write_text("\n".join(paths) + "\n")
        return run_wrk(name, base, WRK_SCRIPT, key=key, seconds=seconds, connections=connections, threads=threads,
                       env={"BENCH_PATHS": str(listing)})


def interleaved(scenarios: Mapping[str, str], paths: list[str], *, rounds: int = 5, seconds: int = 3,
                connections: int = 32, threads: int = 1,
                pids: Mapping[str, int] | None = None) -> dict[str, list[LoadResult]]:
    """Each scenario (name -> base URL, all running at once) driven ``rounds`` times in turn; with
    ``pids`` (name -> server process), each run also notes that process's CPU seconds per request.

    On a shared machine interference only ever takes throughput away, so comparing the best of
    interleaved runs (``best``) is fairer than comparing one long run of each, made minutes apart.
    """
    runs: dict[str, list[LoadResult]] = {name: [] for name in scenarios}
    for _ in range(rounds):
        for name, base in scenarios.items():
            pid = pids.get(name) if pids else None
            before = cpu_seconds(pid) if pid else 0.0
            run = wrk(name, base, paths, seconds=seconds, connections=connections, threads=threads)
            if pid:
                run = dataclasses.replace(run, cpu_per_request=(cpu_seconds(pid) - before) / max(run.requests, 1))
            runs[name].append(run)
    return runs


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds ``pid`` has used, all its threads together."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def best(runs: list[LoadResult]) -> LoadResult:
    """The fastest run without a failed request (a failing server can be fast). Runs with failures are
    left out, and ``spread`` says so; if every run had failures there is no best, and that is an error."""
    clean = [r for r in runs if not r.errors]
    if not clean:
        raise RunsFailed("every run had failed requests: "
                         + "; ".join(f"{r.name}: {r.errors}/{r.requests} ({r.detail})" for r in runs))
    return max(clean, key=lambda r: r.requests_per_s)


def checked(result: LoadResult) -> LoadResult:
    """``result``, if none of its requests failed; a ratio must not stand on a run with failures."""
    if result.errors:
        raise RunsFailed(f"{result.name}: {result.errors}/{result.requests} requests failed ({result.detail})")
    return result


def spread(runs: list[LoadResult]) -> str:
    """req/s of the worst and best runs without failures, and how many runs had failures (left out of both)."""
    clean = [r for r in runs if not r.errors]
    failed = len(runs) - len(clean)
    rates = sorted(r.requests_per_s for r in clean)
    text = f"{rates[0]:,.0f}–{rates[-1]:,.0f}" if rates else "no run without failures"
    if failed:
        text += (f" (**{failed} of {len(runs)} runs had failed requests and were left out**: "
                 + ", ".join(f"{r.errors}/{r.requests} {r.detail}" for r in runs if r.errors) + ")")
    return text


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


def _errors(text: str) -> tuple[int, str]:
    """Failed requests in wrk's output, and which kinds."""
    counts: dict[str, int] = {}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non2xx:
        counts["non-2xx/3xx"] = int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        counts.update(zip(("connect", "read", "write", "timeout"), (int(g) for g in sock.groups()), strict=True))
    found = {kind: n for kind, n in counts.items() if n}
    return sum(found.values()), ", ".join(f"{kind} {n}" for kind, n in found.items())


def table(title: str, results: list[LoadResult]) -> str:
    head = ["scenario", "req/s", "p50 ms", "p99 ms", "errors"]
    return f"\n{title}\n\n" + md_table(head, [r.cells() for r in results]) + "\n"
