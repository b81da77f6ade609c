"""Admin-only cache control: POST /v1/cache/invalidate."""

from __future__ import annotations

from typing import Any

import orjson
from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi

from api.responses import dumps
from api.services import services
from federation.errors import BadRequest
from federation.sources import SOURCES
from federation.tags import tags_named

admin = Blueprint("admin", url_prefix="/v1/cache")
MAX_TAGS = 500


def _body(request: Request) -> dict[str, Any]:
    if not request.body:
        raise BadRequest("body", "a JSON body is required: {\"tags\": [...]} or {\"source\": ...}")
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise BadRequest("body", "the body is not valid JSON") from None
    if not isinstance(body, dict) or set(body) - {"tags", "source", "key"} or not body:
        raise BadRequest("body", "the body takes only 'tags', 'source' and 'key'")
    return body


@admin.post("/invalidate", ctx_role="admin")
@openapi.definition(
    summary=("Drop cached entries by tag (a SKU, an order or account number, bare or as sku:/order:/account:<id>; "
             "customer:<id>; list:<source>), by source, or by key"),
    tag="operations", secured={"bearer": []},
    body={"application/json": {"type": "object", "minProperties": 1, "additionalProperties": False,
                               "dependentRequired": {"key": ["source"]}, "properties": {
        "tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 100},
                 "minItems": 1, "maxItems": MAX_TAGS},
        "source": {"type": "string", "enum": list(SOURCES)},
        "key": {"type": "string", "maxLength": 200}}}},
)
async def invalidate(request: Request) -> HTTPResponse:
    body = _body(request)
    cache = services(request.app).cache
    tags, source, key = body.get("tags"), body.get("source"), body.get("key")
    if "tags" in body and (not isinstance(tags, list) or not 0 < len(tags) <= MAX_TAGS
                             or not all(isinstance(t, str) and 0 < len(t) <= 100 for t in tags)):
        raise BadRequest("tags", f"'tags' must be a list of 1 to {MAX_TAGS} short strings")
    if source is not None and source not in SOURCES:
        raise BadRequest("source", f"'source' must be one of: {', '.join(SOURCES)}")
    if key is not None and (not isinstance(key, str) or source is None or len(key) > 200):
        raise BadRequest("key", "'key' must be a string and needs 'source'")
    dropped = 0
    if cache is not None:
        if tags:
            dropped += await cache.invalidate_tags([t for name in tags for t in tags_named(name)])
        if source is not None and key is not None:
            dropped += await cache.invalidate_key(source, key)
        elif source is not None:
            dropped += await cache.invalidate_source(source)
    data = {"dropped": dropped, "cache": "on" if cache is not None else "off"}
    return HTTPResponse(dumps({"data": data, "meta": {"sources": {}, "partial": False}}),
                        content_type="application/json", headers={"Cache-Control": "no-store"})
