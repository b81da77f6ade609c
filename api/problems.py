"""Every failure as application/problem+json (RFC 9457): the one place errors become HTTP.

``PROBLEMS`` maps each exception type the code raises to its answer; an exception is answered by
the first type of its MRO found there. What is not there is a bug: a 500 that names only the
request id, with the traceback in the log and a count in ``bizfed_internal_errors_total``.
"""

from __future__ import annotations

import logging
from asyncio import CancelledError
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sanic import HTTPResponse, Request
from sanic.exceptions import MethodNotAllowed, PayloadTooLarge, SanicException
from sanic.exceptions import NotFound as RouteNotFound

from api.change_followers import HistoryUnavailable
from api.metrics import route_label
from api.settings import SettingsError
from cache.cached import LoadFailed
from cache.readthrough import CacheUnavailable
from federation.codec import CodecError
from federation.errors import (
    BadRequest,
    ConnectorError,
    FederationError,
    Forbidden,
    LogUnavailable,
    NotFound,
    PoolExhausted,
    PrimaryUnavailable,
    QueryFailed,
    SourceFailed,
    SourceTimeout,
    SourceUnavailable,
)

log = logging.getLogger("bizfed.api")

TYPE_BASE = "https://bizfed.example/problems/"
# How long a client should wait before asking again for a source that failed outside the breaker.
SOURCE_RETRY_AFTER = 5
TITLES = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 406: "Not acceptable",
          408: "Request timeout", 413: "Payload too large", 414: "URI too long", 416: "Range not satisfiable",
          417: "Expectation failed", 431: "Request header fields too large", 503: "Service unavailable"}


