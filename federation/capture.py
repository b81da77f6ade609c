"""Change capture: each source's feed turned into dropped cache tags, change events and a status.

One ``Watcher`` per source runs in every worker of every replica, but only the one holding the
source's lease on the shared board reads the source: the others stand by and take over when its
lease lapses. Whoever starts reading drops everything cached from the source once, so changes
committed while no one watched (between two leaders, before the first) cannot survive in the cache.

A round polls the feed, drops the tags its changes touch (plus the source's list tag), publishes one
event per resource and only then acknowledges: a failure anywhere in between repeats the batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from federation.changes import ACCOUNT, Batch, ChangeFeed, FeedStatus
from federation.errors import ConnectorError, LogUnavailable
from federation.sources import RESTRICTED
from federation.tags import LIST_TAGS, path_of, tag_of

log = logging.getLogger("bizfed.capture")

# The list resources whose pages a source's changes may move rows in or out of.
LIST_PATHS = {
    "warehouse": ("/v1/products", "/v1/locations"),
    "sales": ("/v1/orders", "/v1/customers", "/v1/products", "/v1/sold-items"),
    "accounting": ("/v1/invoices", "/v1/customers", "/v1/products"),
}
SLOW_FACTOR = 1.0     # a round that took t seconds waits at least SLOW_FACTOR × t: reading half the time at most
# Seconds between attempts at a source that keeps failing: short, since the changes it commits meanwhile
# wait for the next attempt; the breaker check spares a source that is down the calls in between.
MAX_BACKOFF = 5.0
ROUND_LIMIT = 30.0    # a round the feed failed to bound itself is abandoned after this long
LEASE_ROUNDS = 5      # a lease outlives this many intervals, so a busy leader keeps it


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """What a client following ``/v1/changes`` is told: this resource may read differently now."""

    path: str
    source: str
    changed_at: datetime
    restricted: bool    # only roles that may read the source's own data learn of it

    def fields(self) -> dict[str, str]:
        return {"path": self.path, "source": self.source, "changed_at": _iso(self.changed_at.timestamp()) or "",
                "restricted": "1" if self.restricted else "0"}


class Invalidator(Protocol):
    async def invalidate_tags(self, tags: Iterable[str]) -> int: ...

    async def invalidate_source(self, source: str) -> int: ...


class NothingCached:
    """The invalidator when caching is off: changes are still followed, for clients of /v1/changes."""

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        return 0

    async def invalidate_source(self, source: str) -> int:
        return 0


class EventSink(Protocol):
    async def publish(self, entries: Sequence[Mapping[str, str]]) -> None:
        """Append ``ChangeEvent.fields()`` entries for every replica's followers."""


class CaptureBoard(Protocol):
    """Shared state across replicas: who watches each source, and what its watcher last reported."""

    async def hold(self, source: str, owner: str, ttl: float) -> bool:
        """Take or renew ``source``'s lease for ``owner``; False while someone else holds it."""

    async def release(self, source: str, owner: str) -> None: ...

    async def report(self, source: str, status: dict[str, Any], ttl: float) -> None: ...


class CaptureObserver(Protocol):
    def changes_seen(self, source: str, mode: str, count: int) -> None: ...

    def change_latency(self, source: str, mode: str, seconds: float) -> None: ...

    def watcher_queries(self, source: str, mode: str, count: int) -> None: ...

    def lag(self, source: str, seconds: float) -> None: ...


FeedFactory = Callable[[], ChangeFeed]


