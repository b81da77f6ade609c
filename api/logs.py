"""Structured JSON-lines logs: one line per request, every ``bizfed.*`` record scrubbed of secrets."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse

from api.metrics import route_label

LOGGER = "bizfed"
REQUEST_LOGGER = "bizfed.request"
REDACTED = "[redacted]"

# Order matters: whole connection strings go first, so their parts are not half-redacted.
_SCRUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(?:DRIVER|DSN)=.*"), "[redacted connection string]"),
    (re.compile(r"(?i)\b((?:postgres(?:ql)?|mysql|mariadb|mssql|redis|rediss|amqp)(?:\+\w+)?://)\S+"),
     r"\1" + REDACTED),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]*:[^/\s@]*@"), r"\1" + REDACTED + "@"),
    (re.compile(r"(?i)\bbearer\s+[^\s,;\"']+"), "Bearer " + REDACTED),
    (re.compile(r"(?i)\b(key|api_?key|token|access_token|secret|password|passwd|pwd)=[^&;\s\"']*"),
     r"\1=" + REDACTED),
)
_EXTRA_FIELDS = ("request_id", "source")


# Every pattern above needs one of these; most log values (ids, routes, statuses) have none.
_TRIGGERS = ("=", "://", "bearer")


def scrub(text: str) -> str:
    """``text`` without API keys, bearer tokens, passwords or connection strings."""
    lowered = text.lower()
    if not any(trigger in lowered for trigger in _TRIGGERS):
        return text
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    return text


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    return value


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line; a record's ``event`` dict becomes its fields."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            body.update(event)
        else:
            body["msg"] = record.getMessage()
        for name in _EXTRA_FIELDS:
            if name not in body and getattr(record, name, None) is not None:
                body[name] = getattr(record, name)
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(_scrubbed(body), default=str).decode()


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so installing twice in one process adds no second one."""


def configure_json_logging(stream: TextIO | None = None) -> logging.Logger:
    """Send every ``bizfed.*`` logger through one JSON-lines handler (stdout by default)."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(h, _JsonHandler) for h in logger.handlers):
        handler = _JsonHandler(stream or sys.stdout)
        handler.setFormatter(JsonLinesFormatter())
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return logger


def request_event(request: Request, response: BaseHTTPResponse, duration_ms: float,
                  head: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields of a request's log line after ``head``; the text the client chose is scrubbed."""
    fed = getattr(request.ctx, "fed", None)
    request_id = getattr(request.ctx, "request_id", None)
    event: dict[str, Any] = {
        **(head or {}),
        "event": "request",
        "request_id": scrub(request_id) if request_id else request_id,
        "method": request.method,
        "route": route_label(request),
        "path": scrub(request.path),
        "status": response.status,
        "duration_ms": round(duration_ms, 2),
        "role": getattr(request.ctx, "role", None),
        # SourceReport dataclasses: orjson writes them as objects (status, cache, age_s, error, ttl).
        "sources": getattr(fed, "sources", None) or {},
    }
    if request.query_string:
        event["query"] = scrub(request.query_string)
    if fed is not None and fed.partial:
        event["partial"] = True
    if getattr(request.ctx, "snapshot", False):
        event["snapshot"] = True
    return event


class RequestIds:
    """Ids for requests that bring none: a random per-process prefix and a counter.

    As unique as ``uuid4().hex`` for this purpose (32 hex digits), without a random read per request.
    """

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(10)
        self._next = itertools.count()

    def new(self) -> str:
        return f"{self._prefix}{next(self._next):012x}"


class RequestLog:
    """Request lines written in batches: one write and flush per batch instead of one per request.

    Through ``logging`` a request line cost more CPU than the rest of a cached answer. Lines keep the
    format and scrubbing of ``JsonLinesFormatter`` and reach the stream within ``flush_after`` seconds;
    a 5xx line is written at once.
    """

    def __init__(self, stream: TextIO | None = None, *, flush_after: float = 0.2, batch: int = 256) -> None:
        self._stream = stream
        self._logger = logging.getLogger(REQUEST_LOGGER)
        self._flush_after = flush_after
        self._batch = batch
        self._lines: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._second_text = ""

    def write(self, request: Request, response: BaseHTTPResponse, duration_ms: float) -> None:
        level = logging.ERROR if response.status >= 500 else logging.INFO
        if not self._logger.isEnabledFor(level):
            return
        head = {"ts": self._timestamp(time.time()), "level": "error" if level == logging.ERROR else "info",
                "logger": REQUEST_LOGGER}
        self._lines.append(orjson.dumps(request_event(request, response, duration_ms, head), default=str,
                                        option=orjson.OPT_APPEND_NEWLINE))
        if level >= logging.ERROR or len(self._lines) >= self._batch:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_after, self.flush)

    def _timestamp(self, now: float) -> str:
        """``datetime.isoformat`` to the millisecond, formatting the date and time only once a second."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._second_text}.{int((now - second) * 1000):03d}+00:00"

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        text, self._lines = b"".join(self._lines).decode(), []
        stream = self._stream or sys.stdout
        with contextlib.suppress(OSError, ValueError):   # a closed or broken stdout must not fail requests
            stream.write(text)
            stream.flush()


def install_request_log(app: Sanic[Any, Any], stream: TextIO | None = None) -> RequestLog:
    """JSON-lines logging for ``bizfed.*`` and the request log, flushed when the server stops."""
    configure_json_logging(stream)
    request_log = RequestLog(stream)

    async def flush(app: Sanic[Any, Any]) -> None:
        request_log.flush()

    app.register_listener(flush, "after_server_stop")
    return request_log
