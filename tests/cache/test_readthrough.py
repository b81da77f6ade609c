"""Read-through behaviour against the private Redis: hits, freshness windows, single flight."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from cache.freshness import Freshness
from cache.keys import FORMAT_VERSION
from cache.readthrough import RedisCache
from federation.codec import Codec
from federation.errors import SourceFailed
from tests.cache.conftest import MakeCache
from tests.cache.support import Loader


def _recording(event: str) -> Callable[[Recorder, str], None]:
    def record(self: Recorder, source: str) -> None:
        self.events.append((event, source))
    return record


class Recorder:
    """A CacheObserver that records (event, source) pairs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    hit = _recording("hit")
    miss = _recording("miss")
    stale = _recording("stale")
    bypass = _recording("bypass")
    singleflight_wait = _recording("singleflight_wait")
    oversize = _recording("oversize")


class Clock:
    """The cache's wall clock, which a test moves ahead instead of sleeping past a freshness window."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


def short(ttl: float = 0.3, swr: float = 0.0, sie: float = 0.0) -> dict[str, Freshness]:
    return {"warehouse": Freshness(ttl=ttl, stale_while_revalidate=swr, stale_if_error=sie)}


async def _stored_then_aged(make_cache: MakeCache, freshness: dict[str, Freshness], value: str,
                            ahead: float) -> tuple[RedisCache, Loader]:
    """A cache holding ``value`` under "k", loaded once, with its clock then moved ``ahead`` seconds on."""
    clock = Clock()
    cache = make_cache(freshness, clock=clock)
    load = Loader(value)
    await cache.fetch("warehouse", "k", (), load)
    clock.ahead = ahead
    return cache, load


async def eventually(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_miss_then_hit(cache: RedisCache) -> None:
    """The first fetch loads and stores; the second is served from Redis without loading."""
    load = Loader({"sku": "WH-000001", "on_hand": 3})
    first = await cache.fetch("warehouse", "stock:1", ("WH-000001",), load)
    second = await cache.fetch("warehouse", "stock:1", ("WH-000001",), load)
    assert (first.state, first.value, first.error) == ("miss", load.value, None)
    assert (second.state, second.value, second.ttl) == ("hit", load.value, 30)
    assert 0 <= second.age_s < 1
    assert load.calls == 1
    assert (cache.state()["hits"], cache.state()["misses"]) == (1, 1)


async def test_entry_key_is_versioned_and_kept_for_ttl_plus_longest_stale_window(
        cache: RedisCache, redis: Redis, namespace: str) -> None:
    """The entry lives at <namespace>:v<format>:<source>:<key> with a Redis TTL of ttl + max(swr, sie)."""
    await cache.fetch("warehouse", "item:7", (), Loader())
    ttl_ms = await redis.pttl(f"{namespace}:v{FORMAT_VERSION}:warehouse:item:7")
    assert 89_000 < ttl_ms <= 90_000


async def test_stale_while_revalidate_serves_stale_and_refreshes_once(make_cache: MakeCache) -> None:
    """Past the TTL but within SWR, every fetch gets the old value at once and one background load refreshes it."""
    cache, load = await _stored_then_aged(make_cache, short(ttl=0.3, swr=30), "old", ahead=10 * 0.3)
    load.value, load.gate = "new", asyncio.Event()
    served = await asyncio.gather(*(cache.fetch("warehouse", "k", (), load) for _ in range(20)))
    served.append(await cache.fetch("warehouse", "k", (), load))
    assert {(c.state, c.value, c.error) for c in served} == {("stale", "old", None)}
    assert all(c.age_s >= 0.3 for c in served)
    await eventually(lambda: load.calls == 2)
    load.gate.set()
    await eventually(lambda: not cache._flights.running(cache._keys.entry("warehouse", "k")))
    after = await cache.fetch("warehouse", "k", (), load)
    assert (after.state, after.value) == ("hit", "new")
    assert load.calls == 2
    assert (cache.state()["stale"], cache.state()["refreshes"]) == (21, 1)


async def test_stale_if_error_serves_last_good_value_with_the_reason(make_cache: MakeCache) -> None:
    """Past the TTL, a load failing with SourceFailed yields the old value as stale with the failure's reason."""
    cache, load = await _stored_then_aged(make_cache, short(ttl=0.2, sie=30), "good", ahead=10 * 0.2)
    load.error = "timeout"
    cached = await cache.fetch("warehouse", "k", (), load)
    assert (cached.state, cached.value, cached.error) == ("stale", "good", "timeout")
    assert cached.age_s >= 0.2
    assert load.calls == 2


