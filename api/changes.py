"""GET /v1/changes: Server-Sent Events naming each resource a committed change may have altered."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi

from api.change_followers import END, ChangeFollowers, Entry, HistoryUnavailable, parse_id, visible
from api.docs import CHANGES_PARAMS
from api.params import limit, parse_query
from api.responses import accepts_events, dumps, json_response
from api.routing import read
from api.services import services
from federation.errors import BadRequest
from federation.roles import FINANCE_ROLES

changes = Blueprint("changes", url_prefix="/v1")
HEARTBEAT = 15.0    # seconds of silence before a comment line keeps proxies from closing the stream
RETRY_MS = 2000     # how long EventSource waits before reconnecting
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def _event_id(name: str, raw: str) -> str:
    value = raw.strip()
    if value in ("", "$"):
        return ""
    if len(value) > 40 or parse_id(value) is None:
        raise BadRequest(name, f"'{name}' must be an event id this stream sent, such as 1733500000000-0")
    return value


def _any(_name: str, raw: str) -> str:
    return raw


@read(changes, "/changes", ctx_role="reader", ctx_query_key=True, ctx_event_stream=True)
@openapi.definition(
    summary="Changes: the resources committed changes may have altered, as JSON or as Server-Sent Events",
    description="As JSON (the default), the events after `last_event_id`, or the latest `limit` ones, oldest "
                "first; poll again with `meta.last_event_id`. With `Accept: text/event-stream`, a stream that "
                "stays open: each event is `event: change`, `id: <stream id>` and `data: {\"path\", \"source\", "
                "\"changed_at\"}`; fetch the path again to see the new state. Reconnecting with "
                "`Last-Event-ID` (or `?last_event_id=`) resumes after that event within the retained "
                "window; if events were trimmed meanwhile an `event: reset` says so: refetch what you show. "
                "Readers get no event about Accounting-only resources. `?key=` may carry the API key for "
                "browsers' EventSource, which cannot send headers.",
    tag="operations", secured={"bearer": []}, parameter=CHANGES_PARAMS,
)
async def follow(request: Request) -> HTTPResponse | None:
    args = parse_query(request.args, {"last_event_id": _event_id, "key": _any, "limit": limit})
    last = _event_id("Last-Event-ID", request.headers.get("last-event-id", "")) or args.get("last_event_id", "")
    followers = services(request.app).changes
    finance = getattr(request.ctx, "role", None) in FINANCE_ROLES
    if not accepts_events(request.headers.get("accept")):
        return await _listed(request, followers, last, args.get("limit", 100), finance)
    headers = {**HEADERS, "Content-Type": "text/event-stream; charset=utf-8"}
    if request.method == "HEAD":
        return HTTPResponse(status=200, headers=headers)
    if followers is None or followers.closed:
        return HTTPResponse(b"retry: %d\n\n" % RETRY_MS, status=200, headers=headers)
    # Follow before reading the backlog, so nothing falls between the two; ids already sent are skipped.
    follower = followers.follow()
    try:
        window = await _backlog(followers, last)
        response = await request.respond(headers=headers)
        await response.send(b"retry: %d\n\n" % RETRY_MS)
        if window is not None and window.missed:
            await response.send(_frame("reset", "", {"reason": "events after the given id were trimmed"}))
        sent = last
        for entry in window.entries if window is not None else ():
            sent = await _send(response, entry, sent, finance)
        while True:
            try:
                entry = await asyncio.wait_for(follower.queue.get(), HEARTBEAT)
            except TimeoutError:
                await response.send(b": keep-alive\n\n")
                continue
            if entry is END:
                break
            if follower.overflowed:
                await response.send(_frame("reset", "", {"reason": "this client fell too far behind"}))
                follower.overflowed = False
            sent = await _send(response, entry, sent, finance)
        await response.eof()
    finally:
        followers.leave(follower)
    return None


async def _listed(request: Request, followers: ChangeFollowers | None, last: str, count: int,
                  finance: bool) -> HTTPResponse:
    """The JSON form, for clients that poll: events after ``last`` (or the latest ones), oldest first."""
    entries: list[Entry] = []
    missed = False
    if followers is not None:
        try:
            if last:
                window = await followers.stream.after(last, count)
                entries, missed = window.entries, window.missed
            else:
                entries = await followers.stream.latest(count)
        except Exception as exc:
            raise HistoryUnavailable("the change history could not be read") from exc
    rows = [{"id": entry_id, **_event(fields)} for entry_id, fields in entries if visible(fields, finance)]
    newest = entries[-1][0] if entries else (last or None)
    body = {"data": rows, "meta": {"sources": {}, "partial": False, "last_event_id": newest, "missed": missed}}
    return json_response(request, dumps(body), "no-store")


def _event(fields: dict[str, str]) -> dict[str, str | None]:
    return {"path": fields.get("path"), "source": fields.get("source"), "changed_at": fields.get("changed_at")}


async def _backlog(followers: ChangeFollowers, last: str) -> Any:
    if not last:
        return None
    with contextlib.suppress(Exception):   # Redis away: the live stream carries on once it is back
        return await followers.stream.after(last)
    return None


async def _send(response: Any, entry: Entry, sent: str, finance: bool) -> str:
    entry_id, fields = entry
    if sent and not _after(entry_id, sent):
        return sent
    if visible(fields, finance):
        await response.send(_frame("change", entry_id, _event(fields)))
    return entry_id


def _after(a: str, b: str) -> bool:
    pa, pb = parse_id(a), parse_id(b)
    return pa is None or pb is None or pa > pb


def _frame(event: str, entry_id: str, data: dict[str, Any]) -> bytes:
    head = f"event: {event}\n" + (f"id: {entry_id}\n" if entry_id else "")
    return head.encode() + b"data: " + orjson.dumps(data) + b"\n\n"