class Watcher:
    """Keeps one source's cached answers in step with what it commits, until cancelled."""

    def __init__(self, source: str, feeds: Sequence[FeedFactory], cache: Invalidator, *, interval: float,
                 owner: str, log_interval: float | None = None, board: CaptureBoard | None = None,
                 sink: EventSink | None = None, observer: CaptureObserver | None = None,
                 breaker_open: Callable[[], bool] = lambda: False, clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.status = FeedStatus(source)
        self._factories = feeds
        self._cache = cache
        self._interval = interval
        # A log is read from where the last round stopped, so asking often costs little: a shorter pace.
        self._log_interval = min(interval, log_interval) if log_interval is not None else interval
        self._owner = owner
        self._board = board
        self._sink = sink
        self._observer = observer
        self._breaker_open = breaker_open
        self._clock = clock
        self._feed: ChangeFeed | None = None
        self._failures = 0
        self._queries_seen = 0
        self._caught_up_at: float | None = None   # start of the last round whose changes are all applied
        self._restricted = source in RESTRICTED

    async def run(self, delay: float = 0.0) -> None:
        """Watch until cancelled, the first round ``delay`` seconds from now."""
        try:
            await asyncio.sleep(delay)
            while True:
                pause = await self.turn()
                await asyncio.sleep(pause)
        finally:
            await self._stop_feed()
            if self._board is not None:
                try:
                    await self._board.release(self.source, self._owner)
                except Exception:   # shutting down with the board unreachable: the lease lapses by itself
                    log.debug("lease of %s not released", self.source, exc_info=True)

    async def turn(self) -> float:
        """One step: hold the lease, start a feed if need be, apply one batch. Seconds until the next."""
        started = self._clock()
        try:
            if not await self._leading():
                return self._interval * 2
            if self._breaker_open():
                return self._failed("the source's circuit is open: waiting for it to close")
            if self._feed is None:
                self._feed = await self._start()
            async with asyncio.timeout(ROUND_LIMIT):
                batch = await self._feed.poll()
            await self._apply(self._feed, batch, started)
        except ConnectorError as exc:
            return self._failed(exc.message)
        except LogUnavailable as exc:
            return self._failed(exc.reason)
        except TimeoutError:
            await self._stop_feed()
            return self._failed("a round did not finish in time")
        except Exception as exc:   # the cache or the board unreachable: the batch waits unacknowledged
            if self._failures == 0:
                log.warning("change capture for %s stalled", self.source, exc_info=True)
            return self._failed(f"changes could not be applied ({type(exc).__name__})")
        finally:
            await self._report()
        took = self._clock() - started
        self._failures = 0
        pace = self._log_interval if self.status.mode == "log" else self._interval
        return max(pace - took, SLOW_FACTOR * took, 0.0)

    def snapshot(self) -> dict[str, Any]:
        """The status as ``/v1/sources`` shows it; lag is how far behind the source the cache may be now."""
        s = self.status
        now = self._clock()
        lag = round(now - self._caught_up_at, 3) if self._caught_up_at is not None else None
        return {"mode": s.mode, "state": s.state, "lag_s": lag, "changes": s.changes,
                "last_change_at": _iso(s.last_change_at), "last_round_at": _iso(s.last_round_at),
                "error": s.error, **s.extra}

    async def _leading(self) -> bool:
        if self._board is None:
            return True
        ttl = max(5.0, self._interval * LEASE_ROUNDS)
        if await self._board.hold(self.source, self._owner, ttl):
            return True
        await self._stop_feed()
        self.status.state = "standby"
        self.status.error = None
        return False

    async def _start(self) -> ChangeFeed:
        unavailable: list[str] = []
        for i, make in enumerate(self._factories):
            feed = make()
            try:
                await feed.start()
            except LogUnavailable as exc:
                await feed.close()
                unavailable.append(exc.reason)
                if i == len(self._factories) - 1:
                    raise
                continue
            except BaseException:
                await feed.close()
                raise
            try:
                # Whatever changed while no one watched is unknown: drop it all, once.
                await self._cache.invalidate_source(self.source)
            except BaseException:
                await feed.close()
                raise
            self.status.mode = feed.mode
            self.status.extra = {"log_unavailable": unavailable[-1]} if unavailable else {}
            self._queries_seen = feed.queries
            log.info("change capture for %s: %s", self.source, feed.mode)
            return feed
        raise LogUnavailable(self.source, "no change feed of the configured mode exists for this source")

    async def _apply(self, feed: ChangeFeed, batch: Batch, started: float) -> None:
        noticed = datetime.fromtimestamp(started, UTC)
        if not batch.complete:
            log.warning("change capture for %s lost track: dropping all its cached answers", self.source)
            await self._cache.invalidate_source(self.source)
        tags: set[str] = set()
        events: dict[str, ChangeEvent] = {}
        for change in batch.changes:
            at = change.committed_at or noticed
            for ref in change.refs:
                tags.add(tag_of(ref))
                path = path_of(ref)
                events[path] = ChangeEvent(path, self.source, at, self._restricted or ref.kind == ACCOUNT)
        if batch.changes or not batch.complete:
            tags.add(LIST_TAGS[self.source])
            newest = max((c.committed_at or noticed for c in batch.changes), default=noticed)
            for path in LIST_PATHS[self.source]:
                events.setdefault(path, ChangeEvent(path, self.source, newest, self._restricted))
            await self._cache.invalidate_tags(tags)
            if self._sink is not None:
                await self._sink.publish([e.fields() for e in events.values()])
        await feed.ack(batch)
        now = self._clock()
        self._caught_up_at = started
        s = self.status
        s.state, s.error, s.last_round_at = "watching", None, now
        if batch.changes:
            s.changes += len(batch.changes)
            s.last_change_at = max((c.committed_at.timestamp() for c in batch.changes if c.committed_at),
                                   default=started)
        s.extra = {**{k: v for k, v in s.extra.items() if k == "log_unavailable"}, **feed.details()}
        if self._observer is not None:
            mode = feed.mode
            if batch.changes:
                self._observer.changes_seen(self.source, mode, len(batch.changes))
            for change in batch.changes:
                if change.committed_at is not None:
                    self._observer.change_latency(self.source, mode, max(0.0, now - change.committed_at.timestamp()))
            self._observer.watcher_queries(self.source, mode, feed.queries - self._queries_seen)
            self._queries_seen = feed.queries

    def _failed(self, reason: str) -> float:
        self._failures += 1
        self.status.state = "failing"
        self.status.error = reason
        return float(min(MAX_BACKOFF, self._interval * 2 ** min(self._failures, 8)))

    async def _stop_feed(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            try:
                await feed.close()
            except Exception:
                log.debug("feed of %s did not close cleanly", self.source, exc_info=True)

    async def _report(self) -> None:
        if self.status.state == "standby":
            return
        if self._observer is not None and self._caught_up_at is not None:
            self._observer.lag(self.source, self._clock() - self._caught_up_at)
        if self._board is None:
            return
        try:
            report = {**self.snapshot(), "reported_at": self._clock()}
            await self._board.report(self.source, report, ttl=max(5.0, self._interval * LEASE_ROUNDS))
        except Exception:
            log.debug("status of %s not reported", self.source, exc_info=True)


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
