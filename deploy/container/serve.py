#!/usr/bin/env python3
"""Container entry point: ``bizfed serve`` on all interfaces with one worker per CPU the container may use.

``BIZFED_WORKERS`` overrides the worker count, ``BIZFED_PORT`` the port (8000); extra arguments are passed on.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cpu_quota(cpu_max: Path = CGROUP_CPU_MAX) -> int | None:
    """Whole CPUs granted by the cgroup v2 quota (``docker run --cpus``), None when unlimited or unknown."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs this process may run on: the affinity mask, capped by a cgroup quota when there is one."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = cpu_quota(cpu_max)
    return max(1, min(cpus, quota) if quota else cpus)


def workers(environ: dict[str, str], cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """``BIZFED_WORKERS`` when it is a positive integer, else one worker per usable CPU."""
    raw = environ.get("BIZFED_WORKERS", "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise SystemExit(f"bizfed-serve: BIZFED_WORKERS must be a positive integer, got {raw!r}") from None
        if value < 1:
            raise SystemExit("bizfed-serve: BIZFED_WORKERS must be a positive integer")
        return value
    return usable_cpus(cpu_max)


def command(environ: dict[str, str], extra: list[str], cpu_max: Path = CGROUP_CPU_MAX) -> list[str]:
    """The ``bizfed serve`` command line this container runs."""
    port = environ.get("BIZFED_PORT", "8000")
    return ["bizfed", "serve", "--host", environ.get("BIZFED_HOST", "0.0.0.0"), "--port", port,  # noqa: S104
            "--workers", str(workers(environ, cpu_max)), *extra]


def main() -> None:
    argv = command(dict(os.environ), sys.argv[1:])
    print(f"bizfed-serve: {' '.join(argv)}", file=sys.stderr, flush=True)
    # exec, so bizfed itself is PID 1 and receives the runtime's SIGTERM directly (graceful shutdown).
    os.execvp(argv[0], argv)  # noqa: S606


if __name__ == "__main__":
    main()
