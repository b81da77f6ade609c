"""Run by test_processes: many concurrent fetches of one cold key from a separate process.

Usage: python -m tests.cache.hammer URL NAMESPACE COUNTER_KEY START_AT FETCHES
Prints the states seen as JSON; each real load INCRs COUNTER_KEY in Redis.
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


async def main(url: str, namespace: str, counter: str, start_at: float, fetches: int) -> None:
    # Patient timeouts: on a busy machine a timeout would mean a (correct) bypass load, not a test of the lock.
    redis = make_redis(url, timeout=2.0, connect_timeout=2.0, pool_timeout=2.0)
    cache = RedisCache(redis, {"warehouse": Freshness(30, 0, 0)}, codec=Codec(), namespace=namespace,
                       op_timeout=5.0)

    async def load() -> str:
        await redis.incr(counter)
        await asyncio.sleep(0.3)
        return "loaded once"

    await redis.ping()  # connect before the start line, so both processes race from the same instant
    await asyncio.sleep(max(0.0, start_at - time.time()))
    served = await asyncio.gather(*(cache.fetch("warehouse", "cold", (), load) for _ in range(fetches)))
    print(json.dumps({"states": Counter(c.state for c in served), "values": sorted({c.value for c in served}),
                      "cache": cache.state()}))
    await cache.aclose()
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])))
