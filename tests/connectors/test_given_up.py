"""A call its caller gives up on ends at once, whatever the network does, and leaves nothing held.

The policy bounds every attempt with a timer and cancels the call when it fires. Here each connector
sits behind a fault proxy that blackholes its connection (bytes accepted, nothing ever answered): a
cancelled call must come back within a small margin of the timer, not after the driver's own clean-up
(psycopg's cancel request and its wait, up to 10 s), and once the network is back the next calls work
and the pool holds no connection lent to a call that is gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from deploy.local.faultproxy import FaultProxy
from tests.connectors.conftest import PROXIED_CALLS as CALLS

GIVE_UP_S = 0.5     # the caller's timer, as the policy's attempt timeout would be
MARGIN_S = 0.5      # how long after the timer the call may take to come back


async def _given_up(call: Callable[[], Any]) -> float:
    """Seconds until ``call()``, cancelled by a GIVE_UP_S timer, came back."""
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(GIVE_UP_S):
            await call()
    return time.monotonic() - started


@pytest.mark.parametrize("proxied", ["warehouse", "sales", "accounting"], indirect=True)
async def test_a_call_given_up_on_in_a_blackhole_comes_back_at_once(proxied: tuple[Any, FaultProxy]) -> None:
    connector, proxy = proxied
    await connector.open()
    try:
        await asyncio.gather(*(connector.ping() for _ in range(CALLS)))   # connections made and idle
        proxy.blackhole()
        took = await asyncio.gather(*(_given_up(connector.ping) for _ in range(CALLS)))
        assert max(took) <= GIVE_UP_S + MARGIN_S, took
        proxy.pass_through()
        deadline = time.monotonic() + 10 * GIVE_UP_S
        while True:   # the dead connections may each fail one call as transient, then all is well
            try:
                await asyncio.gather(*(connector.ping() for _ in range(CALLS)))
                break
            except Exception:
                assert time.monotonic() < deadline, "the connector did not recover after the blackhole"
                await asyncio.sleep(0.05)
        assert connector.pool_state()["in_use"] == 0, connector.pool_state()
    finally:
        await connector.close()
