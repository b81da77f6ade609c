"""Helpers of the change feeds' tests: a row read back, a round taken and acknowledged, the refs of a batch."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

import pyodbc

from federation.changes import Batch, Ref
from federation.errors import ConnectorError


class Feed(Protocol):
    async def poll(self) -> Batch: ...

    async def ack(self, batch: Batch) -> None: ...


def one(db: pyodbc.Connection, sql: str, *values: Any) -> Any:
    row = db.execute(sql, *values).fetchone()
    assert row is not None
    return row


async def settled(feed: Feed) -> Batch:
    """One round's batch, acknowledged."""
    batch = await feed.poll()
    await feed.ack(batch)
    return batch


def refs(batch: Batch) -> set[Ref]:
    return {ref for change in batch.changes for ref in change.refs}


async def poll_until_it_answers(feed: Feed, within: float) -> Batch:
    """The next batch once the feed reaches its source again; fails after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await feed.poll()
        except ConnectorError:
            assert time.monotonic() < deadline, "the feed did not recover"
            await asyncio.sleep(0.1)
