"""The in-process first level: hot entries skip Redis, and an invalidation anywhere clears every worker's copy."""

from __future__ import annotations

import asyncio
import time

from cache.local import LocalCache
from cache.store import Entry
from tests.cache.conftest import MakeCache


class Loader:
    def __init__(self, value: object) -> None:
        self.value = value
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        return self.value


async def test_hot_entry_is_served_without_redis(make_cache: MakeCache, redis):
    """Within the local ttl a repeated fetch is a hit that sends Redis no command."""
    cache = make_cache(local=LocalCache(5.0))
    load = Loader({"a": 1})
    assert (await cache.fetch("sales", "k", (), load)).state == "miss"
    before = (await redis.info("commandstats")).get("cmdstat_get", {}).get("calls", 0)
    for _ in range(20):
        cached = await cache.fetch("sales", "k", (), load)
        assert cached.state == "hit"
        assert cached.value == {"a": 1}
    after = (await redis.info("commandstats")).get("cmdstat_get", {}).get("calls", 0)
    assert after == before
    assert load.calls == 1


async def test_invalidation_reaches_every_process_within_a_second(make_cache: MakeCache):
    """A tag dropped through one cache clears another cache's first level through pub/sub."""
    first, second = make_cache(local=LocalCache(60.0)), make_cache(local=LocalCache(60.0))
    follower = asyncio.create_task(second.follow_invalidations())
    try:
        await asyncio.sleep(0.2)
        await second.fetch("sales", "k", ("SO-1",), Loader("old"))
        assert (await second.fetch("sales", "k", ("SO-1",), Loader("unused"))).state == "hit"
        await first.invalidate_tags(["SO-1"])
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            cached = await second.fetch("sales", "k", ("SO-1",), Loader("new"))
            if cached.value == "new":
                break
            await asyncio.sleep(0.05)
        assert cached.value == "new"
        assert time.monotonic() - started < 1.5
    finally:
        follower.cancel()


def test_local_entries_expire_and_stay_bounded():
    """Entries leave after their ttl, and the oldest go first when the count or the bytes are full."""
    now = [0.0]
    local = LocalCache(ttl=1.0, max_entries=2, max_bytes=100, clock=lambda: now[0])
    local.put("a", Entry(1, 0.0), size=10)
    local.put("b", Entry(2, 0.0), size=10)
    local.put("c", Entry(3, 0.0), size=10)
    assert local.get("a") is None
    assert local.get("c") == Entry(3, 0.0)
    local.put("d", "big", size=90)   # 10 + 90 fit, 10 + 10 + 90 do not: b goes
    assert local.get("b") is None
    assert local.get("c") == Entry(3, 0.0)
    local.put("e", "too big", size=101)
    assert local.get("e") is None
    now[0] = 1.5
    assert local.get("c") is None
    assert len(local) == 1   # d, expired but not yet asked for
    local.put("short", "x", size=1, ttl=0.2)
    now[0] = 1.8
    assert local.get("short") is None


async def test_an_invalidation_by_tag_keeps_the_other_hot_entries_in_every_process(make_cache: MakeCache, redis):
    """Dropping one tag drops, here and in another process, only what was put under it: the rest of the first
    level keeps answering."""
    first, second = make_cache(local=LocalCache(60.0)), make_cache(local=LocalCache(60.0))
    follower = asyncio.create_task(second.follow_invalidations())
    try:
        await asyncio.sleep(0.2)
        for cache in (first, second):
            await cache.fetch("sales", "changed", ("order:SO-1",), Loader("old"))
            await cache.fetch("sales", "other", ("order:SO-2",), Loader("kept"))
        await first.invalidate_tags(["order:SO-1"])
        await asyncio.sleep(0.3)
        gets = (await redis.info("commandstats")).get("cmdstat_get", {}).get("calls", 0)
        for cache in (first, second):
            other = await cache.fetch("sales", "other", ("order:SO-2",), Loader("unused"))
            assert other.value == "kept"
            assert other.state == "hit"
        assert (await redis.info("commandstats")).get("cmdstat_get", {}).get("calls", 0) == gets   # from memory
        for cache in (first, second):
            assert (await cache.fetch("sales", "changed", ("order:SO-1",), Loader("new"))).value == "new"
    finally:
        follower.cancel()


def test_dropping_tags_forgets_them_and_keeps_the_byte_count() -> None:
    local = LocalCache(ttl=60.0)
    local.put("a", 1, size=10, tags=("sku:A", "list:warehouse"))
    local.put("b", 2, size=10, tags=("sku:B",))
    local.put("c", 3, size=10)
    local.drop_tags(["list:warehouse"])
    assert local.get("a") is None
    assert local.get("c") is None   # no tags: any invalidation may concern it
    assert local.get("b") == 2
    local.put("a", 4, size=5, tags=("sku:A",))
    local.drop_tags(["sku:B"])
    assert local.get("a") == 4
    assert len(local) == 1
    local.clear()
    local.drop_tags(["sku:A"])
    assert len(local) == 0
