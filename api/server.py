"""The HTTP/1.1 protocol ``bizfed serve`` runs: Sanic's, with a bound on the whole request head."""

from __future__ import annotations

from time import monotonic

from sanic.http import Stage
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

