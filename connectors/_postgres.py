"""psycopg connections that fail cleanly: for the Warehouse connector and its change watcher.

psycopg meets a cancelled query by asking the server to cancel it and waiting for that, up to 10 s in
all, which a blackholed or hung server never answers; and it leaves a failed connect's socket open
until a full garbage collection. Both are a call's deadline or a connection bound broken.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable
from typing import Any, Self, TypeVar

import psycopg
from psycopg.rows import TupleRow

T = TypeVar("T")
_PSYCOPG_DIR = os.path.dirname(psycopg.__file__) + os.sep
CUT_WAIT = 1.0   # seconds a query given up on has to end once its socket is shut down; it takes milliseconds


class Connection(psycopg.AsyncConnection[TupleRow]):
    """A connection whose failed connect leaves no socket open behind it.

    psycopg drops a timed-out attempt's libpq connection without closing it; the frames of the error's
    traceback hold it in a reference cycle, so its socket stayed open until a full garbage collection,
    one more for each attempt made in an outage. Clearing those frames closes it at once.
    """

    @classmethod
    async def connect(cls, *args: Any, **kwargs: Any) -> Self:
        try:
            return await super().connect(*args, **kwargs)
        except BaseException as exc:
            _clear_psycopg_frames(exc)
            raise


def _clear_psycopg_frames(exc: BaseException) -> None:
    """Clear psycopg's own frames in ``exc``'s traceback and those of its causes: they have all returned.

    Only those: frame.clear() finalizes a suspended coroutine, and an exception's context (as opposed
    to its cause) may be one being handled further up, whose traceback holds callers still running.
    """
    seen: BaseException | None = exc
    while seen is not None:
        tb = seen.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.startswith(_PSYCOPG_DIR):
                with contextlib.suppress(RuntimeError):   # a frame still executing
                    tb.tb_frame.clear()
            tb = tb.tb_next
        seen = seen.__cause__


async def abandonable(conn: psycopg.AsyncConnection[Any], job: Awaitable[T]) -> T:
    """``job`` on ``conn``; if the caller gives up on it, it ends at once and the connection with it.

    Rather than psycopg's cancel request, the connection's socket is shut down: the query's wait fails
    at once as a lost connection, and whoever holds the connection discards it. (Closing the connection
    under the running query would free it mid-use.)
    """
    task = asyncio.ensure_future(job)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        cut(conn)
        await asyncio.wait({task}, timeout=CUT_WAIT)
        task.add_done_callback(_retrieved)
        raise


def cut(conn: psycopg.AsyncConnection[Any]) -> None:
    """Shut the connection's socket down: a statement waiting on it fails now, without a cancel request."""
    try:
        fd = os.dup(conn.pgconn.socket)
    except (psycopg.Error, OSError):
        return  # already closed
    # Shutting the duplicate descriptor down shuts down the one socket both name; closing it closes only the copy.
    with socket.socket(fileno=fd) as sock, contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()   # known and dealt with; retrieved so that asyncio does not log it
