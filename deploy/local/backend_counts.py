"""Counting, from the backend's side, the commands a bizfed process sends Redis.

Used by the health-probe tests and ``bench.health_load`` beside ``FaultProxy.bytes_to_upstream`` for the SQL
servers (PostgreSQL reports its statistics up to seconds late, MariaDB keeps none per database here).
"""

from __future__ import annotations

import re
import socket
import threading
import time

_MONITOR_LINE = re.compile(rb'^\+\d+\.\d+ \[(\d+) [^\]]*\] "([^"]*)"')


class RedisCommands:
    """Counts the commands Redis runs in one logical database while started, through ``MONITOR``."""

    def __init__(self, host: str, port: int, db: int, password: str | None = None) -> None:
        self._address = (host, port)
        self._db = db
        self._password = password
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def count(self, command: str) -> int:
        with self._lock:
            return self._counts.get(command.upper(), 0)

    def start(self) -> RedisCommands:
        sock = socket.create_connection(self._address, timeout=5)
        if self._password:
            sock.sendall(_command("AUTH", self._password))
            _expect_ok(sock)
        sock.sendall(_command("MONITOR"))
        _expect_ok(sock)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._read, name="redis-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop counting after what Redis has already sent; the counts stay readable."""
        time.sleep(0.3)   # lines for commands just run may still be on their way
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> RedisCommands:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _read(self) -> None:
        assert self._sock is not None
        pending = b""
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            *lines, pending = (pending + data).split(b"\r\n")
            for line in lines:
                found = _MONITOR_LINE.match(line)
                if found and int(found.group(1)) == self._db:
                    name = found.group(2).decode(errors="replace").upper()
                    with self._lock:
                        self._counts[name] = self._counts.get(name, 0) + 1


def _command(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        raw = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def _expect_ok(sock: socket.socket) -> None:
    reply = sock.recv(1024)
    if not reply.startswith(b"+OK"):
        raise RuntimeError(f"redis refused: {reply[:100]!r}")
