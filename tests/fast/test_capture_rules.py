"""The watcher's rules over in-memory feeds, cache and board: what it drops, when it acknowledges, who leads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from federation.capture import SLOW_FACTOR, Watcher
from federation.changes import Batch, Change, Mode, Ref
from federation.errors import LogUnavailable, SourceUnavailable
from federation.tags import SALES_LISTS

COMMITTED = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class Feed:
    def __init__(self, mode: Mode = "log", *, unavailable: str | None = None) -> None:
        self.source = "sales"
        self._mode: Mode = mode
        self.unavailable = unavailable
        self.pending: list[Batch] = []
        self.acked: list[Batch] = []
        self.fail_next: Exception | None = None
        self.started = self.closed = False
        self.polls = 0

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def queries(self) -> int:
        return self.polls

    def details(self) -> dict[str, object]:
        return {"held": len(self.pending)}

    async def start(self) -> None:
        if self.unavailable:
            raise LogUnavailable("sales", self.unavailable)
        self.started = True

    async def poll(self) -> Batch:
        self.polls += 1
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        return self.pending[0] if self.pending else Batch()

    async def ack(self, batch: Batch) -> None:
        self.acked.append(batch)
        if self.pending and self.pending[0] is batch:
            self.pending.pop(0)

    async def close(self) -> None:
        self.closed = True


class Cache:
    def __init__(self) -> None:
        self.tags: list[set[str]] = []
        self.sources: list[str] = []
        self.down = False

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        if self.down:
            raise ConnectionError("redis down")
        self.tags.append(set(tags))
        return 1

    async def invalidate_source(self, source: str) -> int:
        if self.down:
            raise ConnectionError("redis down")
        self.sources.append(source)
        return 1


class Board:
    def __init__(self) -> None:
        self.holder: str | None = None
        self.reports: dict[str, dict[str, Any]] = {}

    async def hold(self, source: str, owner: str, ttl: float) -> bool:
        if self.holder in (None, owner):
            self.holder = owner
            return True
        return False

    async def release(self, source: str, owner: str) -> None:
        if self.holder == owner:
            self.holder = None

    async def report(self, source: str, status: Mapping[str, Any], ttl: float) -> None:
        self.reports[source] = dict(status)


class Sink:
    def __init__(self) -> None:
        self.entries: list[Mapping[str, str]] = []

    async def publish(self, entries: Sequence[Mapping[str, str]]) -> None:
        self.entries.extend(entries)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def watcher(feeds: list[Feed], cache: Cache, board: Board | None = None, sink: Sink | None = None,
            owner: str = "a", clock: Clock | None = None) -> Watcher:
    makers = [lambda f=f: f for f in feeds]
    return Watcher("sales", makers, cache, interval=1.0, owner=owner, board=board, sink=sink,
                   clock=clock or Clock())


def order_change(no: str, committed: datetime | None = COMMITTED) -> Change:
    return Change("orders", frozenset({Ref("order", no), Ref("customer", "7")}), committed)


async def test_starting_drops_the_source_once_then_each_change_drops_exactly_its_tags() -> None:
    feed, cache = Feed(), Cache()
    w = watcher([feed], cache)
    await w.turn()
    assert cache.sources == ["sales"]   # changes made while no one watched are unknown
    assert cache.tags == []             # a quiet round drops nothing
    feed.pending.append(Batch((order_change("SO-1"),)))
    await w.turn()
    assert cache.tags == [{"order:SO-1", "customer:7", SALES_LISTS}]
    assert cache.sources == ["sales"]
    assert w.snapshot()["state"] == "watching"
    assert w.snapshot()["changes"] == 1


async def test_a_batch_is_acknowledged_only_after_its_tags_were_dropped() -> None:
    feed, cache = Feed(), Cache()
    w = watcher([feed], cache)
    await w.turn()
    batch = Batch((order_change("SO-2"),))
    feed.pending.append(batch)
    cache.down = True
    await w.turn()
    assert batch not in feed.acked
    assert w.snapshot()["state"] == "failing"
    cache.down = False
    await w.turn()
    assert feed.acked[-1] is batch
    assert {"order:SO-2"} <= cache.tags[-1]


async def test_a_feed_that_lost_track_drops_everything_of_its_source() -> None:
    feed, cache = Feed(), Cache()
    w = watcher([feed], cache)
    await w.turn()
    feed.pending.append(Batch(complete=False))
    await w.turn()
    assert cache.sources == ["sales", "sales"]


async def test_no_log_here_means_the_polling_feed_and_says_why() -> None:
    log, poll, cache = Feed("log", unavailable="binlog off: set log_bin"), Feed("poll"), Cache()
    w = watcher([log, poll], cache)
    await w.turn()
    assert log.closed
    assert poll.started
    snap = w.snapshot()
    assert snap["mode"] == "poll"
    assert snap["log_unavailable"] == "binlog off: set log_bin"


async def test_only_the_lease_holder_reads_and_the_other_takes_over_when_it_lapses() -> None:
    board, cache = Board(), Cache()
    first_feed, second_feed = Feed(), Feed()
    first = watcher([first_feed], cache, board, owner="a")
    second = watcher([second_feed], cache, board, owner="b")
    await first.turn()
    await second.turn()
    assert first_feed.started
    assert not second_feed.started
    assert second.snapshot()["state"] == "standby"
    board.holder = None   # the first replica died: its lease expired
    await second.turn()
    assert second_feed.started
    assert cache.sources == ["sales", "sales"]   # the new leader drops what it cannot know


async def test_failures_back_off_and_a_slow_round_waits_longer() -> None:
    feed, cache, clock = Feed(), Cache(), Clock()
    w = watcher([feed], cache, clock=clock)
    await w.turn()
    pauses = []
    for _ in range(3):
        feed.fail_next = SourceUnavailable("sales", "unreachable")
        pauses.append(await w.turn())
    assert pauses == sorted(pauses)
    assert pauses[0] < pauses[-1]
    assert w.snapshot()["error"] == "unreachable"
    slow_feed = Feed()
    original = slow_feed.poll

    async def slow_poll() -> Batch:
        clock.now += 0.5
        return await original()
    slow_feed.poll = slow_poll   # type: ignore[method-assign]
    slow = watcher([slow_feed], cache, clock=clock)
    await slow.turn()
    assert await slow.turn() >= SLOW_FACTOR * 0.5


async def test_events_name_each_resource_once_and_accounting_is_restricted() -> None:
    feed, cache, sink = Feed(), Cache(), Sink()
    w = watcher([feed], cache, sink=sink)
    await w.turn()
    feed.pending.append(Batch((order_change("SO-3"), order_change("SO-3"),
                               Change("customers", frozenset({Ref("account", "C0000001")})))))
    await w.turn()
    paths = [e["path"] for e in sink.entries]
    assert len(paths) == len(set(paths))
    assert "/v1/orders/SO-3" in paths
    assert "/v1/orders" in paths
    by_path = {e["path"]: e for e in sink.entries}
    assert by_path["/v1/orders/SO-3"]["restricted"] == "0"
    assert by_path["/v1/invoices?acct_no=C0000001"]["restricted"] == "1"
    assert by_path["/v1/orders/SO-3"]["changed_at"] == "2026-12-06T12:00:00Z"


async def test_lag_grows_while_the_source_fails() -> None:
    feed, cache, clock = Feed(), Cache(), Clock()
    w = watcher([feed], cache, clock=clock)
    await w.turn()
    assert w.snapshot()["lag_s"] == 0
    feed.fail_next = SourceUnavailable("sales", "unreachable")
    clock.now += 7
    await w.turn()
    assert w.snapshot()["lag_s"] == 7
