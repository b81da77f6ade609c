"""Issue 18 benchmark: bizfed's cold (uncached) reads side by side with a hand-written app.

Run: ``make bench-cold`` or ``python -m bench.cold [--scale N] [--seconds S] [--rounds R]``.

Both servers, one worker each, are up at once on the same seeded databases: bizfed with the cache
off, and ``bench.naive`` (the same statements on the same drivers, no cache and no policy). Before
any load, both answer a few ids of every route and their ``data`` must be equal, or the bench fails:
the naive app may not win by doing less. wrk then drives them in turn, route by route. Last, py-spy
samples bizfed under the order route, and the samples are summed by package.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import linecache
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import fanout
from bench.harness import (
    ADMIN,
    ROOT,
    LoadResult,
    cpu_seconds,
    interleaved,
    md_table,
    seeded,
    server,
    server_env,
    spread,
    wrk,
)

AUTH = {"Authorization": f"Bearer {ADMIN}"}
CHECKED_IDS = 5   # of each route, compared field by field before any load


class AnswersDiffer(RuntimeError):
    """The naive app and bizfed answered one path with different data."""


def _get(base: str, path: str) -> Any:
    response = httpx.get(base + path, headers=AUTH, timeout=30)
    response.raise_for_status()
    return response.json()


def paths(base: str, orders: int, customers: int) -> dict[str, list[str]]:
    """The paths each route is driven over: distinct orders and customers, one product page."""
    nos = [o["order_no"] for o in _get(base, f"/v1/orders?limit={orders}")["data"]]
    ids = [c["id"] for c in _get(base, f"/v1/customers?limit={customers}")["data"]]
    if len(nos) < orders or len(ids) < customers:
        raise RuntimeError(f"the seed has {len(nos)} orders and {len(ids)} customers; {orders} and {customers} wanted")
    return {"GET /v1/orders/{no}": [f"/v1/orders/{no}" for no in nos],
            "GET /v1/products?limit=100": ["/v1/products?limit=100"],
            "GET /v1/customers/{id}": [f"/v1/customers/{i}" for i in ids]}


def _differences(naive: Any, bizfed: Any, where: str = "data") -> list[str]:
    if isinstance(naive, dict) and isinstance(bizfed, dict):
        out = [f"{where}.{k}: only in {'naive' if k in naive else 'bizfed'}" for k in naive.keys() ^ bizfed.keys()]
        for key in naive.keys() & bizfed.keys():
            out += _differences(naive[key], bizfed[key], f"{where}.{key}")
        return out
    if isinstance(naive, list) and isinstance(bizfed, list):
        if len(naive) != len(bizfed):
            return [f"{where}: {len(naive)} items in naive, {len(bizfed)} in bizfed"]
        pairs = enumerate(zip(naive, bizfed, strict=True))
        return [d for i, (a, b) in pairs for d in _differences(a, b, f"{where}[{i}]")]
    return [] if naive == bizfed else [f"{where}: naive {naive!r}, bizfed {bizfed!r}"]


def check_same_data(naive: str, bizfed: str, routes: Mapping[str, list[str]]) -> int:
    """Every field of ``data`` equal in both answers for the first ids of each route; the count compared."""
    compared = 0
    for route, route_paths in routes.items():
        for path in route_paths[:CHECKED_IDS]:
            found = _differences(_get(naive, path)["data"], _get(bizfed, path)["data"])
            if found:
                raise AnswersDiffer(f"{route}: {path} differs: " + "; ".join(found[:10]))
            compared += 1
    return compared


def listening_pid(base: str) -> int:
    """The pid of the process listening on ``base``'s port (bizfed serves one worker in one process)."""
    port = base.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    pids = set(re.findall(r"pid=(\d+)", out))
    if len(pids) != 1:
        raise RuntimeError(f"expected one process listening on port {port}, found {sorted(pids) or 'none'}")
    return int(pids.pop())


@dataclass(frozen=True)
class Profile:
    samples: int
    busy: float                       # CPU seconds of the process over wall seconds, while sampled
    own: dict[str, int]               # package -> samples with its frame on top of the stack
    inclusive: dict[str, int]         # package -> samples with a frame of it anywhere on the stack
    frames: list[tuple[str, str, int]]  # (frame, package, own samples), most first
    threads: dict[str, int]           # thread name (a pool's threads as one) -> samples


def package_of(frame: str) -> str:
    """The package a py-spy frame (``function (path:line)``) belongs to."""
    match = re.search(r"\((.*?)(?::\d+)?\)$", frame)
    path = match.group(1) if match else frame
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    root = str(ROOT) + "/"
    if path.startswith(root):
        return "bizfed " + path.removeprefix(root).split("/", 1)[0]
    parts = path.split("/")
    if "asyncio" in parts:
        return "asyncio"
    if re.search(r"/python3\.\d+/", path) or path.startswith("<frozen"):
        return f"stdlib {parts[-1].removesuffix('.py')}"
    if "/" not in path and not path.startswith("<"):
        return "sanic"   # Sanic's touchup recompiles some of its methods with the method's name as the file
    return path


