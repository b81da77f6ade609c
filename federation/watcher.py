"""Drops cached answers the Warehouse has changed, so stock moves show within seconds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from federation.errors import ConnectorError
from federation.tags import WAREHOUSE_LISTS

log = logging.getLogger("bizfed.watcher")


@dataclass(frozen=True, slots=True)
class Watermark:
    movement_id: int
    stock_at: datetime
    items_at: datetime


@dataclass(frozen=True, slots=True)
class Changes:
    watermark: Watermark
    skus: frozenset[str] = field(default_factory=frozenset)
    order_nos: frozenset[str] = field(default_factory=frozenset)


class ChangeFeed(Protocol):
    async def current(self) -> Watermark: ...

    async def since(self, mark: Watermark) -> Changes: ...


class Invalidator(Protocol):
    async def invalidate_tags(self, tags: Iterable[str]) -> int: ...


async def watch_warehouse(feed: ChangeFeed, cache: Invalidator, interval: float) -> None:
    """Poll ``feed`` every ``interval`` seconds and invalidate what changed, until cancelled."""
    mark: Watermark | None = None
    while True:
        try:
            if mark is None:
                mark = await feed.current()
            else:
                changes = await feed.since(mark)
                tags = {*changes.skus, *changes.order_nos}
                if tags:
                    dropped = await cache.invalidate_tags([*tags, WAREHOUSE_LISTS])
                    log.info("warehouse changed: %d tags, %d cached keys dropped", len(tags), dropped)
                # Only past changes the cache has dropped: with Redis down, the next round tries them again.
                mark = changes.watermark
        except ConnectorError as exc:
            log.warning("warehouse watcher: %s", exc.message)
        except Exception:
            log.exception("warehouse watcher failed; retrying")
        await asyncio.sleep(interval)
