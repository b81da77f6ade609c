"""Two commits measured by the same benchmarks, run after run: before, after, before, after.

Run: ``python -m bench.before_after --before <sha> [--after <sha>] [--rounds 2] [--only api_load,...]
[--keep DIR] [--write TITLE]``. Both commits are checked out into temporary git worktrees; the earlier one
gets the later one's ``bench/`` (and the bench tooling it lacks), so both are measured by the same code, and
every benchmark runs from inside its tree with ``PYTHONPATH`` on it, so each imports and serves that tree's
product alone (checked: each tree's ``api.__file__`` is printed). Each benchmark's figures are ratios
against a peer measured in the same run, read from its output; the spread between runs of one tree is the
noise a change must exceed. Prints a markdown section (``--write TITLE`` also puts it into BENCHMARKS.md
under ``## TITLE``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import ROOT, md_table, worktree

# Where this checkout's bench/ names a module an earlier tree kept elsewhere: (file, text, what stands there
# in the earlier tree, the module whose absence calls for it). Applied only where that module is missing.
BACKPORTS = (
    ("bench/connectors.py", "from federation.queries import", "from connectors.queries import",
     "federation/queries.py"),
    ("bench/fanout.py", "from api.wiring import build_policies, build_sources",
     "from api.app import build_connectors as build_sources\nfrom api.app import build_policies", "api/wiring.py"),
)
# Benchmark tooling outside bench/ (not on any request path), copied into an earlier tree that lacks it.
TOOLING = ("deploy/local/addresses.py",)


@dataclass(frozen=True)
class Figure:
    label: str
    peer: str
    pattern: str            # one group: the figure, as the benchmark prints it
    higher_is_better: bool


@dataclass(frozen=True)
class Bench:
    module: str
    args: tuple[str, ...]
    figures: tuple[Figure, ...]

    @property
    def command(self) -> str:
        return " ".join(["PYTHONPATH=$TREE", ".venv/bin/python", "-m", self.module, *self.args])


def _row(name: str) -> str:
    return r"^\| " + re.escape(name) + r" \| ([\d,.]+) \|"


BENCHES = {
    "api_load": Bench("bench.api_load", (), (
        Figure("fan-out of GET /v1/orders/{no}, in-process, loopback", "the slowest of its five source calls alone",
               r"^Fan-out: .*?\*\*([\d.]+)x\*\*", higher_is_better=False),
        Figure("the same with 5 ms added each way on every source connection", "the slowest source call alone",
               r"^With 5 ms .*?\*\*([\d.]+)x\*\*", higher_is_better=False),
        Figure("uncached GET /v1/orders/{no}, req/s", "none: absolute req/s",
               _row("GET /v1/orders/{no} (3 systems, cache off)"), higher_is_better=True),
        Figure("uncached GET /v1/products?limit=100, req/s", "none: absolute req/s",
               _row("GET /v1/products?limit=100 (cache off)"), higher_is_better=True),
    )),
    "cache_load": Bench("bench.cache_load", (), (
        Figure("cached GET /v1/products/{sku}, req/s, best of 5 interleaved rounds",
               "bare Sanic + one Redis GET of the same bytes", r"ceiling throughput: \*\*([\d.]+)x\*\*",
               higher_is_better=True),
    )),
    "outage": Bench("bench.outage", (), (
        Figure("reader routes' p99 with Accounting blackholed", "the same load, no fault, same server",
               r"p99 during the outage / without: \*\*([\d.]+)x\*\*", higher_is_better=False),
        Figure("reader routes' req/s with Accounting blackholed", "the same load, no fault, same server",
               r"; throughput ([\d.]+)x", higher_is_better=True),
    )),
    "mix": Bench("bench.mix", (), tuple(
        Figure(f"realistic mix at {n} connections, req/s", "none: absolute req/s", _row(f"{n} connections"),
               higher_is_better=True) for n in (8, 32, 128))),
    "metrics_growth": Bench("bench.metrics_growth", (), (
        Figure("/metrics bytes after 10,000 requests with random method tokens", "the same server's, before them",
               r"^\| after / before \| ([\d.]+) \|", higher_is_better=False),
        Figure("/metrics generation time after them", "the same server's, before them",
               r"^\| after / before \| [\d.]+ \| [+-]?\d+ lines \| ([\d.]+) \|", higher_is_better=False),
    )),
    "connectors": Bench("bench.connectors", ("--no-write",), tuple(
        Figure(f"{name}, rows/s, median of 3 runs", "the bare driver reading the same rows",
               re.escape(name) + r": median ratio over the runs ([\d.]+)", higher_is_better=True)
        for name in ("warehouse items (stock summed)", "sales orders (+ batched lines, totals)",
                     "accounting invoices (+ paid)"))),
}


# The request path's benchmarks, each a few minutes at most; the others on request (--only).
DEFAULT = ("api_load", "cache_load", "outage", "connectors")


def prepare(before: Path, after: Path) -> list[str]:
    """Give ``before`` the bench code of ``after``; what had to be adapted, one line each."""
    shutil.rmtree(before / "bench")
    shutil.copytree(after / "bench", before / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    notes = []
    for tool in TOOLING:
        if not (before / tool).exists():
            shutil.copy2(after / tool, before / tool)
            notes.append(f"`{tool}` copied in (benchmark tooling the earlier tree lacks)")
    for file, text, earlier, needs in BACKPORTS:
        if (before / needs).exists():
            continue
        path = before / file
        source = path.read_text()
        if text not in source:
            raise RuntimeError(f"backport for {file} no longer applies: {text!r} is not in it")
        path.write_text(source.replace(text, earlier))
        notes.append(f"`{file}`: `{text}` → `{' / '.join(earlier.splitlines())}` (no `{needs}` there)")
    return notes


def tree_env(tree: Path) -> dict[str, str]:
    # Every tree uses this checkout's local stack, wherever its own folder is.
    stack = os.environ.get("BIZFED_STACK_DIR", str(ROOT / ".stack"))
    return {**os.environ, "PYTHONPATH": str(tree), "BIZFED_STACK_DIR": str(Path(stack).resolve())}


def product_of(tree: Path) -> str:
    """Where the product a process started in ``tree`` imports lives; it must be the tree itself."""
    out = subprocess.run([sys.executable, "-c", "import api, cache, connectors, federation; print(api.__file__)"],
                         cwd=tree, env=tree_env(tree), capture_output=True, text=True, check=True).stdout.strip()
    if not Path(out).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"a process in {tree} imports the product from {out}")
    return out


def run(bench: Bench, tree: Path, keep: Path | None, tag: str) -> dict[str, Reading]:
    started, load = datetime.now(UTC), os.getloadavg()
    proc = subprocess.run([sys.executable, "-m", bench.module, *bench.args], cwd=tree, env=tree_env(tree),
                          capture_output=True, text=True, timeout=1800)
    took = (datetime.now(UTC) - started).total_seconds()
    about = (f"{tag}: {bench.module} in {tree} at {started:%H:%M:%S}, {took:.0f} s, exit {proc.returncode}; "
             f"load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    if keep is not None:
        (keep / f"{tag}.txt").write_text(about + "\n\n" + proc.stdout + proc.stderr)
    print(f"before_after: {about}", flush=True)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"{bench.module} failed in {tree}:\n{out[-3000:]}")
    found = {}
    for figure in bench.figures:
        match = re.search(figure.pattern, proc.stdout, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"{bench.module}: no {figure.label!r} in its output:\n{proc.stdout[-3000:]}")
        found[figure.label] = Reading.of(match.group(1))
    return found


@dataclass(frozen=True)
class Reading:
    """A figure as printed, and the smallest step it was printed in (2.53 -> 0.01)."""

    value: float
    step: float

    @classmethod
    def of(cls, text: str) -> Reading:
        digits = text.replace(",", "")
        decimals = len(digits.partition(".")[2])
        return cls(float(digits), 10.0 ** -decimals)


def spread(readings: list[Reading]) -> float:
    """The runs' range as a share of their mean, and never less than one printed step of it."""
    values = [r.value for r in readings]
    return max(max(values) - min(values), readings[0].step) / statistics.mean(values)


