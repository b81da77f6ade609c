"""Invalidation by tag, key and source drops exactly the right entries."""

from __future__ import annotations

import asyncio

from cache.readthrough import RedisCache
from tests.cache.support import Loader


async def _states(cache: RedisCache, entries: dict[tuple[str, str], tuple[str, ...]]) -> dict[str, str]:
    result = {}
    for (source, key), tags in entries.items():
        result[key] = (await cache.fetch(source, key, tags, Loader())).state
    return result


ENTRIES = {
    ("warehouse", "stock:a"): ("WH-000001",),
    ("warehouse", "stock:ab"): ("WH-000001", "WH-000002"),
    ("sales", "order:1"): ("SO-1", "WH-000002", "customer:5"),
    ("sales", "order:2"): ("SO-2", "customer:6"),
    ("warehouse", "stock:c"): ("WH-000003",),
}


async def test_invalidate_tags_drops_only_the_tagged_keys(cache: RedisCache) -> None:
    """Dropping one SKU tag removes the entries stored under it, in any source, and no others."""
    await _states(cache, ENTRIES)
    assert await cache.invalidate_tags(["WH-000002"]) == 2
    assert await _states(cache, ENTRIES) == {
        "stock:a": "hit", "stock:ab": "miss", "order:1": "miss", "order:2": "hit", "stock:c": "hit"}


async def test_invalidate_several_tags_counts_each_entry_once(cache: RedisCache) -> None:
    """Tags sharing entries drop each entry once, and an unknown tag drops nothing."""
    await _states(cache, ENTRIES)
    assert await cache.invalidate_tags(["WH-000001", "WH-000002", "customer:6"]) == 4
    assert await cache.invalidate_tags(["nobody"]) == 0
    assert await _states(cache, ENTRIES) == {
        "stock:a": "miss", "stock:ab": "miss", "order:1": "miss", "order:2": "miss", "stock:c": "hit"}


async def test_invalidate_key_drops_one_entry(cache: RedisCache) -> None:
    """Dropping one key returns 1 and leaves its neighbours alone; dropping it again returns 0."""
    await _states(cache, ENTRIES)
    assert await cache.invalidate_key("sales", "order:1") == 1
    assert await cache.invalidate_key("sales", "order:1") == 0
    states = await _states(cache, ENTRIES)
    assert states.pop("order:1") == "miss"
    assert set(states.values()) == {"hit"}


async def test_invalidate_source_drops_all_of_one_source(cache: RedisCache) -> None:
    """Dropping a source removes every entry of that source and none of the others."""
    await _states(cache, ENTRIES)
    assert await cache.invalidate_source("warehouse") == 3
    assert await _states(cache, ENTRIES) == {
        "stock:a": "miss", "stock:ab": "miss", "order:1": "hit", "order:2": "hit", "stock:c": "miss"}


async def test_a_load_overtaken_by_an_invalidation_is_not_stored(cache: RedisCache) -> None:
    """A value loaded before a tag's invalidation is returned to its caller but not cached afterwards."""
    slow = Loader("before the change")
    slow.gate = asyncio.Event()
    pending = asyncio.create_task(cache.fetch("warehouse", "stock:x", ("WH-000009",), slow))
    await slow.started.wait()
    await cache.invalidate_tags(["WH-000009"])
    slow.gate.set()
    assert (await pending).value == "before the change"
    after = await cache.fetch("warehouse", "stock:x", ("WH-000009",), Loader("after the change"))
    assert (after.state, after.value) == ("miss", "after the change")
    assert cache.state()["overtaken"] == 1


async def test_invalidate_key_and_source_also_stop_loads_in_flight(cache: RedisCache) -> None:
    """Key and source invalidations during a load keep its result out of the cache too."""
    for invalidate in (lambda: cache.invalidate_key("sales", "q"), lambda: cache.invalidate_source("sales")):
        slow = Loader("old")
        slow.gate = asyncio.Event()
        pending = asyncio.create_task(cache.fetch("sales", "q", (), slow))
        await slow.started.wait()
        await invalidate()
        slow.gate.set()
        await pending
        assert (await cache.fetch("sales", "q", (), Loader("new"))).state == "miss"
        await cache.invalidate_key("sales", "q")
