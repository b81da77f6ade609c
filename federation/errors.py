"""Every error the federation and its adapters raise, mapped to HTTP in one place (``api.problems.PROBLEMS``).

Anything else that reaches the API is a bug and a 500: ``SourceFailed`` is only for a source's
own failure (see ``federation.policy.SOURCE_FAULTS``), never for an error in our code.

    FederationError
    ├── BadRequest(param)            malformed input                        → 400
    ├── NotFound(what, ident)        well-formed id that does not exist     → 404
    ├── Forbidden                    the role may not see this resource     → 403
    ├── ConnectorError(source)       what a connector raises: talking to a source went wrong
    │   ├── SourceUnavailable        could not connect, connection lost (transient)
    │   ├── SourceTimeout            the source did not answer in time (transient)
    │   ├── PoolExhausted            no local connection/thread free in time (local overload)
    │   └── QueryFailed              the source rejected the query (never retried)
    ├── SourceFailed(source, reason) one source gave no data for this call  → partial / 503
    ├── PrimaryUnavailable(source)   the resource's primary source failed
    │                                and nothing was cached                 → 503 + Retry-After
    └── LogUnavailable(source)       change capture: the source's log cannot be read here; the
                                     polling feed stands in (never reaches a request: a bug if it does)

Connector messages never contain SQL, connection strings or driver text: the driver's
exception is kept as ``__cause__`` for the logs only.
"""

from __future__ import annotations


class FederationError(Exception):
    pass


class BadRequest(FederationError):
    def __init__(self, param: str, detail: str) -> None:
        super().__init__(detail)
        self.param = param
        self.detail = detail


class NotFound(FederationError):
    def __init__(self, what: str, ident: object) -> None:
        super().__init__(f"no {what} {ident}")
        self.what = what
        self.ident = ident


class Forbidden(FederationError):
    pass


class ConnectorError(FederationError):
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


class SourceFailed(FederationError):
    """A source call produced no data; ``reason`` is safe to show to users. Stale values may stand in for it."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(reason)
        self.source = source
        self.reason = reason


class PrimaryUnavailable(FederationError):
    def __init__(self, source: str, reason: str, retry_after: int) -> None:
        super().__init__(f"{source} is unavailable: {reason}")
        self.source = source
        self.reason = reason
        self.retry_after = retry_after


class LogUnavailable(FederationError):
    """The source cannot be read by its log here (not enabled, not granted): the polling feed stands in.

    ``reason`` says what is missing, in words an operator can act on (no SQL, no credentials).
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
