"""Snapshots of whole /v1 answers, kept in process memory for at most the first-level ttl.

A read whose every part came fresh from the cache is answered again, for the same role,
path and query, without running the federation: on the cached product page that fan-out
over five cached source answers was a quarter of the request's CPU. A snapshot is kept in the
cache's first level and lives until the first of: its ttl, the moment one of its parts would
stop being fresh, and the next invalidation of one of its parts' tags (here, or in another worker
or replica through pub/sub; an invalidation by source or key clears the whole level).
Replayed answers say what they are: every source a cache hit, ages grown.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sanic import HTTPResponse, Request

from api.responses import Rendered, deliver, render
from api.services import services
from federation.context import RequestContext, SourceReport

Handler = Callable[..., Awaitable[HTTPResponse]]


@dataclass(slots=True)
class Snapshot:
    resource: bytes                                   # the body's data (and page) as the ETag covers it
    etag: str
    parts: tuple[tuple[str, float, float], ...]       # (source, age when taken, fresh ttl)
    redacted: tuple[str, ...]
    taken: float
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


class FirstLevel(Protocol):
    """The process's in-memory first level (``cache/local.py``), from which invalidations drop by tag."""

    def get(self, name: str) -> Any | None: ...

    def put(self, name: str, value: Any, *, size: int, ttl: float | None = None,
            tags: tuple[str, ...] = ()) -> None: ...


class Snapshots:
    def __init__(self, store: FirstLevel, *, max_entry_bytes: int = 256 << 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``store``: where snapshots are kept, beside the cache's own hot entries, so that the
        invalidations that clear those clear these too; ``max_entry_bytes``: larger answers are not kept."""
        self._store = store
        self._max_entry = max_entry_bytes
        self._clock = clock
        self.served = 0

    def replay(self, key: str, ctx: RequestContext) -> Rendered | None:
        """The answer of the live snapshot under ``key``, its parts recorded in ``ctx``; None if there is none."""
        found: Snapshot | None = self._store.get(_PREFIX + key)
        if found is None:
            return None
        self.served += 1
        return found.replay(ctx, self._clock())

    def offer(self, key: str, resource: bytes, etag: str, ctx: RequestContext) -> bool:
        """Keep this answer if every part of it is a fresh cached value; True if kept."""
        if not ctx.sources or len(resource) > self._max_entry:
            return False
        parts = []
        fresh_for = float("inf")
        for source, report in ctx.sources.items():
            if report.status != "ok" or report.cache not in ("hit", "miss") or report.ttl is None:
                return False
            fresh_for = min(fresh_for, report.ttl - report.age_s)
            parts.append((source, report.age_s, report.ttl))
        if fresh_for <= 0:
            return False
        snapshot = Snapshot(resource, etag, tuple(parts), tuple(ctx.redacted), self._clock())
        # Untagged (a part without tags): dropped by any invalidation; else by one of its parts' tags.
        tags = tuple(sorted(ctx.tags)) if ctx.tags else ()
        self._store.put(_PREFIX + key, snapshot, size=len(resource), ttl=fresh_for, tags=tags)
        return True


_PREFIX = "answer\n"   # apart from the cache's entries, whose names start with its namespace


def snapshot_key(request: Request) -> str:
    return f"{request.ctx.role}\n{request.path}\n{request.query_string}"


def snapshotted(handler: Handler) -> Handler:
    """Serve a route from its snapshot when there is one; offer fresh answers for the next request."""

    @functools.wraps(handler)
    async def serve(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        snapshots = services(request.app).snapshots
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
