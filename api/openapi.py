"""GET /openapi.json: sanic-ext's document, built once, completed where its decorators cannot say it.

sanic-ext describes what each route declares; it cannot name operations readably, drop the body of a 304,
give the shared problem answers to every operation or describe the bodies of handlers that write their
JSON by hand. ``complete`` does those things, from the descriptions in api/docs.py.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema
from sanic import Blueprint, HTTPResponse, Request, Sanic
from sanic_ext import openapi
from sanic_ext.extensions.openapi.builders import SpecificationBuilder

from api import docs
from api.routing import read

openapi_routes = Blueprint("openapi_document")

METHODS = ("get", "put", "post", "delete", "patch")
PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {"description": "The resource's validator; send it back as If-None-Match",
             "schema": {"type": "string"}},
    "Cache-Control": {"description": "How long the answer may be reused", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before asking again", "schema": {"type": "integer"}},
    "WWW-Authenticate": {"description": "The scheme to authenticate with: Bearer", "schema": {"type": "string"}},
}
_PROBLEM_HEADERS = {401: ["WWW-Authenticate"], 429: ["Retry-After"], 503: ["Retry-After"]}


class _AbsentNotNull(GenerateJsonSchema):
    """Leaves out ``"default": null``: in api/docs.py such a member is absent when it does not apply."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        if schema.get("default", ...) is None:
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)


def build_document(app: Sanic[Any, Any]) -> dict[str, Any]:
    """The whole document, from the operations sanic-ext collected when the app started."""
    spec: dict[str, Any] = SpecificationBuilder().build(app).serialize()  # type: ignore[no-untyped-call]
    # Response maps come keyed by integer status codes; JSON wants strings.
    spec = orjson.loads(orjson.dumps(spec, option=orjson.OPT_NON_STR_KEYS))
    return complete(spec)


def complete(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with servers, readable ids, every problem and 304 answer, and the operations routes' bodies."""
    spec = copy.deepcopy(spec)
    # The response schemas come from pydantic as JSON Schema 2020-12 (e.g. nullable as anyOf with "null"),
    # which is what OpenAPI 3.1 speaks.
    spec["openapi"] = "3.1.0"
    spec["servers"] = [{"url": "/", "description": "The service that serves this document"}]
    named = {tag["name"] for tag in docs.TAGS}
    spec["tags"] = [*copy.deepcopy(docs.TAGS), *(t for t in spec.get("tags", []) if t.get("name") not in named)]
    spec["paths"] = dict(sorted(spec.get("paths", {}).items()))
    info = spec.setdefault("info", {})
    if not info.get("contact"):
        info.pop("contact", None)   # sanic-ext writes an empty one
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    _add_schema(schemas, docs.Problem)
    spec["components"]["headers"] = copy.deepcopy(_HEADERS)
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            op["operationId"] = docs.OPERATION_IDS.get((method, path)) or _camel(op.get("operationId", ""))
            if "requestBody" in op:
                op["requestBody"]["required"] = True   # a handler given no body answers 400
            responses: dict[str, Any] = op.setdefault("responses", {})
            extra = docs.OPERATIONS_RESPONSES.get((method, path))
            if extra:
                responses.pop("default", None)
                for status, (description, model) in extra.items():
                    responses[str(status)] = {"description": description,
                                              "content": {"application/json": {"schema": _add_schema(schemas,
                                                                                                     model)}}}
            if path.startswith("/v1/"):
                _problems(responses)
                if method == "get":
                    _conditional(responses)
            op["responses"] = dict(sorted(responses.items()))
    return spec


def _problems(responses: dict[str, Any]) -> None:
    for status, description in docs.PROBLEMS.items():
        answer = responses.setdefault(str(status), {"description": description})
        answer["content"] = {PROBLEM_JSON: {"schema": dict(PROBLEM_REF)}}
        for name in _PROBLEM_HEADERS.get(status, []):
            answer.setdefault("headers", {})[name] = {"$ref": f"#/components/headers/{name}"}


def _conditional(responses: dict[str, Any]) -> None:
    """GET answers carry an ETag; the same request with that ETag in If-None-Match gets a bodiless 304."""
    ok = responses.get("200")
    if ok is not None:
        ok.setdefault("headers", {}).update({name: {"$ref": f"#/components/headers/{name}"}
                                             for name in ("ETag", "Cache-Control")})
    responses["304"] = {"description": "Not modified: If-None-Match matched the ETag; no body",
                        "headers": {"ETag": {"$ref": "#/components/headers/ETag"}}}


def _add_schema(schemas: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    """Put ``model`` and the models it uses into components; a reference to it."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", schema_generator=_AbsentNotNull)
    for name, definition in schema.pop("$defs", {}).items():
        schemas[name] = definition
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _camel(operation_id: str) -> str:
    """sanic-ext's ``get~v1.list_orders`` as ``listOrders``, for a route api/docs.py does not name."""
    words = operation_id.rpartition(".")[2].split("_")
    return words[0] + "".join(w.title() for w in words[1:])


@read(openapi_routes, "/openapi.json")
@openapi.exclude()
async def openapi_document(request: Request) -> HTTPResponse:
    document = getattr(request.app.ctx, "openapi_document", None)
    if document is None:
        document = request.app.ctx.openapi_document = orjson.dumps(build_document(request.app))
    return HTTPResponse(document, content_type="application/json")
