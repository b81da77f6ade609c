"""The OpenAPI document `bizfed serve` publishes: valid, complete, and good enough to generate a working client."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from deploy.legacy.schema import LegacyTargets
from tests.observability.conftest import Serve
from tests.servers import KEYS, Server, Upstreams

METHODS = ("get", "put", "post", "delete", "patch")
PROBLEM_STATUSES = ("400", "401", "403", "404", "429", "503")
# Written out here on purpose, not read from api/docs.py: these are the names clients are built on.
OPERATION_IDS = {
    ("get", "/v1/orders"): "listOrders", ("get", "/v1/orders/{order_no}"): "getOrder",
    ("get", "/v1/products"): "listProducts", ("get", "/v1/products/{sku}"): "getProduct",
    ("get", "/v1/customers"): "listCustomers", ("get", "/v1/customers/{customer_id}"): "getCustomer",
    ("get", "/v1/invoices"): "listInvoices", ("get", "/v1/sold-items"): "listSoldItems",
    ("get", "/v1/locations"): "listLocations", ("get", "/v1/sources"): "getSources",
    ("post", "/v1/cache/invalidate"): "invalidateCache", ("get", "/v1/changes"): "listChanges",
    ("get", "/health/live"): "getLiveness", ("get", "/health/ready"): "getReadiness",
}
GENERATOR = Path(sys.executable).with_name("openapi-python-client")
CLIENT_PACKAGE = "bizfed_client"


@pytest.fixture(name="upstreams", scope="module")
def _upstreams(seeded: LegacyTargets, redis_url: str) -> Upstreams:
    """Seeded legacy databases, so every detail operation has a real id to ask for."""
    return Upstreams(seeded, redis_url)


@pytest.fixture(name="server", scope="module")
def _server(serve: Serve) -> Server:
    return serve("openapi")


@pytest.fixture(name="document", scope="module")
def _document(server: Server) -> dict[str, Any]:
    """The document the running server publishes at /openapi.json."""
    response = server.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator for one of the document's schemas, its references resolved."""
    return Draft202012Validator({**schema, "components": document["components"]})


def test_document_passes_the_openapi_linter(document: dict[str, Any]) -> None:
    """openapi-spec-validator finds no error in the published document, which declares OpenAPI 3.1."""
    validator = pytest.importorskip("openapi_spec_validator")
    assert document["openapi"] == "3.1.0"
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.OpenAPIV31SpecValidator(document).iter_errors()]
    assert not errors, "\n".join(errors[:20])


def test_document_names_a_server_and_every_operation_readably(document: dict[str, Any]) -> None:
    """`servers` is present and each operation has its readable, unique operationId."""
    assert document["servers"]
    assert all("url" in server for server in document["servers"])
    ids = {(method, path): op.get("operationId") for method, path, op in _operations(document)}
    assert ids == OPERATION_IDS


def test_every_v1_operation_declares_problems_and_a_bodiless_304(document: dict[str, Any]) -> None:
    """Each /v1 operation lists its problem answers as application/problem+json, and each GET a 304 with no body."""
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    for method, path, op in _operations(document):
        if not path.startswith("/v1/"):
            continue
        responses = op["responses"]
        for status in PROBLEM_STATUSES:
            assert status in responses, f"{method} {path}: no {status}"
            content = responses[status].get("content", {})
            assert list(content) == ["application/problem+json"], f"{method} {path} {status}: {content}"
            assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
        if method == "get":
            assert "304" in responses, f"{method} {path}: no 304"
            assert "content" not in responses["304"], f"{method} {path}: a 304 has no body"


def test_boolean_filters_are_typed_boolean(document: dict[str, Any]) -> None:
    """in_stock, active and overdue are boolean query parameters."""
    found = {}
    for _, path, op in _operations(document):
        for parameter in op.get("parameters", []):
            if parameter["name"] in ("in_stock", "active", "overdue"):
                found[(path, parameter["name"])] = parameter["schema"]
    assert found == {("/v1/products", "in_stock"): {"type": "boolean"}, ("/v1/products", "active"): {"type": "boolean"},
                     ("/v1/invoices", "overdue"): {"type": "boolean"}}


