"""Start a server as its own process group and stop the whole group, workers included."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any


def start_group(cmd: Sequence[str], *, env: Mapping[str, str], cwd: Path,
                output: IO[Any] | int | None = None) -> subprocess.Popen[bytes]:
    """``cmd`` in a new session, so stopping it can reach every worker it forks."""
    return subprocess.Popen(list(cmd), env=dict(env), cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the group (a graceful stop), then SIGKILL whatever is left after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
    # Workers stuck in a driver call can outlive their main process; never leave them running.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