def verdict(figure: Figure, before: list[Reading], after: list[Reading]) -> tuple[float, float, str]:
    """(after / before, noise, verdict); noise is the larger spread between runs of one tree."""
    change = statistics.mean(r.value for r in after) / statistics.mean(r.value for r in before)
    noise = max(spread(before), spread(after))
    worse = (1 - change) if figure.higher_is_better else (change - 1)
    if abs(worse) <= noise:
        return change, noise, "within noise"
    return change, noise, ("**worse** beyond noise" if worse > 0 else "better beyond noise")


def report(benches: list[Bench], results: dict[str, dict[str, list[dict[str, Reading]]]], heads: dict[str, str],
           notes: list[str], products: dict[str, str], argv: list[str], load: tuple[float, float]) -> str:
    rounds = len(next(iter(results.values()))["before"])
    lines = [f"Command: `.venv/bin/python -m bench.before_after {' '.join(argv)}`. Before: {heads['before']}. "
             f"After: {heads['after']}.",
             "",
             "Both commits are checked out into temporary git worktrees ($TREE). Each benchmark runs "
             f"{rounds * 2} times, before and after in turn ({', '.join(['before, after'] * rounds)}), with the "
             "command beside it, from inside $TREE with the product of $TREE alone on the path (checked: "
             + "; ".join(f"{side} imports `$TREE/{path}`" for side, path in products.items())
             + "). The earlier tree is measured by the later tree's `bench/`: "
             + ("; ".join(notes) if notes else "nothing needed adapting") + ". A figure is a ratio against the "
             "peer named beside it, measured in the same run, except where the peer says none. Noise is the "
             "larger spread (range / mean) between the runs of one tree; a change within it is not a change.",
             ""]
    for bench in benches:
        runs = results[bench.module]
        lines += [f"`{bench.command}`", ""]
        rows = []
        moved: dict[str, list[str]] = {"worse": [], "better": []}
        for figure in bench.figures:
            before = [r[figure.label] for r in runs["before"]]
            after = [r[figure.label] for r in runs["after"]]
            change, noise, word = verdict(figure, before, after)
            for way, names in moved.items():
                if way in word:
                    names.append(f"{figure.label} ({change:.3f}×, noise ±{noise:.1%})")
            rows.append([figure.label, figure.peer, " / ".join(_shown(r) for r in before),
                         " / ".join(_shown(r) for r in after), f"{change:.3f}×", f"±{noise:.1%}", word])
        lines += [md_table(["figure", "peer", "before, each run", "after, each run", "after / before (means)",
                            "noise", "verdict"], rows), ""]
        if moved["worse"]:
            sentence = "Verdict: worse beyond noise: " + "; ".join(moved["worse"]) + "."
        elif moved["better"]:
            sentence = "Verdict: not worse beyond noise; better beyond it: " + "; ".join(moved["better"]) + "."
        else:
            sentence = ("Verdict: not worse beyond noise; every figure moved less than the spread between runs of "
                        "one tree.")
        lines += [sentence, ""]
    lines.append("Each run's whole output is kept with `--keep DIR`. "
                 f"Measured {datetime.now(UTC):%Y-%m-%d} on the shared development machine ({os.cpu_count()} CPUs, "
                 f"load average {load[0]:.1f} at the start and {load[1]:.1f} at the end).")
    return "\n".join(lines) + "\n"


