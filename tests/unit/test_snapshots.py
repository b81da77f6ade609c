"""Which answers become snapshots, how long they live, and what a replay reports."""

from __future__ import annotations

from api.snapshots import Snapshots
from cache.local import LocalCache
from federation.context import RequestContext, SourceReport


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _ctx(**reports: SourceReport) -> RequestContext:
    ctx = RequestContext.start("reader", 5.0)
    for name, report in reports.items():
        ctx.record(name, report)
    return ctx


def _store(ttl: float = 1.0, max_bytes: int = 1 << 20,
           max_entry_bytes: int = 256 << 10) -> tuple[Snapshots, Clock, LocalCache]:
    """Snapshots kept in a first level of ``ttl`` seconds and ``max_bytes``, both on one clock."""
    clock = Clock()
    first_level = LocalCache(ttl, max_bytes=max_bytes, clock=clock)
    return Snapshots(first_level, max_entry_bytes=max_entry_bytes, clock=clock), clock, first_level


def test_fresh_answer_is_replayed_as_cache_hits_with_grown_ages() -> None:
    store, clock, _ = _store()
    ctx = _ctx(warehouse=SourceReport("ok", "miss", 0.0, None, 10.0), sales=SourceReport("ok", "hit", 4.0, None, 30.0))
    ctx.redact("std_cost")
    assert store.offer("k", b'{"sku":"WH-000001"}', 'W/"e"', ctx)
    clock.now += 0.5
    replayed = RequestContext.start("reader", 5.0)
    found = store.replay("k", replayed)
    assert found is not None
    assert found.payload.startswith(b'{"data":{"sku":"WH-000001"},"meta":')
    assert found.etag == 'W/"e"'
    assert found.headers["Age"] == "4"
    assert replayed.sources["warehouse"] == SourceReport("ok", "hit", 0.5, None, 10.0)
    assert replayed.sources["sales"] == SourceReport("ok", "hit", 4.5, None, 30.0)
    assert replayed.redacted == ["std_cost"]
    assert store.served == 1


def test_only_answers_whose_every_part_is_fresh_are_kept() -> None:
    store, _, first_level = _store()
    fresh = SourceReport("ok", "hit", 1.0, None, 10.0)
    refused = {
        "stale": SourceReport("ok", "stale", 12.0, None, 10.0),
        "stale-if-error": SourceReport("stale", "stale", 50.0, "timeout", 10.0),
        "unavailable": SourceReport("unavailable", "none", 0.0, "circuit open"),
        "uncached": SourceReport("ok", "none"),
        "bypass": SourceReport("ok", "bypass", 0.0, None, 10.0),
    }
    for name, report in refused.items():
        assert not store.offer(name, b"{}", 'W/"x"', _ctx(warehouse=fresh, sales=report)), name
    assert not store.offer("no-sources", b"{}", 'W/"x"', _ctx())
    assert len(first_level) == 0


def test_a_snapshot_lives_until_ttl_or_until_a_part_turns_stale() -> None:
    store, clock, first_level = _store(ttl=1.0)
    store.offer("long", b"{}", 'W/"a"', _ctx(warehouse=SourceReport("ok", "hit", 0.0, None, 10.0)))
    store.offer("short", b"{}", 'W/"b"', _ctx(warehouse=SourceReport("ok", "hit", 9.7, None, 10.0)))
    assert not store.offer("over", b"{}", 'W/"c"', _ctx(warehouse=SourceReport("ok", "hit", 10.0, None, 10.0)))
    clock.now += 0.31
    assert store.replay("short", RequestContext.start("reader", 5.0)) is None
    assert store.replay("long", RequestContext.start("reader", 5.0)) is not None
    clock.now += 0.7
    assert store.replay("long", RequestContext.start("reader", 5.0)) is None
    assert len(first_level) == 0


def test_a_clear_drops_every_snapshot_at_once() -> None:
    store, _, first_level = _store(ttl=60.0)
    for key in ("k", "j"):
        store.offer(key, b"{}", 'W/"a"', _ctx(warehouse=SourceReport("ok", "hit", 0.0, None, 600.0)))
    assert store.replay("k", RequestContext.start("reader", 5.0)) is not None
    first_level.clear()   # what an invalidation by source or key does, here or from another process
    assert store.replay("k", RequestContext.start("reader", 5.0)) is None
    assert store.replay("j", RequestContext.start("reader", 5.0)) is None


def test_an_invalidation_by_tag_drops_the_snapshots_made_of_those_parts_only() -> None:
    store, _, first_level = _store(ttl=60.0)
    fresh = SourceReport("ok", "hit", 0.0, None, 600.0)
    made_of = {"order": ("order:SO-1",), "product": ("sku:WH-000001", "list:warehouse"), "untagged": ()}
    for key, tags in made_of.items():
        ctx = _ctx(warehouse=fresh)
        ctx.depends_on(tags)
        assert store.offer(key, b"{}", 'W/"a"', ctx)
    first_level.drop_tags(["sku:WH-000001"])
    assert store.replay("product", RequestContext.start("reader", 5.0)) is None
    assert store.replay("untagged", RequestContext.start("reader", 5.0)) is None   # a part without tags
    assert store.replay("order", RequestContext.start("reader", 5.0)) is not None


def test_memory_is_bounded_oldest_first() -> None:
    store, _, first_level = _store(ttl=60.0, max_bytes=250, max_entry_bytes=120)
    ctx = _ctx(warehouse=SourceReport("ok", "hit", 0.0, None, 600.0))
    assert not store.offer("huge", b"x" * 121, 'W/"h"', ctx)
    for n in range(4):
        assert store.offer(f"k{n}", b"x" * 100, f'W/"{n}"', ctx)
    assert len(first_level) == 2
    assert store.replay("k0", RequestContext.start("reader", 5.0)) is None
    assert store.replay("k3", RequestContext.start("reader", 5.0)) is not None
