"""Structured JSON-lines logs: one line per request, every ``bizfed.*`` record scrubbed of secrets."""

from __future__ import annotations

import logging
import re
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


def request_event(request: Request, response: BaseHTTPResponse, duration_ms: float) -> dict[str, Any]:
    """The fields of a request's log line; values pass through ``scrub`` when formatted."""
    sources: dict[str, Any] = {}
    fed = getattr(request.ctx, "fed", None)
    for name, report in (getattr(fed, "sources", None) or {}).items():
        entry = {"status": report.status, "cache": report.cache}
        if report.error:
            entry["error"] = report.error
        sources[name] = entry
    event: dict[str, Any] = {
        "event": "request",
        "request_id": getattr(request.ctx, "request_id", None),
        "method": request.method,
        "route": route_label(request),
        "path": request.path,
        "status": response.status,
        "duration_ms": round(duration_ms, 2),
        "role": getattr(request.ctx, "role", None),
        "sources": sources,
    }
    if request.query_string:
        event["query"] = request.query_string
    if fed is not None and getattr(fed, "partial", False):
        event["partial"] = True
    return event


def install_request_log(app: Sanic[Any, Any], stream: TextIO | None = None) -> None:
    """Log one JSON line per answered request to the ``bizfed.request`` logger."""
    configure_json_logging(stream)
    log = logging.getLogger(REQUEST_LOGGER)

    async def start_clock(request: Request) -> None:
        request.ctx.log_started = time.perf_counter()

    async def write(request: Request, response: BaseHTTPResponse) -> None:
        started = getattr(request.ctx, "log_started", None)
        duration_ms = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        level = logging.ERROR if response.status >= 500 else logging.INFO
        log.log(level, "request", extra={"event": request_event(request, response, duration_ms)})

    app.register_middleware(start_clock, "request", priority=1000)
    app.register_middleware(write, "response")
