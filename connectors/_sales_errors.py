"""What Sales' driver raises, as the core's errors: for the connector and its polling feed alike."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator

from asyncmy import errors as asyncmy_errors

from federation.errors import ConnectorError, QueryFailed, SourceTimeout, SourceUnavailable

SOURCE = "sales"
# MySQL/MariaDB error numbers that mean "too slow" and "connection gone".
TIMEOUT_CODES = frozenset({1317, 1969, 3024, 1205})
GONE_CODES = frozenset({1040, 1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031})


def keeps_connection(exc: BaseException) -> bool:
    """A rejected statement leaves its connection fit for the next one."""
    return isinstance(exc, asyncmy_errors.ProgrammingError | asyncmy_errors.DataError)


def classify(exc: asyncmy_errors.Error) -> ConnectorError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code in TIMEOUT_CODES:
        return SourceTimeout(SOURCE, "query timed out")
    if code in GONE_CODES or isinstance(exc, asyncmy_errors.InterfaceError):
        return SourceUnavailable(SOURCE, "connection lost")
    return QueryFailed(SOURCE, "query rejected")


@contextlib.contextmanager
def driver_errors() -> Iterator[None]:
    """Raise the core's error for whatever the block's driver calls raise (messages carry no driver text)."""
    try:
        yield
    except ConnectorError:
        raise
    except TimeoutError as exc:
        raise SourceTimeout(SOURCE, "no answer in time") from exc
    except asyncmy_errors.Error as exc:
        raise classify(exc) from exc
    except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
        raise SourceUnavailable(SOURCE, "connection lost") from exc
    except sqlite3.Error as exc:   # aiosqlite passes SQLite's own errors on
        raise QueryFailed(SOURCE, "query rejected") from exc
