"""What a connector raises.

    ConnectorError(source)           anything that went wrong talking to a source
    ├── SourceUnavailable            could not connect, connection lost (transient)
    ├── SourceTimeout                the source did not answer in time (transient)
    ├── PoolExhausted                no local connection/thread free in time (local overload)
    └── QueryFailed                  the source rejected the query (never retried)

Messages never contain SQL, connection strings or driver text: the driver's
exception is kept as ``__cause__`` for the logs only.
"""

from __future__ import annotations


class ConnectorError(Exception):
    transient = False

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


class SourceUnavailable(ConnectorError):
    transient = True


class SourceTimeout(ConnectorError):
    transient = True


class PoolExhausted(ConnectorError):
    """Our own pool or thread limit was full; the source itself may be fine."""


class QueryFailed(ConnectorError):
    pass
