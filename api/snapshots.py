"""Snapshots of whole /v1 answers, kept in process memory for at most the first-level ttl.

A read whose every part came fresh from the cache is answered again, for the same role,
path and query, without running the federation: on the cached product page that fan-out
over five cached source answers was a quarter of the request's CPU. A snapshot lives until
the first of: ``ttl`` seconds, the moment one of its parts would stop being fresh, and the
next invalidation that clears the cache's first level (here, or in another worker or replica
through pub/sub). Replayed answers say what they are: every source a cache hit, ages grown.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sanic import HTTPResponse, Request

from api.responses import Rendered, deliver, render
from federation.context import RequestContext, SourceReport

Handler = Callable[..., Awaitable[HTTPResponse]]


@dataclass(slots=True)
class Snapshot:
    resource: bytes                                   # the body's data (and page) as the ETag covers it
    etag: str
    parts: tuple[tuple[str, float, float], ...]       # (source, age when taken, fresh ttl)
    redacted: tuple[str, ...]
    taken: float
    kept_until: float
    generation: int | None
    # The last rendering and the tenth of a second since ``taken`` it is for: ages are
    # reported to a tenth, so within one tenth every replay is the same bytes.
    rendered: tuple[int, dict[str, SourceReport], Rendered] | None = None

    def replay(self, ctx: RequestContext, now: float) -> Rendered:
        """The answer as of ``now``; what it is made of is recorded in ``ctx``."""
        tenths = int((now - self.taken) * 10)
        ctx.redact(*self.redacted)
        if self.rendered is not None and self.rendered[0] == tenths:
            ctx.sources.update(self.rendered[1])
            return self.rendered[2]
        for source, age, ttl in self.parts:
            ctx.sources[source] = SourceReport("ok", "hit", round(age + tenths / 10, 1), None, ttl)
        answer = render(ctx, self.resource, self.etag)
        self.rendered = (tenths, dict(ctx.sources), answer)
        return answer


class Snapshots:
    def __init__(self, ttl: float, generation: Callable[[], int | None], *,
                 max_bytes: int = 32 << 20, max_entry_bytes: int = 256 << 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``generation``: the cache's first-level generation, which every invalidation changes;
        ``max_bytes`` bounds the memory all snapshots take, ``max_entry_bytes`` one of them."""
        self._ttl = ttl
        self._generation = generation
        self._max_bytes = max_bytes
        self._max_entry = max_entry_bytes
        self._clock = clock
        self._entries: dict[str, Snapshot] = {}
        self._bytes = 0
        self.served = 0

    def replay(self, key: str, ctx: RequestContext) -> Rendered | None:
        """The answer of the live snapshot under ``key``, its parts recorded in ``ctx``; None if there is none."""
        found = self._entries.get(key)
        if found is None:
            return None
        now = self._clock()
        if now >= found.kept_until or found.generation != self._generation():
            self._drop(key)
            return None
        self.served += 1
        return found.replay(ctx, now)

    def offer(self, key: str, resource: bytes, etag: str, ctx: RequestContext) -> bool:
        """Keep this answer if every part of it is a fresh cached value; True if kept."""
        if not ctx.sources or len(resource) > self._max_entry:
            return False
        parts = []
        fresh_for = self._ttl
        for source, report in ctx.sources.items():
            if report.status != "ok" or report.cache not in ("hit", "miss") or report.ttl is None:
                return False
            fresh_for = min(fresh_for, report.ttl - report.age_s)
            parts.append((source, report.age_s, report.ttl))
        if fresh_for <= 0:
            return False
        now = self._clock()
        self._drop(key)
        while self._entries and self._bytes + len(resource) > self._max_bytes:
            self._drop(next(iter(self._entries)))   # oldest first
        self._entries[key] = Snapshot(resource, etag, tuple(parts), tuple(ctx.redacted), now, now + fresh_for,
                                      self._generation())
        self._bytes += len(resource)
        return True

    def _drop(self, key: str) -> None:
        gone = self._entries.pop(key, None)
        if gone is not None:
            self._bytes -= len(gone.resource)

    def __len__(self) -> int:
        return len(self._entries)


def snapshot_key(request: Request) -> str:
    return f"{request.ctx.role}\n{request.path}\n{request.query_string}"


def snapshotted(handler: Handler) -> Handler:
    """Serve a route from its snapshot when there is one; offer fresh answers for the next request."""

    @functools.wraps(handler)
    async def serve(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        snapshots: Snapshots | None = request.app.ctx.snapshots
        if snapshots is None:
            return await handler(request, *args, **kwargs)
        key = snapshot_key(request)
        ctx: RequestContext = request.ctx.fed
        answer = snapshots.replay(key, ctx)
        if answer is not None:
            request.ctx.snapshot = True
            return deliver(request, answer)
        response = await handler(request, *args, **kwargs)
        answered: tuple[bytes, str] | None = getattr(request.ctx, "answered", None)
        if answered is not None:
            snapshots.offer(key, answered[0], answered[1], ctx)
        return response

    return serve
