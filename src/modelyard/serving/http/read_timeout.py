"""Drop connections that take too long to send a request: slowloris and stalled bodies.

uvicorn times out idle keep-alive connections (``timeout_keep_alive``) but not a request
that is still arriving: a client that opens a connection and sends nothing, sends headers a
byte at a time, or declares a body and stalls holds a connection (and the app task waiting
for the body) forever. Enough of them exhaust file descriptors and memory.

:class:`ReadTimeoutProtocol` is uvicorn's httptools protocol with one more timer: armed when
a connection opens and when a request begins, cancelled when the request has fully arrived.
If it fires first, the connection is closed; an app waiting for the body then receives
``http.disconnect``. Once a request has arrived, answering it is the app's business (the
server's ``request_timeout_s`` answers 504). No work is added per request beyond arming and
cancelling a timer handle.

>>> uvicorn.run(app, http=read_timeout_protocol(30.0))            # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["ReadTimeoutProtocol", "read_timeout_protocol"]


class ReadTimeoutProtocol(HttpToolsProtocol):
    """httptools' HTTP/1.1 protocol, closing a connection whose request (headers and body)
    has not fully arrived ``read_timeout_s`` after the connection opened or the request
    began."""

    def __init__(self, *args: Any, read_timeout_s: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout_s = read_timeout_s
        self._read_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._read_timer is None:
            self._read_timer = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # the first request must arrive in time too (slowloris sends nothing)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def read_timeout_protocol(read_timeout_s: float) -> Any:
    """The ``http=`` argument for uvicorn: :class:`ReadTimeoutProtocol` with this timeout
    (a picklable partial, so that ``--workers N`` can hand it to its worker processes)."""
    return functools.partial(ReadTimeoutProtocol, read_timeout_s=read_timeout_s)
