"""Services start in the order registered, stop in reverse, and one that fails to stop leaves none open."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from api.services import Lifecycle


async def test_starts_in_order_stops_in_reverse_and_every_stop_runs() -> None:
    done: list[str] = []
    life = Lifecycle()

    def step(name: str, fail: bool = False) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            done.append(name)
            if fail:
                raise RuntimeError(f"{name} failed")
        return run

    life.add(start=step("start sources"), stop=step("close sources"), ping=("sources", step("ping")))
    life.add(start=step("start cache"), stop=step("close cache", fail=True))
    life.add(stop=step("close redis"))
    await life.start()
    assert done == ["start sources", "start cache"]
    assert list(life.pings) == ["sources"]
    await life.stop()
    assert done[2:] == ["close redis", "close cache", "close sources"]


async def test_loops_run_from_start_until_halt() -> None:
    ticks: list[int] = []
    finished = asyncio.Event()

    async def loop() -> None:
        try:
            while True:
                ticks.append(1)
                await asyncio.sleep(0.01)
        finally:
            finished.set()

    life = Lifecycle()
    life.loops["ticker"] = loop
    await life.start()
    await asyncio.sleep(0.05)
    assert ticks
    await life.halt()
    assert finished.is_set()
    count = len(ticks)
    await asyncio.sleep(0.05)
    assert len(ticks) == count
