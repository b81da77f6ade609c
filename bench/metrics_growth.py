"""Issue 16 benchmark: /metrics under requests with invented method names.

Run: ``python -m bench.metrics_growth``. One bizfed worker on loopback; 10,000 requests (by default), each with
a random method token, some on real routes and some on unknown paths; /metrics' size and generation time are
measured before and after. Bounded series mean the same size afterwards, give or take a few digits.
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import time
from urllib.parse import urlsplit

import httpx

from bench.harness import seeded, server, server_env

TOKEN_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-!~"
PATHS = (b"/health/live", b"/v1/orders/SO-1", b"/no/such/path")
TIME_LIMIT_S = 600.0
SCRAPES = 5


def send(host: str, port: int, method: bytes, path: bytes) -> bytes:
    """One request whose method no HTTP client library would send; returns the status line."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(method + b" " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while b"\r\n" not in answer and (chunk := sock.recv(4096)):
            answer += chunk
    return answer.partition(b"\r\n")[0]


def scrape(base: str) -> tuple[int, float, int]:
    """/metrics' size in bytes, the median time to generate it in ms over a few scrapes, and its line count."""
    times = []
    body = b""
    for _ in range(SCRAPES):
        started = time.perf_counter()
        response = httpx.get(base + "/metrics", timeout=60)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        body = response.content
    return len(body), statistics.median(times), body.count(b"\n")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    args = parser.parse_args(argv)
    rng = random.Random(16)
    with seeded(1, name="metricsgrowth") as (env, targets), server(server_env(env, targets)) as base:
        url = urlsplit(base)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        # Answer each shape of request once, so "before" already holds its bounded series.
        for path in PATHS:
            send(host, port, b"WARMUP", path)
        size0, ms0, lines0 = scrape(base)
        started = time.monotonic()
        sent = 0
        statuses: dict[bytes, int] = {}
        while sent < args.requests and time.monotonic() - started < TIME_LIMIT_S:
            method = bytes(rng.choices(TOKEN_BYTES, k=rng.randint(1, 100)))
            status = send(host, port, method, PATHS[sent % len(PATHS)])[9:12]
            statuses[status] = statuses.get(status, 0) + 1
            sent += 1
        elapsed = time.monotonic() - started
        size1, ms1, lines1 = scrape(base)
    answers = ", ".join(f"{s.decode() or 'none'}: {n}" for s, n in sorted(statuses.items()))
    return (f"{sent} requests with random methods in {elapsed:.1f}s (answers {answers})\n"
            f"| | /metrics bytes | lines | generation ms (median of {SCRAPES}) |\n|---|---|---|---|\n"
            f"| before | {size0:,} | {lines0:,} | {ms0:.1f} |\n"
            f"| after | {size1:,} | {lines1:,} | {ms1:.1f} |\n"
            f"| after / before | {size1 / size0:.3f} | {lines1 - lines0:+d} lines | {ms1 / ms0:.2f} |")


if __name__ == "__main__":
    print(main())
