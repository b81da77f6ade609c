"""``bizfed serve`` with a bug planted in one connector operation, for the programming-error tests.

``python -m tests.resilience.buggy_serve serve --host H --port P`` serves the real app over the real
connectors, except that ``BUGGY_OP`` (``source.operation``) asks its source as usual and then, after
``BUGGY_AFTER`` good calls (default 0), reads a field its result never had: an AttributeError raised
inside a source call, as a slip in our own code would raise it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from sanic import Sanic

from api.app import create_app
from api.settings import Settings, load_settings
from api.wiring import build_sources


class BrokenOp:
    """A connector that is the real one, but for one operation with a bug after ``after`` good calls."""

    def __init__(self, real: Any, op: str, after: int) -> None:
        self._real = real
        self._op = op
        self._after = after
        self._calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name != self._op:
            return attr

        async def broken(*args: Any, **kwargs: Any) -> Any:
            result = await attr(*args, **kwargs)
            self._calls += 1
            if self._calls <= self._after:
                return result
            return result.amount_due   # the bug: no record the connector returns has this field

        return broken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="buggy_serve")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    source, _, op = os.environ["BUGGY_OP"].partition(".")
    settings = load_settings()
    after = int(os.environ.get("BUGGY_AFTER", "0"))

    def sources_with_a_bug(settings: Settings) -> dict[str, Any]:
        sources = build_sources(settings)
        sources[source] = BrokenOp(sources[source], op, after)
        return sources

    app = create_app(settings, make_sources=sources_with_a_bug)
    app.prepare(host=args.host, port=args.port, single_process=True, motd=False, access_log=False)
    Sanic.serve_single(primary=app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
