"""How ``bizfed serve`` runs Sanic: an HTTP/1.1 protocol that bounds the whole request head, and a quiet stop."""

from __future__ import annotations

import multiprocessing
import signal
from multiprocessing.managers import SyncManager
from time import monotonic

from sanic.http import Stage
from sanic.mixins import startup
from sanic.server.protocols.http_protocol import HttpProtocol


class BoundedHeadProtocol(HttpProtocol):
    """A request head must arrive whole within REQUEST_TIMEOUT of its first byte, or the client gets a 408.

    Sanic restarts REQUEST_TIMEOUT on every byte received, so a client sending one header line every
    few seconds (slowloris) would hold its connection for as long as it likes.
    """

    __slots__ = ("_head_started",)

    def data_received(self, data: bytes) -> None:
        http = self.http
        # Bytes that reach us outside the REQUEST stage start the next head (or are a body, whose
        # time RESPONSE_TIMEOUT bounds); bytes within it only continue the head already timed. No
        # connection reaches the REQUEST stage before its first bytes have come through here.
        if http is None or http.stage is not Stage.REQUEST:
            self._head_started = monotonic()
        super().data_received(data)

    def check_timeouts(self) -> None:
        http = self.http
        if (http is not None and http.stage is Stage.REQUEST
                and monotonic() - self._head_started > self.request_timeout):
            # Sanic's own check then answers 408 and closes, as for a client that fell silent.
            self._time = self._head_started
        super().check_timeouts()  # type: ignore[no-untyped-call]


def ignore_repeated_stop_signals() -> None:
    """In a worker process whose stop has begun, ignore SIGINT and SIGTERM from now on.

    A stop signal sent to the whole process group (Ctrl-C in a terminal, ``kill -- -<pgid>``) reaches
    each worker twice, directly and again from Sanic's worker manager; Sanic has already restored the
    default handlers by then, so the second one broke its clean-up with a traceback. The manager itself
    escalates to SIGKILL on a repeated signal, so a worker never needs a second one.
    """
    if multiprocessing.parent_process() is None:
        return   # a single process keeps a second Ctrl-C as the way to cut its stop short
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)


def shield_helpers_from_group_stop() -> None:
    """Sanic's worker-state server ignores SIGTERM: its parent stops it.

    Sanic's worker manager starts a multiprocessing state server and reads worker states from it
    until the very end of a stop. A SIGTERM sent to the whole process group (systemd's default,
    ``kill -- -<pgid>``) killed that server first, and the stop ended, now and then, in a
    BrokenPipeError traceback. Sanic shuts the server down itself afterwards (SIGKILL if it
    lingers). The server is spawned, not forked, so the handler is set by the initializer
    ``SyncManager.start`` runs in it; Sanic's ``Manager()`` call offers no way to pass one,
    hence the replacement of that one name.
    """
    setattr(startup, "Manager", _shielded_manager)  # noqa: B010  (the name is not exported)


def _shielded_manager() -> SyncManager:
    manager = SyncManager(ctx=multiprocessing.get_context())
    manager.start(_ignore_sigterm)
    return manager


def _ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
