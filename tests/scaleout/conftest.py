"""Fixtures for scale-out tests: seeded legacy databases, and a load generator that runs in a thread."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from tests.servers import KEYS

# Routes that read each source, as the resilience suite's Redis outage test uses.
PATHS = ("/v1/locations", "/v1/products?limit=20", "/v1/customers/1", "/v1/orders?limit=20")


@dataclass
class Load:
    """Requests ``paths`` round robin from one thread until stopped, counting outcomes."""

    base: str
    paths: Sequence[str] = PATHS
    timeout: float = 10.0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    cache_states: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + len(self.errors)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {KEYS['finance']}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=self.timeout) as client:
            i = 0
            while not self._stop.is_set():
                path = self.paths[i % len(self.paths)]
                i += 1
                try:
                    response = client.get(path)
                except httpx.HTTPError as exc:
                    self.errors.append(f"{path}: {type(exc).__name__}")
                    time.sleep(0.01)
                    continue
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    for source in response.json()["meta"]["sources"].values():
                        if "cache" in source:
                            self.cache_states[source["cache"]] += 1
