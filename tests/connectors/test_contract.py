"""Behaviour every connector shares: ping, pool state, typed errors, lifecycle, timeouts, port conformance."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import psycopg
import pyodbc
import pytest

from deploy.legacy.schema import LegacyTargets, odbc_server, sales_as_odbc
from federation import ports
from federation.errors import ConnectorError, PoolExhausted, SourceTimeout, SourceUnavailable
from tests.connectors.conftest import make_accounting, make_sales, make_warehouse, odbc_with
from tests.servers import free_port, odbc_value

KINDS = ["warehouse", "sales", "accounting"]
# Timeouts of the timing tests; each bound is ten times the one it checks.
UNREACHABLE_CONNECT = 1.0
SLOW_QUERY = 1.0
POOL_WAIT = 0.3
HEAVY_MARIADB = ("SELECT COUNT(*) FROM information_schema.columns a, information_schema.columns b, "
                 "information_schema.columns c")


@dataclass
class Kind:
    """How to build, starve and slow down one kind of connector in a uniform way."""

    name: str
    build: Callable[..., Any]             # settings -> unopened connector on the live database
    unreachable: Callable[[], Any]        # -> unopened connector pointed at nothing
    hold: Callable[[Any, float], Coroutine[Any, Any, Any]]   # keep one connection/worker busy about s seconds
    too_slow: Callable[[Any], Coroutine[Any, Any, Any]]  # a statement that outlasts a 1 s query timeout
    secrets: tuple[str, ...]              # fragments of the target that must never show in a message
    drop_connections: Callable[[], None]  # the server kills this database's sessions; returns once they are gone


async def _wh_hold(c: Any, s: float) -> Any:
    return await c._fetch("SELECT pg_sleep(%(s)s)", {"s": s})


async def _wh_slow(c: Any) -> Any:
    return await c._fetch("SELECT pg_sleep(30)", {})


async def _my_hold(c: Any, s: float) -> Any:
    return await c._fetch("SELECT SLEEP(%s)", (s,))


async def _my_slow(c: Any) -> Any:
    return await c._fetch(HEAVY_MARIADB, ())


async def _acct_hold(c: Any, s: float) -> Any:
    return await c.call(lambda cur: cur.execute("SELECT SLEEP(?)", s).fetchall())


async def _acct_slow(c: Any) -> Any:
    return await c.call(lambda cur: cur.execute(HEAVY_MARIADB).fetchall())


def _kill_pg_sessions(dsn: str) -> Callable[[], None]:
    def kill() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            pids = [pid for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            _until_gone(lambda: conn.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)",
                                             (pids,)).fetchall())
    return kill


def _kill_mariadb_sessions(odbc: str) -> Callable[[], None]:
    def kill() -> None:
        with pyodbc.connect(odbc_server(odbc), autocommit=True, timeout=5) as conn:
            ids = [int(session) for (session,) in conn.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
                odbc_value(odbc, "DATABASE")).fetchall()]
            for session in ids:
                conn.execute(f"KILL CONNECTION {session}")
            _until_gone(lambda: [row for row in conn.execute("SELECT ID FROM information_schema.PROCESSLIST").fetchall()
                                 if int(row[0]) in ids])
    return kill


def _until_gone(remaining: Callable[[], list[Any]], timeout: float = 10.0) -> None:
    """Poll until the killed sessions no longer show on the server, so the test cannot pass before they die."""
    deadline = time.monotonic() + timeout
    while left := remaining():
        assert time.monotonic() < deadline, f"sessions still alive {timeout:.0f}s after the kill: {left}"
        time.sleep(0.02)


async def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        await asyncio.sleep(0.01)


@pytest.fixture(name="kind", params=KINDS)
def _kind(request: pytest.FixtureRequest, empty_legacy: LegacyTargets) -> Kind:
    port = free_port()  # nothing listens on it
    if request.param == "warehouse":
        dsn = empty_legacy.warehouse_dsn
        return Kind("warehouse", lambda **kw: make_warehouse(dsn, **kw),
                    lambda: make_warehouse(f"postgresql://postgres:s3cret@127.0.0.1:{port}/warehouse",
                                           connect_timeout=UNREACHABLE_CONNECT),
                    _wh_hold, _wh_slow, ("s3cret", str(port), "127.0.0.1"), _kill_pg_sessions(dsn))
    if request.param == "sales":
        url = empty_legacy.sales_url
        return Kind("sales", lambda **kw: make_sales(url, **kw),
                    lambda: make_sales(f"mysql+asyncmy://root:s3cret@127.0.0.1:{port}/sales",
                                       connect_timeout=UNREACHABLE_CONNECT),
                    _my_hold, _my_slow, ("s3cret", str(port), "127.0.0.1"),
                    _kill_mariadb_sessions(sales_as_odbc(url, empty_legacy.accounting_odbc)))
    odbc = empty_legacy.accounting_odbc
    dead = odbc_with(odbc, PORT=str(port), PWD="s3cret")
    return Kind("accounting", lambda **kw: make_accounting(odbc, **kw),
                lambda: make_accounting(dead, login_timeout=UNREACHABLE_CONNECT),
                _acct_hold, _acct_slow, ("s3cret", str(port), "127.0.0.1", "DRIVER"), _kill_mariadb_sessions(odbc))


def _pool_settings(kind: Kind, size: int, wait: float, queue: int = 5) -> dict[str, Any]:
    if kind.name == "warehouse":
        return {"pool_min": 1, "pool_max": size, "connect_timeout": wait, "max_waiting": queue}
    if kind.name == "sales":
        return {"pool_size": size, "connect_timeout": wait}
    return {"max_workers": size, "login_timeout": wait}


def _assert_clean(exc: ConnectorError, kind: Kind) -> None:
    message = str(exc)
    assert message.startswith(f"{kind.name}: ")
    for fragment in (*kind.secrets, "SELECT", "Error", "("):
        assert fragment not in message, f"{fragment!r} leaked into {message!r}"
    assert exc.__cause__ is not None


async def test_ping_answers(kind: Kind, closing: Callable[[Any], None]) -> None:
    """A live source answers ping, and the connector is named after its source."""
    connector = kind.build()
    closing(connector)
    await connector.open()
    await connector.ping()
    assert connector.name == kind.name


async def test_pool_state_reports_integers(kind: Kind, closing: Callable[[Any], None]) -> None:
    """pool_state gives max/size/in_use/idle/waiting as integers, before and after use."""
    connector = kind.build()
    closing(connector)
    before = connector.pool_state()
    await connector.open()
    await asyncio.gather(*(connector.ping() for _ in range(8)))
    after = connector.pool_state()
    for state in (before, after):
        assert set(state) == {"max", "size", "in_use", "idle", "waiting"}
        assert all(isinstance(v, int) for v in state.values())
    assert (after["in_use"], after["waiting"]) == (0, 0)
    assert 1 <= after["size"] <= after["max"]


async def test_unreachable_source_is_unavailable_quickly(kind: Kind, closing: Callable[[Any], None]) -> None:
    """Opening against a closed port succeeds; calls then fail fast with SourceUnavailable and a clean message."""
    connector = kind.unreachable()
    closing(connector)
    await connector.open()
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as caught:
        await connector.ping()
    assert time.monotonic() - started < 10 * UNREACHABLE_CONNECT
    assert caught.value.transient
    _assert_clean(caught.value, kind)


async def test_calls_before_open_are_unavailable(kind: Kind) -> None:
    """A connector that was never opened raises SourceUnavailable instead of connecting on its own."""
    with pytest.raises(SourceUnavailable):
        await kind.build().ping()


async def test_open_and_close_are_idempotent_and_reopenable(kind: Kind) -> None:
    """open and close may be called twice, and a closed connector can be opened again."""
    connector = kind.build()
    await connector.open()
    await connector.open()
    await connector.ping()
    await connector.close()
    await connector.close()
    with pytest.raises(SourceUnavailable):
        await connector.ping()
    await connector.open()
    await connector.ping()
    await connector.close()


async def test_full_wait_queue_is_pool_exhausted(empty_legacy: LegacyTargets, closing: Callable[[Any], None]) -> None:
    """Warehouse: callers beyond max_waiting are turned away at once with PoolExhausted, not after the wait."""
    wait = 30.0
    connector = make_warehouse(empty_legacy.warehouse_dsn, pool_max=1, max_waiting=1, connect_timeout=wait)
    closing(connector)
    await connector.open()
    holder = asyncio.create_task(_wh_hold(connector, 3.0))
    await _until(lambda: connector.pool_state()["in_use"] == 1, "the holder has the one connection")
    queued = asyncio.create_task(connector.ping())
    await _until(lambda: connector.pool_state()["waiting"] == 1, "the second caller waits in the queue")
    started = time.monotonic()
    with pytest.raises(PoolExhausted):
        await connector.ping()
    assert time.monotonic() - started < wait / 10
    assert not holder.done(), "the holder let go before the third caller was turned away; the test proved nothing"
    await holder
    await queued


async def test_full_pool_is_pool_exhausted(kind: Kind, closing: Callable[[Any], None]) -> None:
    """With every connection busy past the wait limit, a call fails with PoolExhausted, not an outage."""
    connector = kind.build(**_pool_settings(kind, size=1, wait=POOL_WAIT))
    closing(connector)
    await connector.open()
    await connector.ping()
    holder = asyncio.create_task(kind.hold(connector, 10 * POOL_WAIT))
    await _until(lambda: connector.pool_state()["in_use"] == 1, "the holder has the one connection")
    with pytest.raises(PoolExhausted) as caught:
        await connector.ping()
    assert not caught.value.transient
    assert not holder.done(), "the holder let go before the wait ran out; the test proved nothing"
    await holder
    await connector.ping()


async def test_slow_query_is_source_timeout_and_connector_recovers(kind: Kind, closing: Callable[[Any], None]) -> None:
    """A statement outlasting the query timeout raises SourceTimeout promptly; the next call works."""
    connector = kind.build(query_timeout=SLOW_QUERY)
    closing(connector)
    await connector.open()
    started = time.monotonic()
    with pytest.raises(SourceTimeout) as caught:
        await kind.too_slow(connector)
    assert time.monotonic() - started < 10 * SLOW_QUERY
    assert caught.value.transient
    _assert_clean(caught.value, kind)
    await connector.ping()


async def _outcome(call: Awaitable[None]) -> BaseException | None:
    try:
        await call
    except ConnectorError as exc:
        return exc
    return None


async def test_connections_dropped_by_the_server_are_replaced(kind: Kind, closing: Callable[[Any], None]) -> None:
    """After the server kills every idle session (say, a restart), at most one call fails, as transient."""
    connector = kind.build(**_pool_settings(kind, size=3, wait=2.0))
    closing(connector)
    await connector.open()
    await asyncio.gather(*(kind.hold(connector, 0.1) for _ in range(3)))
    kind.drop_connections()
    outcomes = [await _outcome(connector.ping()) for _ in range(4)]
    failed = [exc for exc in outcomes if exc is not None]
    assert all(isinstance(exc, SourceUnavailable) and exc.transient for exc in failed), failed
    # The policy is the one retry layer: a connector fails the call that met a dead connection, as
    # transient, and has weeded out the rest of them by the next call.
    assert len(failed) <= 1
    await asyncio.gather(*(connector.ping() for _ in range(6)))


async def test_many_concurrent_calls_share_a_bounded_pool(kind: Kind, closing: Callable[[Any], None]) -> None:
    """Fifty concurrent pings all succeed through a pool of two when the wait queue has room."""
    connector = kind.build(**_pool_settings(kind, size=2, wait=5.0, queue=100))
    closing(connector)
    await connector.open()
    await asyncio.gather(*(connector.ping() for _ in range(50)))
    assert connector.pool_state()["size"] <= 2


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


@pytest.mark.parametrize(("port", "name"), [(ports.Warehouse, "warehouse"), (ports.Sales, "sales"),
                                            (ports.Accounting, "accounting")])
def test_connector_implements_its_port(port: type, name: str) -> None:
    """Each connector has every method of its port, with the same parameter names, kinds and coroutine-ness."""
    from connectors.accounting import AccountingConnector
    from connectors.sales import SalesConnector
    from connectors.warehouse import WarehouseConnector

    cls: Any = {"warehouse": WarehouseConnector, "sales": SalesConnector, "accounting": AccountingConnector}[name]
    assert cls.name == name
    have = _public_methods(cls)
    for method, signature in _public_methods(port).items():
        assert method in have, f"{cls.__name__} lacks {method}"
        assert [(p.name, p.kind) for p in have[method].parameters.values()] == \
            [(p.name, p.kind) for p in signature.parameters.values()], method
        assert inspect.iscoroutinefunction(getattr(cls, method)) == inspect.iscoroutinefunction(getattr(port, method))

