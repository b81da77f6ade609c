"""Run every load benchmark in turn and print their markdown tables: ``make bench``."""

from __future__ import annotations

import sys

from bench import api_load, cache_load, outage


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    for scenario in (api_load, cache_load, outage):
        scenario.main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
