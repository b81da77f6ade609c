"""What the processes under load use, read from /proc: CPU seconds and resident memory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def _family(pid: int) -> Iterator[Path]:
    """``pid`` and its direct children (a server's main process and its workers)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if int(proc.name) == pid or f"PPid:\t{pid}\n" in (proc / "status").read_text():
                yield proc
        except OSError:
            continue


def rss_kb(pid: int) -> int:
    total = 0
    for proc in _family(pid):
        try:
            status = (proc / "status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
        except (OSError, StopIteration):
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its direct children."""
    ticks = 0
    for proc in _family(pid):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def pid_of(*needles: str) -> int:
    """The first process whose command line holds every one of ``needles``."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if all(n.encode() in cmd for n in needles):
                return int(proc.name)
    raise RuntimeError(f"no process with {needles} in its command line")


def server_pid(base: str) -> int:
    """The main process of the server listening at ``base`` (started by ``bench.harness.server``)."""
    return pid_of("serve", "--port " + base.rsplit(":", 1)[1])
