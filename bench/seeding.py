"""How long seeding takes: ``seed()`` into throw-away ``*_seedbench`` databases, at each scale in turn.

Run: ``python -m bench.seeding [--scales 1,100] [--runs 1] [--seed 42]``. Prints the machine and server
versions, a table of rows, generation and total time and peak memory per run, the rows per table and
each table's load time (the three systems load in parallel threads, so those overlap).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pyodbc

from bench.harness import md_table
from deploy.legacy.schema import LegacyTargets, drop_all
from deploy.legacy.seed import seed
from deploy.local import stack

TABLE_LINE = re.compile(r"^seed: (\w+)\.(\w+): [\d,]+ rows in ([\d.]+)s$")
GENERATED = re.compile(r"^seed: generated .* in ([\d.]+)s$")


def machine(targets: LegacyTargets) -> str:
    """CPU, memory, OS and the versions of what seeding talks to, as this machine reports them."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))
    with psycopg.connect(targets.warehouse_dsn) as pg:
        pg_version = pg.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    with pyodbc.connect(targets.accounting_odbc, timeout=10) as odbc:
        my_version = odbc.execute("SELECT VERSION()").fetchone()[0]
        driver = f"{odbc.getinfo(pyodbc.SQL_DRIVER_NAME)} {odbc.getinfo(pyodbc.SQL_DRIVER_VER)}"
    os_name = platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem_kb / 1024 / 1024:.0f} GB RAM, {os_name}; PostgreSQL {pg_version}, "
            f"MariaDB {my_version}, ODBC driver {driver}, pyodbc {pyodbc.version}, psycopg {psycopg.__version__}, "
            f"Python {platform.python_version()}")


@dataclass(frozen=True)
class SeedRun:
    scale: int
    counts: dict[str, int]
    generate_s: float
    total_s: float
    tables_s: dict[str, float]      # system.table -> its load time
    load: tuple[float, float]       # load average before and after
    rss_mb: float                   # this process's peak so far: the generated rows sit in memory while they load


def one_run(targets: LegacyTargets, scale: int, seed_value: int) -> SeedRun:
    lines: list[str] = []
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    counts = seed(targets, scale, seed_value, log=lines.append)
    total = time.perf_counter() - started
    generated = next(float(m.group(1)) for line in lines if (m := GENERATED.match(line)))
    tables = {f"{m.group(1)}.{m.group(2)}": float(m.group(3)) for line in lines if (m := TABLE_LINE.match(line))}
    return SeedRun(scale, counts, generated, total, tables, (load_before, os.getloadavg()[0]),
                   resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", default="1,100")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    targets = LegacyTargets.from_env(stack.up()).renamed("seedbench")
    runs: list[SeedRun] = []
    try:
        for scale in (int(s) for s in args.scales.split(",")):
            for _ in range(args.runs):
                runs.append(one_run(targets, scale, args.seed))
                print(f"bench: seeded scale {scale} in {runs[-1].total_s:.1f}s", flush=True)
        about = machine(targets)
    finally:
        drop_all(targets)
    report = f"\nMachine: {about}.\n\n" + md_table(
        ["scale", "rows", "generate", "total (generate + recreate + load + ANALYZE)", "peak RSS so far",
         "load average before → after"],
        [[str(r.scale), f"{sum(r.counts.values()):,}", f"{r.generate_s:.1f} s", f"{r.total_s:.1f} s",
          f"{r.rss_mb:.0f} MB", f"{r.load[0]:.1f} → {r.load[1]:.1f}"] for r in runs]) + "\n"
    by_scale: dict[int, list[SeedRun]] = defaultdict(list)
    for r in runs:
        by_scale[r.scale].append(r)
    for scale, same in by_scale.items():
        report += (f"\nRows per table at scale {scale}: "
                   + ", ".join(f"`{t}` {n:,}" for t, n in same[0].counts.items()) + "\n")
        loads: dict[str, list[float]] = defaultdict(list)
        for r in same:
            for table, seconds in r.tables_s.items():
                loads[table].append(seconds)
        report += (f"\nLoad time per table at scale {scale} (median of {len(same)} run(s)): "
                   + ", ".join(f"`{t}` {statistics.median(s):.1f} s" for t, s in sorted(loads.items())) + "\n")
    print(report)
    return report


if __name__ == "__main__":
    main()