def problem(status: int, title: str, detail: str, *, kind: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> HTTPResponse:
    body = {"type": TYPE_BASE + (kind or title.lower().replace(" ", "-")), "title": title, "status": status,
            "detail": detail, **extra}
    return HTTPResponse(orjson.dumps(body), status=status, headers=headers or {},
                        content_type="application/problem+json")


class Unauthorized(SanicException):
    status_code = 401
    quiet = True


class RateLimited(SanicException):
    status_code = 429
    quiet = True


def _none(_exc: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class Problem:
    """How one exception type is answered. ``status`` may read it off the exception (and the request);
    ``title`` None takes the status's usual title; ``kind`` None is made from the title."""

    status: int | Callable[[Any, Request | None], int]
    title: str | None
    detail: Callable[[Any, int], str]   # (the exception, the status answered)
    kind: str | None = None
    headers: Callable[[Any], dict[str, str]] = _none
    members: Callable[[Any], dict[str, Any]] = _none   # more members of the body
    internal: bool = False   # a bug: logged with its traceback, counted, and told as nothing but the request id
    allow: bool = False      # a 405: say in ``Allow`` which methods the path takes


INTERNAL = Problem(500, "Internal error", lambda _e, _s: "", kind="internal", internal=True)


def _message(exc: BaseException, _status: int) -> str:
    return str(exc)


def _retry_after(seconds: int) -> Callable[[Any], dict[str, str]]:
    return lambda _e: {"Retry-After": str(seconds)}


def _sanic_status(exc: SanicException, _request: Request | None) -> int:
    return int(exc.status_code)


def _sanic_detail(exc: SanicException, _status: int) -> str:
    # Sanic's own messages are safe (routing, size limits), but hide anything from a 5xx.
    return str(exc) if int(exc.status_code) < 500 else "internal error"


def _sanic_headers(exc: SanicException) -> dict[str, str]:
    return dict(getattr(exc, "headers", None) or {})


def _too_large(_exc: PayloadTooLarge, request: Request | None) -> int:
    """413 for a body; for a head over the limit, 414 when the request line is most of it, else 431."""
    stream = getattr(request, "stream", None) if request is not None else None
    head = getattr(stream, "recv_buffer", None)
    if request is None or request.method != "NONE" or not head:
        # Sanic parsed the head, so what was too large is the body.
        return 413
    end = head.find(b"\r\n")
    line = len(head) if end < 0 else end
    return 414 if line * 2 > len(head) else 431


def _too_large_detail(_exc: PayloadTooLarge, status: int) -> str:
    return {414: "the request line (the URL) exceeds the size limit",
            431: "the request header fields exceed the size limit"}.get(status,
                                                                        "the request body exceeds the size limit")


# A connector's messages are written to be shown (no SQL, no driver text).
SOURCE_FAULT = Problem(503, "Source unavailable", lambda e, _s: f"{e.source} is unavailable ({e.message})",
                       kind="source-unavailable", headers=_retry_after(SOURCE_RETRY_AFTER),
                       members=lambda e: {"source": e.source})

PROBLEMS: dict[type[BaseException], Problem] = {
    # The client hung up before the answer was ready (Sanic cancels the handler). Nobody will read
    # this answer, but metrics and the log see it: 499, as nginx names it, rather than a false 500.
    CancelledError: Problem(499, "Client closed request",
                            lambda _e, _s: "the connection closed before the answer was ready", kind="client-closed"),
    BadRequest: Problem(400, "Bad request", lambda e, _s: e.detail, kind="bad-request",
                        members=lambda e: {"param": e.param}),
    NotFound: Problem(404, "Not found", lambda e, _s: f"no {e.what} {e.ident}", kind="not-found"),
    Forbidden: Problem(403, "Forbidden", _message, kind="forbidden"),
    PrimaryUnavailable: Problem(
        503, "Source unavailable", lambda e, _s: f"{e.source} is unavailable ({e.reason}) and nothing is cached",
        kind="source-unavailable", headers=lambda e: {"Retry-After": str(e.retry_after)},
        members=lambda e: {"source": e.source}),
    SourceFailed: Problem(503, "Source unavailable", lambda e, _s: f"{e.source} is unavailable ({e.reason})",
                          kind="source-unavailable", headers=_retry_after(SOURCE_RETRY_AFTER),
                          members=lambda e: {"source": e.source}),
    LoadFailed: Problem(503, "Source unavailable", lambda e, _s: f"no data could be had ({e.reason})",
                        kind="source-unavailable", headers=_retry_after(SOURCE_RETRY_AFTER)),
    # The policy turns these into SourceFailed; should one escape it, the source failed all the same.
    ConnectorError: SOURCE_FAULT,
    SourceUnavailable: SOURCE_FAULT,
    SourceTimeout: SOURCE_FAULT,
    PoolExhausted: SOURCE_FAULT,
    QueryFailed: SOURCE_FAULT,
    CacheUnavailable: Problem(
        503, "Cache unavailable",
        lambda e, _s: f"the cache did not answer ({e.message}); nothing was done that this answer reports, "
                  "and repeating the request is safe",
        kind="cache-unavailable", headers=lambda e: {"Retry-After": str(e.retry_after)}),
    HistoryUnavailable: Problem(503, "Change history unavailable", _message, kind="cache-unavailable",
                                headers=_retry_after(1)),
    Unauthorized: Problem(401, "Unauthorized", _message, kind="unauthorized",
                          headers=lambda _e: {"WWW-Authenticate": 'Bearer realm="bizfed"'}),
    RateLimited: Problem(429, "Too many requests", _message, kind="rate-limited",
                         headers=lambda e: {"Retry-After": str((e.context or {}).get("retry_after", 1))}),
    # Sanic's 404 says "Requested URL /x not found": echoing the path helps no one and reflects input.
    RouteNotFound: Problem(404, "Not found", lambda _e, _s: "no such resource", headers=_sanic_headers),
    PayloadTooLarge: Problem(_too_large, None, _too_large_detail, headers=_sanic_headers),
    # Sanic's message echoes the URL, and its Allow is missing for routes with path parameters.
    MethodNotAllowed: Problem(405, "Method not allowed",
                              lambda e, _s: f"this resource does not accept {e.method or 'that method'}",
                              kind="method-not-allowed", headers=_sanic_headers, allow=True),
    SanicException: Problem(_sanic_status, None, _sanic_detail, headers=_sanic_headers),
    # Raised bare, the common base of the federation's errors is a bug; so is a cache value the codec
    # refused escaping the cache, or configuration read wrongly after start-up.
    FederationError: INTERNAL,
    LogUnavailable: INTERNAL,   # change capture handles it; it never belongs to a request
    CodecError: INTERNAL,
    SettingsError: INTERNAL,
    Exception: INTERNAL,
}


def problem_for(exc_type: type[BaseException]) -> Problem:
    """The answer to an exception of ``exc_type``: its own entry, or its nearest base's."""
    for cls in exc_type.__mro__:
        found = PROBLEMS.get(cls)
        if found is not None:
            return found
    return INTERNAL


def to_problem(request: Request, exc: BaseException) -> HTTPResponse:
    """Map an exception to its problem response; anything unmapped is a 500 that names only the request id."""
    entry = problem_for(type(exc))
    if entry.internal:
        return _internal(request, exc)
    status = entry.status(exc, request) if callable(entry.status) else entry.status
    title = entry.title or TITLES.get(status, "Error")
    headers = entry.headers(exc)
    if entry.allow and request is not None and "Allow" not in headers:
        headers["Allow"] = allowed_methods(request)
    return problem(status, title, entry.detail(exc, status), kind=entry.kind, headers=headers,
                   **entry.members(exc))


def allowed_methods(request: Request) -> str:
    """The methods the request's path is served by, asked of the router one by one (405s are rare)."""
    found = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        try:
            request.app.router.get(request.path, method, None)
        except SanicException:
            continue
        found.append(method)
    return ", ".join(found)


def _internal(request: Request | None, exc: BaseException) -> HTTPResponse:
    request_id = getattr(request.ctx, "request_id", None) if request is not None else None
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
    # A request refused before the worker's services were built (at start-up) has no metrics to count in.
    built = getattr(request.app.ctx, "services", None) if request is not None else None
    if request is not None and built is not None:
        built.metrics.internal_error(route_label(request))
    return problem(500, "Internal error", f"request {request_id} failed; quote this id when reporting it",
                   kind="internal", request_id=request_id)