def profile(pid: int, seconds: int, drive: Callable[[], object]) -> Profile:
    """py-spy samples of ``pid`` while ``drive()`` loads it: the thread holding the GIL at each sample.

    One worker serves every request on one event loop, so what holds the GIL is what bounds its
    throughput; a thread waiting (the loop in epoll, an Accounting worker blocked in the ODBC driver,
    which releases the GIL) is left out. Python frames only: a frame that calls into C code holding the
    GIL (asyncmy's Cython, uvloop's loop under Sanic's ``_run_server_forever``) carries that code's time.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "profile.txt")
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
                                "--format", "raw", "--output", str(out), "--duration", str(seconds), "--rate", "200",
                                "--nonblocking", "--gil", "--threads", "--full-filenames"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        loader = threading.Thread(target=drive)
        time.sleep(0.5)   # py-spy attached before the load begins
        cpu, wall = cpu_seconds(pid), time.monotonic()
        loader.start()
        _, err = spy.communicate(timeout=seconds + 60)
        busy = (cpu_seconds(pid) - cpu) / (time.monotonic() - wall)
        loader.join()
        if spy.returncode != 0 or not out.exists():
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-2000:]}")
        lines = out.read_text().splitlines()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    frames: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        thread, _, rest = stack.partition(";")
        if not rest:
            continue   # a thread with no Python frame on its stack
        n = int(count)
        total += n
        # "thread (tid): name"; a pool's threads are numbered, "bizfed-acct_0" or "bizfed-acct-9", ...
        threads[re.sub(r"[-_]\d+$", "", thread.split(": ", 1)[-1])] += n
        stack_frames = rest.split(";")
        leaf = stack_frames[-1]
        frames[leaf] += n
        own[package_of(leaf)] += n
        for package in {package_of(f) for f in stack_frames}:
            inclusive[package] += n
    return Profile(total, busy, dict(own), dict(inclusive),
                   [(frame, package_of(frame), n) for frame, n in frames.most_common()], dict(threads))


def profile_text(prof: Profile, top: int = 15) -> str:
    def pct(n: int) -> str:
        return f"{100 * n / prof.samples:.1f} %"

    packages = sorted(prof.inclusive, key=lambda p: (-prof.own.get(p, 0), -prof.inclusive[p]))
    by_package = md_table(["package", "own time", "on the stack"],
                          [[p, pct(prof.own.get(p, 0)), pct(prof.inclusive[p])] for p in packages[:top]], "l r r")
    by_frame = md_table(["frame (own time)", "package", "own time", "the line"],
                        [[f"`{_short(frame)}`", package, pct(n), _code(frame)]
                         for frame, package, n in prof.frames[:top]],
                        "l l r l")
    split = ", ".join(f"{name} {pct(n)}" for name, n in sorted(prof.threads.items(), key=lambda kv: -kv[1]))
    return (f"{prof.samples} samples of bizfed's process holding the GIL (py-spy `--gil`); the process was "
            f"{100 * prof.busy:.0f} % busy (CPU seconds / wall seconds) while sampled. Samples by thread: {split}.\n\n"
            f"By package (own time: the frame on top of the stack; on the stack: anywhere in it):\n\n{by_package}\n\n"
            f"Top {top} frames by own time:\n\n{by_frame}\n")


def _code(frame: str) -> str:
    """The source line a frame was at: a driver's C code (asyncmy's Cython, pyodbc) shows as the line calling it."""
    match = re.search(r"\((/.*):(\d+)\)$", frame)
    line = linecache.getline(match.group(1), int(match.group(2))).strip() if match else ""
    return f"`{line[:70]}`".replace("|", "\\|") if line else ""


def _short(frame: str) -> str:
    """``function (path:line)`` with the path cut to the package."""
    match = re.match(r"(.*) \((.*)\)$", frame)
    if not match:
        return frame
    function, path = match.groups()
    for marker in ("site-packages/", str(ROOT) + "/"):
        path = path.split(marker, 1)[-1]
    path = re.sub(r"^.*/python3\.\d+/", "", path)
    return f"{function} ({path})"


def cpu_cells(naive: list[LoadResult], bizfed: list[LoadResult]) -> list[str]:
    n = statistics.median(r.cpu_per_request or 0.0 for r in naive)
    b = statistics.median(r.cpu_per_request or 0.0 for r in bizfed)
    return [f"{n * 1000:.2f} / {b * 1000:.2f}", f"**{n / b:.2f}x**"]


def _median_rate(runs: list[LoadResult]) -> float | None:
    clean = [r.requests_per_s for r in runs if not r.errors]
    return statistics.median(clean) if clean else None


def route_row(route: str, naive: list[LoadResult], bizfed: list[LoadResult]) -> list[str]:
    n, b = _median_rate(naive), _median_rate(bizfed)
    ratio = f"**{b / n:.2f}x**" if n and b else "no run without failures"
    rounds = " / ".join(f"{y.requests_per_s / x.requests_per_s:.2f}x" for x, y in zip(naive, bizfed, strict=True)
                        if not (x.errors or y.errors))
    errors = [f"{name} {sum(r.errors for r in runs)}/{sum(r.requests for r in runs)}"
              for name, runs in (("naive", naive), ("bizfed", bizfed))]
    flagged = any(r.errors for r in naive + bizfed)
    return [route, f"{n:,.0f}" if n else "-", f"{b:,.0f}" if b else "-", ratio, rounds or "-",
            ", ".join(errors) + (" **(runs with failures left out)**" if flagged else "")]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=5, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs of each server per route")
    parser.add_argument("--orders", type=int, default=60, help="distinct orders the order route rotates over")
    parser.add_argument("--profile-seconds", type=int, default=10)
    args = parser.parse_args(argv)
    if args.orders < 50:
        parser.error("--orders must be at least 50")
    load_before = os.getloadavg()[0]
    with seeded(args.scale, name="cold") as (env, targets):
        senv = server_env(env, targets, BIZFED_CACHE="off")
        with contextlib.ExitStack() as running:
            bases = {"naive": running.enter_context(server(senv, module="bench.naive", args=("serve",))),
                     "bizfed": running.enter_context(server(senv))}
            routes = paths(bases["bizfed"], args.orders, 50)
            compared = check_same_data(bases["naive"], bases["bizfed"], routes)
            print(f"bench: naive and bizfed answered the same data for {compared} paths", flush=True)
            pids = {name: listening_pid(base) for name, base in bases.items()}
            results = {route: interleaved(bases, route_paths, rounds=args.rounds, seconds=args.seconds, pids=pids)
                       for route, route_paths in routes.items()}
            order_paths = routes["GET /v1/orders/{no}"]
            prof = profile(listening_pid(bases["bizfed"]), args.profile_seconds,
                           lambda: wrk("profiled", bases["bizfed"], order_paths, seconds=args.profile_seconds))
        nos = [p.rsplit("/", 1)[1] for p in order_paths[:50]]
        fan = fanout.run(senv, nos)
    load_after = os.getloadavg()[0]
    head = ["route", "naive req/s", "bizfed req/s", "bizfed / naive", "each round's ratio", "errors (failed/requests)"]
    rows = [route_row(route, runs["naive"], runs["bizfed"]) + cpu_cells(runs["naive"], runs["bizfed"])
            for route, runs in results.items()]
    head += ["CPU ms per request, naive / bizfed", "naive / bizfed CPU per request"]
    report = (f"\nCold reads (bizfed with BIZFED_CACHE=off) against the hand-written app, scale {args.scale}, one "
              f"worker each, both up at once; wrk 1 thread 32 connections, {args.rounds} interleaved {args.seconds} s "
              f"runs of each per route, median req/s of the runs without failures; the order route rotates over "
              f"{len(order_paths)} orders, the customer route over 50 customers. Both answered the same data for "
              f"{compared} paths (the first {CHECKED_IDS} of each route, every field of `data` compared) before "
              f"the load. Load average {load_before:.1f} before the run, {load_after:.1f} after it.\n\n"
              + md_table(head, rows, "l r r r l l r r") + "\n\nThe CPU columns are each server process's CPU "
              "seconds over a run divided by its requests (median of the rounds): a measure that other load on the "
              "machine disturbs less than throughput.\n\nreq/s over the rounds: "
              + "; ".join(f"{route} {name} {spread(r)}" for route, runs in results.items() for name, r in runs.items())
              + f"\n\nFan-out (`bench.fanout`, in-process, cache off): GET /v1/orders/{{no}} median "
              f"{fan['fanout_p50_ms']:.2f} ms vs the slowest single source call alone {fan['slowest_p50_ms']:.2f} ms: "
              f"**{fan['ratio_p50']:.2f}x** (median of per-order ratios, {len(nos)} orders x 3 rounds; "
              "target <= 1.5x). "
              f"Each source call alone, median ms: {fanout.singles_text(fan)}\n"
              f"\nProfile: py-spy (`record --format raw --gil --threads`, 200 Hz, non-blocking) on bizfed for "
              f"{args.profile_seconds} s "
              f"while wrk drives GET /v1/orders/{{no}}.\n\n" + profile_text(prof))
    print(report)
    return report


if __name__ == "__main__":
    main()
