"""Schemathesis against /openapi.json with an admin key: every operation, no 5xx, answers as documented.

``BIZFED_FUZZ_EXAMPLES`` sets the examples per operation and mode (25 by default; ``make fuzz`` asks for
many more). Valid requests are generated without ``cursor``: a cursor is opaque and signed, so a generated
one is always a 400 (test_cursors.py covers those) and would hide everything behind it. Schemathesis's own
pytest plugin does not run under pytest 9 (it sets ``Node._nodeid``), so the tests drive its Python API.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from deploy.legacy.schema import LegacyTargets
from tests.security.support import changed_tables, legacy_checksums
from tests.servers import KEYS, Server

EXAMPLES = int(os.environ.get("BIZFED_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
AUTH = {"Authorization": f"Bearer {KEYS['admin']}"}
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])
EXPECTED_OPERATIONS = 13


@pytest.fixture(name="document", scope="module")
def _document(server: Server) -> dict[str, Any]:
    """The OpenAPI document the running server publishes."""
    response = httpx.get(server.base + "/openapi.json", timeout=30)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture(name="api_schema", scope="module")
def _api_schema(document: dict[str, Any], server: Server) -> schemathesis.BaseSchema:
    """The whole document, with requests sent to the running server."""
    return _loaded(document, server)


@pytest.fixture(name="cursorless_schema", scope="module")
def _cursorless_schema(document: dict[str, Any], server: Server) -> schemathesis.BaseSchema:
    """The document without the opaque ``cursor`` parameter, for requests meant to be valid."""
    trimmed = copy.deepcopy(document)
    for item in trimmed["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and "parameters" in operation:
                operation["parameters"] = [p for p in operation["parameters"] if p.get("name") != "cursor"]
    return _loaded(trimmed, server)


def _loaded(document: dict[str, Any], server: Server) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=server.base)
    return schema


def _operations(api_schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation[Any, Any, Any, Any]]:
    operations = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), f"an operation the document does not describe well: {result}"
        operations.append(result.ok())
    return operations


def _fuzz(operation: schemathesis.APIOperation[Any, Any, Any, Any], mode: GenerationMode) -> str | None:
    """Why the operation failed under ``mode`` (Hypothesis's shrunk example), or None."""
    @given(case=operation.as_strategy(generation_mode=mode))
    @SETTINGS
    def run(case: Any) -> None:
        case.call_and_validate(headers=AUTH, checks=CHECKS, timeout=30)

    try:
        run()
    except Unsatisfiable:
        return None  # no parameter or body to get wrong: nothing invalid can be generated
    except Exception as exc:
        return f"{operation.label} ({mode.value}): {exc}"
    return None


def test_valid_requests_hold_the_documented_contract(cursorless_schema: schemathesis.BaseSchema) -> None:
    """Generated valid requests to every operation get no 5xx, and only documented statuses, types and bodies."""
    _fuzz_all(cursorless_schema, GenerationMode.POSITIVE)


def test_invalid_requests_hold_the_documented_contract(api_schema: schemathesis.BaseSchema) -> None:
    """Generated invalid requests to every operation get no 5xx, and only documented statuses, types and bodies."""
    _fuzz_all(api_schema, GenerationMode.NEGATIVE)


def _fuzz_all(schema: schemathesis.BaseSchema, mode: GenerationMode) -> None:
    operations = _operations(schema)
    assert len(operations) >= EXPECTED_OPERATIONS, [op.label for op in operations]
    failures = [f for f in (_fuzz(op, mode) for op in operations) if f]
    assert not failures, "\n\n".join(failures)


def test_linked_operations_hold_the_contract(api_schema: schemathesis.BaseSchema) -> None:
    """Stateful runs that follow ids from lists into detail routes get no 5xx and only documented answers."""
    class Machine(api_schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": AUTH, "timeout": 30}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                              **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, headers=AUTH)

    Machine.run(settings=settings(SETTINGS, max_examples=max(5, EXAMPLES // 5), stateful_step_count=6))


def test_fuzzing_left_the_legacy_databases_unchanged(seeded: LegacyTargets, pristine: dict[str, str]) -> None:
    """After the fuzz runs every legacy table still has its seeded checksum."""
    assert not changed_tables(pristine, legacy_checksums(seeded))
