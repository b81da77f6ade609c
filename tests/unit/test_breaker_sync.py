"""The breaker sync's rules, over an in-memory board: openings travel, closings follow, an outage stays local."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import pybreaker

from federation.breakers import SharedBreakers
from federation.errors import SourceTimeout
from federation.policy import Breaker, NullObserver, make_breaker
from tests.fakes.breakers import FakeBoard, trial_passes

POLL = 0.01


def _process(board: FakeBoard, name: str) -> tuple[Breaker, SharedBreakers]:
    breaker = make_breaker("accounting", 2, 60.0, NullObserver())
    return breaker, SharedBreakers(board, {"accounting": breaker}, poll=POLL, identity=name)


def _fail_twice(breaker: Breaker) -> None:
    for _ in range(2):
        with contextlib.suppress(SourceTimeout, pybreaker.CircuitBreakerError), breaker.calling():
            raise SourceTimeout("accounting", "timeout")


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 200 * POLL
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(POLL / 2)


async def test_an_opening_reaches_the_other_process_and_so_does_the_closing() -> None:
    board = FakeBoard()
    (mine, sync_a), (theirs, sync_b) = _process(board, "a"), _process(board, "b")
    tasks = [asyncio.create_task(sync_a.run()), asyncio.create_task(sync_b.run())]
    try:
        _fail_twice(mine)
        await _until(lambda: theirs.current_state == "open", "the other process opens")
        assert board.openings["accounting"].by == "a"
        mine.close()
        await _until(lambda: theirs.current_state == "closed", "the other process closes")
        assert "accounting" not in board.openings
    finally:
        for task in tasks:
            task.cancel()


async def test_an_opening_by_someone_else_keeps_its_opener_clock() -> None:
    board = FakeBoard()
    theirs, sync = _process(board, "b")
    task = asyncio.create_task(sync.run())
    try:
        from federation.breakers import Opening
        board.openings["accounting"] = Opening(time.time() - 59.5, "a")   # opened 59.5 s of a 60 s reset ago
        await _until(lambda: theirs.current_state == "open", "the opening is applied")
        # Half-open comes at the opener's reset time, not 60 s from now: a trial call passes within a second.
        await _until(lambda: trial_passes(theirs), "a trial call passes at the opener's reset time")
    finally:
        task.cancel()


async def test_with_the_board_unreachable_breakers_are_local_and_sharing_resumes() -> None:
    board = FakeBoard()
    board.reachable = False
    (mine, sync_a), (theirs, sync_b) = _process(board, "a"), _process(board, "b")
    tasks = [asyncio.create_task(sync_a.run()), asyncio.create_task(sync_b.run())]
    try:
        await _until(lambda: not sync_a.shared and not sync_b.shared, "both report the board unreachable")
        _fail_twice(mine)
        assert mine.current_state == "open"
        await asyncio.sleep(20 * POLL)
        assert theirs.current_state == "closed"   # nothing could travel
        board.reachable = True
        await _until(lambda: theirs.current_state == "open", "the opening travels once the board is back")
        assert sync_a.shared
        assert sync_b.shared
    finally:
        for task in tasks:
            task.cancel()
