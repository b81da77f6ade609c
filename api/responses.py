"""Successful /v1 answers: the envelope, ETag/304, Cache-Control and gzip."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from sanic import HTTPResponse, Request

from federation.context import RequestContext
from federation.paging import Page

GZIP_MIN_BYTES = 1400
_UNSAFE_IN_HEADERS = str.maketrans("", "", "\r\n\x00")
_JSON_OPTS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_JSON_OPTS)


def meta(ctx: RequestContext) -> dict[str, Any]:
    sources: dict[str, Any] = {}
    for name, report in ctx.sources.items():
        entry: dict[str, Any] = {"status": report.status, "cache": report.cache, "age_s": report.age_s}
        if report.error:
            entry["error"] = report.error
        sources[name] = entry
    body: dict[str, Any] = {"sources": sources, "partial": ctx.partial}
    if ctx.redacted:
        body["redacted"] = list(ctx.redacted)
    return body


def cache_control(ctx: RequestContext) -> str:
    if ctx.partial:
        return "no-store"
    ttls = [r.ttl for r in ctx.sources.values() if r.ttl is not None]
    max_age = int(min(ttls)) if ttls else 0
    if any(r.status == "stale" for r in ctx.sources.values()):
        max_age = 0
    # Content depends on the key's role, so shared caches must not keep it.
    return f"private, max-age={max_age}"


def envelope(request: Request, ctx: RequestContext, data: Any, page_cursor: str | None = None,
             page: Page[Any] | None = None) -> HTTPResponse:
    """The /v1 body, spliced from parts so the ETag covers the resource and not the volatile meta."""
    resource = dumps(data)
    if page is not None:
        resource += b',"page":' + dumps({"next_cursor": page_cursor, "limit": page.limit})
    etag = 'W/"' + hashlib.blake2b(resource, digest_size=16).hexdigest() + '"'
    request.ctx.answered = (resource, etag)
    return respond(request, ctx, resource, etag)


@dataclass(slots=True)
class Rendered:
    """An answer ready to send: body, headers and ETag (and the gzipped body, once asked for)."""

    payload: bytes
    headers: dict[str, str]
    etag: str
    gzipped: bytes | None = None


def render(ctx: RequestContext, resource: bytes, etag: str) -> Rendered:
    """The /v1 answer for an already serialised resource; meta and headers come from ``ctx``."""
    payload = b'{"data":' + resource + b',"meta":' + dumps(meta(ctx)) + b"}"
    return Rendered(payload, answer_headers(cache_control(ctx), etag, ctx), etag)


def respond(request: Request, ctx: RequestContext, resource: bytes, etag: str) -> HTTPResponse:
    return deliver(request, render(ctx, resource, etag))


def json_response(request: Request, payload: bytes, cache_control: str,
                  ctx: RequestContext | None = None, etag: str | None = None) -> HTTPResponse:
    etag = etag or '"' + hashlib.blake2b(payload, digest_size=16).hexdigest() + '"'
    return deliver(request, Rendered(payload, answer_headers(cache_control, etag, ctx), etag))


def answer_headers(cache_control: str, etag: str, ctx: RequestContext | None = None) -> dict[str, str]:
    headers = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Authorization, Accept-Encoding"}
    if ctx is not None:
        ages = [r.age_s for r in ctx.sources.values() if r.cache in ("hit", "stale")]
        if ages:
            headers["Age"] = str(int(max(ages)))
        status = [f"bizfed; {_CACHE_STATUS[r.cache]}; detail={name}" for name, r in ctx.sources.items()
                  if r.cache != "none"]
        if status:
            headers["Cache-Status"] = ", ".join(status)
    return headers


def deliver(request: Request, answer: Rendered) -> HTTPResponse:
    """``answer`` as this request wants it: 304 when its ETag matches, gzipped when accepted and worth it."""
    if _matches(request.headers.get("if-none-match"), answer.etag):
        return ApiResponse(status=304, headers=answer.headers)
    if len(answer.payload) >= GZIP_MIN_BYTES and accepts_gzip(request.headers.get("accept-encoding", "")):
        if answer.gzipped is None:
            answer.gzipped = gzip.compress(answer.payload, compresslevel=5)
        return ApiResponse(answer.gzipped, status=200, headers={**answer.headers, "Content-Encoding": "gzip"},
                           content_type="application/json")
    return ApiResponse(answer.payload, status=200, headers=answer.headers, content_type="application/json")


class ApiResponse(HTTPResponse):
    """An ``HTTPResponse`` that encodes its headers more cheaply, with the same result.

    Sanic strips CR, LF and NUL from every header name and value with ``str.translate``, which
    took a tenth of a cached answer's CPU; here only a value that holds one of them is translated.
    """

    __slots__ = ()

    @property
    def processed_headers(self) -> Iterator[tuple[bytes, bytes]]:
        if self.status not in (204, 304) and not 100 <= self.status < 200:   # these carry no body
            self.headers.setdefault("content-type", self.content_type)
        return ((_header_text(name).encode("ascii"), _header_text(f"{value}").encode(errors="surrogateescape"))
                for name, value in self.headers.items())


# RFC 9211 Cache-Status per source: a fresh hit, or why the answer went (or would have gone) to the source.
_CACHE_STATUS = {"hit": "hit", "stale": "fwd=stale", "miss": "fwd=miss", "bypass": "fwd=bypass"}


def accepts_gzip(accept_encoding: str) -> bool:
    """True when the client lists gzip (or ``*``) with a non-zero quality (RFC 9110 12.5.3)."""
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.partition(";")
        if coding.strip() in ("gzip", "x-gzip", "*"):
            return _quality(params) > 0
    return False


def accepts_json(accept: str | None) -> bool:
    """True unless the client's ``Accept`` rules out JSON (and problem+json) altogether."""
    if not accept or not accept.strip():
        return True
    for item in accept.lower().split(","):
        media, _, params = item.partition(";")
        media = media.strip()
        json_like = media in ("*/*", "application/*", "application/json") or media.endswith("+json")
        if json_like and _quality(params) > 0:
            return True
    return False


def accepts_events(accept: str | None) -> bool:
    """True when ``Accept`` asks for Server-Sent Events (as EventSource does)."""
    return any(item.partition(";")[0].strip() == "text/event-stream" and _quality(item.partition(";")[2]) > 0
               for item in (accept or "").lower().split(","))


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def _header_text(text: str) -> str:
    if "\r" in text or "\n" in text or "\x00" in text:
        return text.translate(_UNSAFE_IN_HEADERS)
    return text


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    # Weak comparison (RFC 9110 8.8.3.2), as If-None-Match uses.
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in if_none_match.split(","))
