"""How routes are declared: every GET route also answers HEAD, by the same handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from sanic import Blueprint

Handler = TypeVar("Handler", bound=Callable[..., Any])


def read(blueprint: Blueprint, uri: str, **options: Any) -> Callable[[Handler], Handler]:
    """``blueprint.get(uri)`` that answers HEAD too.

    HEAD runs the GET handler itself (Sanic drops the body), so auth, status, headers and the blueprint's
    middleware are the same; the HEAD routes sanic-ext derives would skip the GET route's rules.
    """
    return cast(Callable[[Handler], Handler], blueprint.route(uri, methods=("GET", "HEAD"), **options))