def _shown(reading: Reading) -> str:
    decimals = max(0, -round(math.log10(reading.step)))
    return f"{reading.value:,.{decimals}f}"


def write_section(title: str, body: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text()
    section = f"## {title}\n\n{body}"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


def head(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h (%s)"], capture_output=True, text=True,
                          check=True).stdout.strip()


def main(argv: list[str] | None = None) -> str:
    args_in = argv if argv is not None else sys.argv[1:]
    parser = argparse.ArgumentParser(prog="python -m bench.before_after")
    parser.add_argument("--before", required=True, help="the earlier commit")
    parser.add_argument("--after", default="HEAD", help="the later commit (default HEAD)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each tree per benchmark")
    parser.add_argument("--only", default=",".join(DEFAULT), help="comma-separated benchmarks: " + ", ".join(BENCHES))
    parser.add_argument("--keep", metavar="DIR", help="keep every run's whole output in DIR")
    parser.add_argument("--write", metavar="TITLE", help="also write the section ## TITLE into BENCHMARKS.md")
    args = parser.parse_args(args_in)
    benches = [BENCHES[name] for name in args.only.split(",")]
    keep = Path(args.keep) if args.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    shas = {side: subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", commit], capture_output=True,
                                 text=True, check=True).stdout.strip()
            for side, commit in (("before", args.before), ("after", args.after))}
    load_start = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        trees = {side: stack.enter_context(worktree(sha)) for side, sha in shas.items()}
        notes = prepare(trees["before"], trees["after"])
        products = {side: str(Path(product_of(tree)).relative_to(tree)) for side, tree in trees.items()}
        for side, tree in trees.items():
            print(f"before_after: {side} = {head(tree)} in {tree}; imports {product_of(tree)}", flush=True)
        heads = {side: head(tree) for side, tree in trees.items()}
        results: dict[str, dict[str, list[dict[str, Reading]]]] = {}
        for bench in benches:
            runs: dict[str, list[dict[str, Reading]]] = {"before": [], "after": []}
            for n in range(args.rounds):
                for side, tree in trees.items():
                    runs[side].append(run(bench, tree, keep, f"{bench.module.removeprefix('bench.')}-{side}-{n + 1}"))
            results[bench.module] = runs
    body = report(benches, results, heads, notes, products, args_in, (load_start, os.getloadavg()[0]))
    print(body)
    if args.write:
        write_section(args.write, body)
    return body


if __name__ == "__main__":
    main()
