"""Fan-out cost: one order's federated answer vs the slowest of its source calls made alone."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import Any

from api.settings import load_settings
from api.wiring import build_policies, build_sources
from federation.context import RequestContext
from federation.gateway import Gateway
from federation.orders import get_order
from federation.policy import NullObserver

# The source calls an order's answer is made of, in the order they are timed alone.
SINGLES = ("sales.order", "sales.order_lines", "sales.order_customer", "warehouse.shipped",
           "accounting.invoices_for_orders")


async def _timed(call: Awaitable[Any]) -> float:
    """Seconds ``call`` (a coroutine not started yet: creating one runs none of its code) takes to finish."""
    started = time.perf_counter()
    await call
    return time.perf_counter() - started


async def measure(env: Mapping[str, str], order_nos: list[str], rounds: int = 3) -> dict[str, float]:
    """Median fan-out latency, median slowest single call, and their ratio (per order, then median);
    also each single call's median and the median of their sum (``<call>_p50_ms``, ``sum_p50_ms``)."""
    settings = load_settings(env)
    conns = build_sources(settings)
    for conn in conns.values():
        await conn.open()
    gateway = Gateway(conns, build_policies(settings, NullObserver()))
    today = datetime.now(UTC).date()
    wh, sales, acct = conns["warehouse"], conns["sales"], conns["accounting"]
    fanouts: list[float] = []
    slowest: list[float] = []
    ratios: list[float] = []
    each: dict[str, list[float]] = {name: [] for name in SINGLES}
    sums: list[float] = []
    gathers: list[float] = []
    gather_ratios: list[float] = []
    try:
        for _ in range(rounds):
            for no in order_nos:
                ctx = RequestContext.start("finance", 10)
                fan = await _timed(get_order(gateway, ctx, no, today))
                singles = [
                    await _timed(sales.order(no)),
                    await _timed(sales.order_lines(no)),
                    await _timed(sales.order_customer(no)),
                    await _timed(wh.shipped((no,))),
                    await _timed(acct.invoices_for_orders((no,), today)),
                ]
                # The floor on this machine: the same five calls straight to the connectors, gathered.
                gathered = await _timed(asyncio.gather(
                    sales.order(no), sales.order_lines(no), sales.order_customer(no), wh.shipped((no,)),
                    acct.invoices_for_orders((no,), today)))
                fanouts.append(fan)
                slowest.append(max(singles))
                ratios.append(fan / max(singles))
                gathers.append(gathered)
                gather_ratios.append(gathered / max(singles))
                sums.append(sum(singles))
                for name, took in zip(SINGLES, singles, strict=True):
                    each[name].append(took)
    finally:
        for conn in conns.values():
            await conn.close()
    return {"fanout_p50_ms": statistics.median(fanouts) * 1000, "slowest_p50_ms": statistics.median(slowest) * 1000,
            "ratio_p50": statistics.median(ratios), "sum_p50_ms": statistics.median(sums) * 1000,
            "gather_p50_ms": statistics.median(gathers) * 1000, "gather_ratio_p50": statistics.median(gather_ratios),
            **{f"{name}_p50_ms": statistics.median(times) * 1000 for name, times in each.items()}}


def singles_text(result: Mapping[str, float]) -> str:
    """Each single call's median, their sum's, and the five gathered straight on the connectors."""
    return (", ".join(f"`{name}` {result[name + '_p50_ms']:.2f}" for name in SINGLES)
            + f"; their sum {result['sum_p50_ms']:.2f}. The same five calls gathered straight on the connectors"
            f" (no gateway, no policy): {result['gather_p50_ms']:.2f} ms, {result['gather_ratio_p50']:.2f}x the"
            " slowest alone: the floor the drivers and servers set on this machine")


def run(env: Mapping[str, str], order_nos: list[str]) -> dict[str, float]:
    return asyncio.run(measure(env, order_nos))


def run_with_network_delay(env: Mapping[str, str], order_nos: list[str], delay: float) -> dict[str, float]:
    """The same measurement with every source behind a proxy adding ``delay`` seconds each way,
    as a WAN between an office and headquarters would."""
    from deploy.local.addresses import dsn_port, dsn_with_port, odbc_port, odbc_with_port, url_with_port
    from deploy.local.faultproxy import FaultProxy

    proxies = [FaultProxy("127.0.0.1", dsn_port(env["BIZFED_WAREHOUSE_DSN"])).start(),
               FaultProxy("127.0.0.1", odbc_port(env["BIZFED_ACCOUNTING_ODBC"])).start(),
               FaultProxy("127.0.0.1", odbc_port(env["BIZFED_ACCOUNTING_ODBC"])).start()]
    try:
        for proxy in proxies:
            proxy.latency(delay)
        delayed = {**env,
                   "BIZFED_WAREHOUSE_DSN": dsn_with_port(env["BIZFED_WAREHOUSE_DSN"], proxies[0].port),
                   "BIZFED_SALES_URL": url_with_port(env["BIZFED_SALES_URL"], proxies[1].port),
                   "BIZFED_ACCOUNTING_ODBC": odbc_with_port(env["BIZFED_ACCOUNTING_ODBC"], proxies[2].port)}
        return asyncio.run(measure(delayed, order_nos, rounds=1))
    finally:
        for proxy in proxies:
            proxy.stop()
