"""Single flight across processes: replicas share one load of a cold key through a Redis lock."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from redis.asyncio import Redis

from cache.keys import FORMAT_VERSION
from tests.cache.conftest import MakeCache
from tests.cache.support import Loader

REPO = Path(__file__).resolve().parents[2]


async def test_two_processes_hammering_a_cold_key_load_it_once(redis_url: str, redis: Redis, namespace: str) -> None:
    """Two processes fetching one cold key 50 times each, at the same instant, cause one load in total."""
    counter, ready = f"{namespace}:loads", f"{namespace}:ready"
    procs = [subprocess.Popen([sys.executable, "-m", "tests.cache.hammer", redis_url, namespace, counter, ready,
                               "2", "50"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        outputs.append(json.loads(out))
    assert int(await redis.get(counter) or 0) == 1, outputs
    assert all(o["values"] == ["loaded once"] for o in outputs)
    states = sorted(tuple(sorted(o["states"].items())) for o in outputs)
    # One process loaded (all its fetches shared that load); the other waited for it and read it from Redis.
    assert states == [(("hit", 50),), (("miss", 50),)]
    # ... having found the lock held: it came while the load ran, not after the value was stored.
    waiter = next(o for o in outputs if "hit" in o["states"])
    assert waiter["cache"]["singleflight_waits"] >= 1, waiter


async def test_a_lock_held_by_a_silent_holder_delays_the_fill_only_by_the_wait(
        make_cache: MakeCache, redis: Redis, namespace: str) -> None:
    """If another replica holds the key's lock and never stores, the fetch loads by itself after `wait`."""
    await redis.set(f"{namespace}:v{FORMAT_VERSION}:lock:warehouse:k", "someone else", px=10_000)
    wait = 0.3
    cache = make_cache(wait=wait)
    load = Loader("mine")
    started = time.monotonic()
    cached = await cache.fetch("warehouse", "k", (), load)
    assert wait <= time.monotonic() - started < 10 * wait
    assert (cached.state, cached.value, load.calls) == ("miss", "mine", 1)
    assert cache.state()["singleflight_waits"] == 1
    assert (await cache.fetch("warehouse", "k", (), load)).state == "hit"


async def test_a_holder_that_fails_hands_the_load_to_a_waiter(make_cache: MakeCache, redis: Redis,
                                                              namespace: str) -> None:
    """When the lock is released without a value (the holder's load failed), a waiter takes the lock and loads."""
    lock = f"{namespace}:v{FORMAT_VERSION}:lock:warehouse:k"
    await redis.set(lock, "failing holder", px=10_000)
    cache = make_cache(wait=5.0)
    load = Loader("mine")
    pending = asyncio.create_task(cache.fetch("warehouse", "k", (), load))
    deadline = time.monotonic() + 10.0
    while cache.state()["singleflight_waits"] == 0:   # the fetch found the lock held and waits for its holder
        assert time.monotonic() < deadline, "the fetch never started waiting for the lock's holder"
        await asyncio.sleep(0.01)
    assert load.calls == 0
    started = time.monotonic()
    await redis.delete(lock)
    cached = await pending
    # The waiter polls the lock at most 0.1 s apart (cache/readthrough.py), not for the whole 5 s wait.
    assert time.monotonic() - started < 10 * 0.1
    assert (cached.state, cached.value, load.calls) == ("miss", "mine", 1)
