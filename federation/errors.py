"""The federation's errors, mapped to HTTP in exactly one place (``api.problems.PROBLEMS``).

Anything else that reaches the API is a bug and a 500: ``SourceFailed`` is only for a source's
own failure (see ``federation.policy.SOURCE_FAULTS``), never for an error in our code.

    FederationError
    ├── BadRequest(param)            malformed input                        → 400
    ├── NotFound(what, ident)        well-formed id that does not exist     → 404
    ├── Forbidden                    the role may not see this resource     → 403
    ├── SourceFailed(source, reason) one source gave no data for this call  → partial / 503
    └── PrimaryUnavailable(source)   the resource's primary source failed
                                     and nothing was cached                 → 503 + Retry-After
"""

from __future__ import annotations

from cache.cached import LoadFailed


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


class SourceFailed(FederationError, LoadFailed):
    """A source call produced no data; ``reason`` is safe to show to users."""

    def __init__(self, source: str, reason: str) -> None:
        LoadFailed.__init__(self, reason)
        self.source = source


class PrimaryUnavailable(FederationError):
    def __init__(self, source: str, reason: str, retry_after: int) -> None:
        super().__init__(f"{source} is unavailable: {reason}")
        self.source = source
        self.reason = reason
        self.retry_after = retry_after