async def test_past_stale_if_error_the_source_failure_propagates(make_cache: MakeCache) -> None:
    """Once an entry is older than ttl + stale-if-error, the load's SourceFailed reaches the caller."""
    cache, load = await _stored_then_aged(make_cache, short(ttl=1, sie=5), "good", ahead=10 * (1 + 5))
    load.error = "circuit open"
    with pytest.raises(SourceFailed) as caught:
        await cache.fetch("warehouse", "k", (), load)
    assert caught.value.reason == "circuit open"


async def test_cold_miss_without_a_stored_value_propagates_the_failure(cache: RedisCache) -> None:
    """With nothing stored, a failing load's SourceFailed is raised unchanged."""
    load = Loader()
    load.error = "unreachable"
    with pytest.raises(SourceFailed):
        await cache.fetch("warehouse", "nothing", (), load)


async def test_single_flight_in_one_process(cache: RedisCache) -> None:
    """A hundred concurrent fetches of one cold key cause exactly one load and all get its value."""
    load = Loader(["a", "b"], delay=0.1)
    served = await asyncio.gather(*(cache.fetch("warehouse", "cold", (), load) for _ in range(100)))
    assert load.calls == 1, cache.state()
    assert all(c.value == ["a", "b"] for c in served)
    assert Counter(c.state for c in served) == {"miss": 100}
    assert cache.state()["singleflight_waits"] == 99


async def test_single_flight_with_an_instant_loader(cache: RedisCache) -> None:
    """Even when the load finishes before the other fetches read Redis, the cold key is loaded once."""
    load = Loader("x")
    served = await asyncio.gather(*(cache.fetch("warehouse", "instant", (), load) for _ in range(100)))
    assert load.calls == 1, cache.state()
    assert {c.value for c in served} == {"x"}


async def test_oversize_values_are_served_but_not_stored(make_cache: MakeCache) -> None:
    """A value encoding to more than max_bytes is returned but not cached, and counted."""
    recorder = Recorder()
    cache = make_cache(short(ttl=30), max_bytes=1000, observer=recorder)
    load = Loader("x" * 2000)
    assert (await cache.fetch("warehouse", "big", (), load)).value == load.value
    assert (await cache.fetch("warehouse", "big", (), load)).state == "miss"
    assert load.calls == 2
    assert cache.state()["oversize"] == 2
    assert ("oversize", "warehouse") in recorder.events


async def test_uncacheable_values_are_served_but_not_stored(cache: RedisCache) -> None:
    """A value the codec refuses is still returned, never pickled, and counted as uncacheable."""
    load = Loader({1, 2})
    assert (await cache.fetch("warehouse", "set", (), load)).value == {1, 2}
    assert cache.state()["uncacheable"] == 1


async def test_observer_and_state_report_each_outcome_by_source(make_cache: MakeCache) -> None:
    """The observer hears miss, singleflight_wait, hit and stale by source, and state() counts them."""
    recorder = Recorder()
    clock = Clock()
    cache = make_cache({**short(ttl=0.2, swr=30), "sales": Freshness(30, 0, 0)}, observer=recorder, clock=clock)
    await asyncio.gather(*(cache.fetch("sales", "k", (), Loader(delay=0.05)) for _ in range(2)))
    await cache.fetch("sales", "k", (), Loader())
    await cache.fetch("warehouse", "k", (), Loader())
    clock.ahead = 10 * 0.2
    await cache.fetch("warehouse", "k", (), Loader())
    assert Counter(recorder.events) == {("miss", "sales"): 2, ("singleflight_wait", "sales"): 1,
                                        ("hit", "sales"): 1, ("miss", "warehouse"): 1, ("stale", "warehouse"): 1}
    state = cache.state()
    assert (state["up"], state["last_error"], state["hits"], state["misses"], state["stale"],
            state["bypass"]) == (True, None, 1, 3, 1, 0)
    await cache.ping()


async def test_unknown_source_and_reserved_names_are_refused(cache: RedisCache, redis: Redis) -> None:
    """Fetching for a source without freshness is a KeyError; a source named like a key kind is refused."""
    with pytest.raises(KeyError):
        await cache.fetch("nowhere", "k", (), Loader())
    with pytest.raises(ValueError, match="reserved"):
        RedisCache(redis, {"tag": Freshness(1, 0, 0)}, codec=Codec())
