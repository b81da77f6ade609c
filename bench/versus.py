"""The cached hit path of this checkout against an earlier commit, side by side with both ceilings.

Run: ``python -m bench.versus --commit <sha>``. The earlier commit is checked out into a temporary
git worktree and served from there (same virtualenv, same databases, same Redis); every server
runs at once and wrk drives them in interleaved rounds, keeping each one's best.
"""

from __future__ import annotations

import argparse
import contextlib

from bench.harness import best, interleaved, seeded, server, spread, table, worktree
from bench.hotpath import bench_redis, cached_env, hot_paths, start_ceiling, warm_up


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commit", required=True, help="the earlier commit to compare with")
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with seeded(1, name="versus") as (env, targets), worktree(args.commit) as tree:
        redis_url, client = bench_redis(env)
        senv = cached_env(env, targets, redis_url)
        with contextlib.ExitStack() as running:
            bases = {"this checkout": running.enter_context(server(senv)),
                     f"{args.commit[:10]}": running.enter_context(server(senv, code=tree))}
            paths = hot_paths(bases["this checkout"], 50)
            warm_up(client, bases.values(), paths)
            for source in ("redis", "memory"):
                bases[f"ceiling ({source})"] = start_ceiling(running, senv, redis_url, source)
            runs = interleaved(bases, paths, rounds=args.rounds, seconds=args.seconds)
        client.flushdb()
    found = {name: best(r) for name, r in runs.items()}
    report = table(f"Cached GET /v1/products/{{sku}}, this checkout vs {args.commit[:10]}, 1 worker, wrk 1 thread "
                   f"32 connections, best of {args.rounds} interleaved {args.seconds} s runs", list(found.values()))
    report += "\nreq/s over the rounds: " + "; ".join(f"{name}: {spread(r)}" for name, r in runs.items()) + "\n\n"
    now, then = found["this checkout"], found[args.commit[:10]]
    for name, result in (("this checkout", now), (args.commit[:10], then)):
        report += (f"- {name}: {result.requests_per_s / found['ceiling (redis)'].requests_per_s:.2f}x ceiling (a), "
                   f"{result.requests_per_s / found['ceiling (memory)'].requests_per_s:.2f}x ceiling (b)\n")
    report += f"- this checkout / {args.commit[:10]}: **{now.requests_per_s / then.requests_per_s:.2f}x**\n"
    print(report)
    return report


if __name__ == "__main__":
    main()
