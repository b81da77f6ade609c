"""Every failure as application/problem+json (RFC 9457): the one place errors become HTTP."""

from __future__ import annotations

import logging
from asyncio import CancelledError
from typing import Any

import orjson
from sanic import HTTPResponse, Request
from sanic.exceptions import SanicException

from federation.errors import BadRequest, Forbidden, NotFound, PrimaryUnavailable

log = logging.getLogger("bizfed.api")

TYPE_BASE = "https://bizfed.example/problems/"


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


def to_problem(request: Request, exc: BaseException) -> HTTPResponse:
    """Map an exception to its problem response; unknown errors become a bare 500."""
    if isinstance(exc, CancelledError):
        # The client hung up before the answer was ready (Sanic cancels the handler). Nobody will read
        # this answer, but metrics and the log see it: 499, as nginx names it, rather than a false 500.
        return problem(499, "Client closed request", "the connection closed before the answer was ready",
                       kind="client-closed")
    if isinstance(exc, BadRequest):
        return problem(400, "Bad request", exc.detail, kind="bad-request", param=exc.param)
    if isinstance(exc, NotFound):
        return problem(404, "Not found", f"no {exc.what} {exc.ident}", kind="not-found")
    if isinstance(exc, Forbidden):
        return problem(403, "Forbidden", str(exc), kind="forbidden")
    if isinstance(exc, PrimaryUnavailable):
        return problem(503, "Source unavailable", f"{exc.source} is unavailable ({exc.reason}) and nothing is cached",
                       kind="source-unavailable", headers={"Retry-After": str(exc.retry_after)},
                       source=exc.source)
    if isinstance(exc, Unauthorized):
        return problem(401, "Unauthorized", str(exc), kind="unauthorized",
                       headers={"WWW-Authenticate": 'Bearer realm="bizfed"'})
    if isinstance(exc, RateLimited):
        retry = str((exc.context or {}).get("retry_after", 1))
        return problem(429, "Too many requests", str(exc), kind="rate-limited", headers={"Retry-After": retry})
    if isinstance(exc, SanicException):
        status = int(exc.status_code)
        title = {404: "Not found", 405: "Method not allowed", 413: "Payload too large",
                 408: "Request timeout", 400: "Bad request"}.get(status, "Error")
        # Sanic's own messages are safe (routing, size limits), but hide anything from a 5xx.
        detail = str(exc) if status < 500 else "internal error"
        return problem(status, title, detail, headers=dict(getattr(exc, "headers", None) or {}))
    request_id = getattr(request.ctx, "request_id", None) if request else None
    log.exception("unhandled error", extra={"request_id": request_id})
    return problem(500, "Internal error", f"request {request_id} failed; quote this id when reporting it",
                   kind="internal", request_id=request_id)
