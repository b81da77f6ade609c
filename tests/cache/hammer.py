"""Run by test_processes: many concurrent fetches of one cold key from a separate process.

Usage: python -m tests.cache.hammer URL NAMESPACE COUNTER_KEY READY_KEY PARTIES FETCHES
Each process INCRs READY_KEY and starts once PARTIES have; prints the states seen and the cache's counters
as JSON. Each real load INCRs COUNTER_KEY in Redis, then takes LOAD_S.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

from cache.freshness import Freshness
from cache.readthrough import RedisCache
from cache.redis_client import make_redis
from federation.codec import Codec

LOAD_S = 1.0     # far longer than the processes' start skew (milliseconds), so the other one finds the lock held
READY_WAIT_S = 60.0


async def main(url: str, namespace: str, counter: str, ready: str, parties: int, fetches: int) -> None:
    # Patient timeouts: on a busy machine a timeout would mean a (correct) bypass load, not a test of the lock.
    redis = make_redis(url, timeout=2.0, connect_timeout=2.0, pool_timeout=2.0)
    cache = RedisCache(redis, {"warehouse": Freshness(30, 0, 0)}, codec=Codec(), namespace=namespace,
                       op_timeout=5.0)

    async def load() -> str:
        await redis.incr(counter)
        await asyncio.sleep(LOAD_S)
        return "loaded once"

    # Connected and ready: start together, however long each took to start up.
    await redis.incr(ready)
    deadline = time.monotonic() + READY_WAIT_S
    while int(await redis.get(ready) or 0) < parties:
        if time.monotonic() > deadline:
            raise SystemExit(f"the other processes were not ready within {READY_WAIT_S:.0f}s")
        await asyncio.sleep(0.005)
    served = await asyncio.gather(*(cache.fetch("warehouse", "cold", (), load) for _ in range(fetches)))
    print(json.dumps({"states": Counter(c.state for c in served), "values": sorted({c.value for c in served}),
                      "cache": cache.state()}))
    await cache.aclose()
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])))