@pytest.mark.parametrize(("method", "path", "role", "body"), [
    ("get", "/health/live", None, None),
    ("get", "/health/ready", None, None),
    ("get", "/v1/sources", "reader", None),
    ("post", "/v1/cache/invalidate", "admin", {"tags": ["customer:1"]}),
])
def test_operations_answers_match_their_documented_schema(server: Server, document: dict[str, Any], method: str,
                                                          path: str, role: str | None, body: Any) -> None:
    """The health probes, /v1/sources and the cache invalidation describe their JSON, and the real answer fits it."""
    response = server.request(method.upper(), path, role=role, json=body)
    assert response.status_code == 200, response.text
    declared = document["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
    assert "$ref" in declared
    errors = [e.message for e in _validator(document, declared).iter_errors(response.json())]
    assert not errors, errors


@pytest.fixture(name="client_package", scope="module")
def _client_package(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A Python client that openapi-python-client generates from the served document, importable for the module."""
    if not GENERATOR.is_file():
        pytest.skip("openapi-python-client is not installed (pip install -e '.[dev]')")
    work = tmp_path_factory.mktemp("client")
    (work / "openapi.json").write_bytes(server.get("/openapi.json").content)
    (work / "config.yaml").write_text("post_hooks: []\n")   # no formatter run over the generated code
    result = subprocess.run([str(GENERATOR), "generate", "--path", str(work / "openapi.json"), "--meta", "none",
                             "--output-path", str(work / CLIENT_PACKAGE), "--config", str(work / "config.yaml")],
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(work))
    try:
        yield work / CLIENT_PACKAGE
    finally:
        sys.path.remove(str(work))
        for name in [n for n in sys.modules if n == CLIENT_PACKAGE or n.startswith(CLIENT_PACKAGE + ".")]:
            del sys.modules[name]


def _snake(operation_id: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation_id)


class Calls:
    """Calls generated operations by operationId, strictly (an undocumented status raises), and records them."""

    def __init__(self, package: Path, base: str) -> None:
        self.package = package
        client = importlib.import_module(f"{CLIENT_PACKAGE}.client")
        self.public = client.Client(base_url=base, raise_on_unexpected_status=True, timeout=30.0)
        self.keyed = client.AuthenticatedClient(base_url=base, token=KEYS["admin"], raise_on_unexpected_status=True,
                                                timeout=30.0)
        self.called: set[str] = set()

    def module(self, operation_id: str) -> ModuleType:
        [found] = self.package.glob(f"api/*/{_snake(operation_id)}.py")
        return importlib.import_module(f"{CLIENT_PACKAGE}.api.{found.parent.name}.{found.stem}")

    def model(self, name: str) -> Any:
        return getattr(importlib.import_module(f"{CLIENT_PACKAGE}.models"), name)

    def __call__(self, operation_id: str, *, client: Any = None, status: int = 200, **kwargs: Any) -> Any:
        response = self.module(operation_id).sync_detailed(client=client or self.keyed, **kwargs)
        assert response.status_code == HTTPStatus(status), (operation_id, response.status_code, response.content)
        if status == 200:
            assert hasattr(response.parsed, "to_dict"), f"{operation_id}: the answer was not parsed into its model"
            response.parsed.to_dict()
        else:
            assert response.parsed is None
        self.called.add(operation_id)
        return response


def test_generated_client_calls_every_operation(server: Server, document: dict[str, Any],
                                                client_package: Path) -> None:
    """A client generated from the document calls each of its operations, a 304 included, and parses every answer."""
    call = Calls(client_package, server.base)
    call("getLiveness", client=call.public)
    call("getReadiness", client=call.public)
    call("getSources")
    call("listLocations", limit=5)
    sku = call("listProducts", limit=5, active=True, in_stock=True).parsed.data[0].sku
    product = call("getProduct", sku=sku)
    call("getProduct", sku=sku, client=call.keyed.with_headers({"If-None-Match": product.headers["etag"]}),
         status=304)
    customer_id = call("listCustomers", limit=5).parsed.data[0].id
    call("getCustomer", customer_id=customer_id)
    order_no = call("listOrders", limit=5).parsed.data[0].order_no
    call("getOrder", order_no=order_no)
    call("listInvoices", limit=5, overdue=False)
    call("listSoldItems", limit=5)
    body = call.model("InvalidateCacheBody").from_dict({"tags": [sku]})
    assert call("invalidateCache", body=body).parsed.data.dropped >= 0
    assert call("listChanges", limit=5).parsed.meta.partial is False
    assert call.called == {op["operationId"] for _, _, op in _operations(document)}
