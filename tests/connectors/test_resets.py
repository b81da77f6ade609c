"""A server that resets every connection is a source unavailable, never an error of our own.

Through a proxy in reset mode each new connection is accepted and at once aborted with RST, at
whatever moment of the driver's handshake that lands: the call must fail as ``SourceUnavailable``
(transient, so the policy may retry and the breaker counts it), whichever driver error the reset
surfaces as, and the connector must work again once connections pass.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from deploy.local.faultproxy import FaultProxy
from federation.errors import SourceUnavailable

TRIES = 20   # resets land at different points of the handshake; enough tries to meet several


@pytest.mark.parametrize("proxied", ["warehouse", "sales", "accounting"], indirect=True)
async def test_every_reset_connect_is_the_source_unavailable(proxied: tuple[Any, FaultProxy]) -> None:
    connector, proxy = proxied
    await connector.open()
    try:
        proxy.reset()
        for _ in range(TRIES):
            with pytest.raises(SourceUnavailable) as caught:
                await connector.ping()
            assert caught.value.transient
        proxy.pass_through()
        await asyncio.wait_for(connector.ping(), 10)
    finally:
        await connector.close()
