"""Header-read timeout for uvicorn: a client must send a request's headers in time.

uvicorn cancels its keep-alive timer on the first byte of a request and has no timer
for the rest of the headers, so a client sending one header byte every few seconds
(slowloris) holds a connection, and a worker's socket, for ever; so does one that
connects and never sends anything. :class:`HeaderTimeoutProtocol` is uvicorn's
httptools protocol with one more timer: armed when a connection is made and when the
first bytes of the next request arrive on an idle kept-alive connection, disarmed when
the headers are complete. On expiry a started request gets 408 ``RequestTimeout`` in
the service's error shape (``backend/ops/limits.py`` times the body the same way), and
the connection is closed; a connection that never started a request is just closed,
like an idle keep-alive one (a browser's unused pre-opened socket must not be handed a
response it never asked for).

``uvicorn_options`` (``backend/ops/server.py``) selects this protocol through
:func:`http_protocol`, so httptools always runs, with or without ``--workers``.

This module must never add work per byte, nor per chunk beyond one attribute check:
the timer is armed only when the bytes in hand do not complete the headers, so a request
that arrives in one piece costs no timer at all. It must never write into the middle of
another response.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from backend.ops.metrics import HEADER_TIMEOUTS


def timeout_response(timeout_s: float, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The bytes of the 408 sent when a request's headers are late."""
    body = json.dumps(
        {
            "error": "RequestTimeout",
            "detail": f"the request headers did not arrive within {timeout_s:g} s; "
            "send them at once",
            "detail_zh": f"请求头未在 {timeout_s:g} 秒内传完，请检查网络后重试",
        },
        separators=(",", ":"),
    ).encode()
    head = [STATUS_LINE[408]]
    for name, value in default_headers:
        head += [name, b": ", value, b"\r\n"]
    head += [
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header-read timeout; see the module docstring."""

    def __init__(self, *args: Any, header_read_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_read_timeout_s = header_read_timeout_s
        self.header_timer: asyncio.TimerHandle | None = None
        self.awaiting_headers = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn arms no timer for a new connection: the first request's headers
        # are timed from the connection, so a silent connection is closed too.
        self.awaiting_headers = True
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    # The two methods below run for every request: they call the base class by name, as
    # super() costs more than all their other work together.

    def data_received(self, data: bytes) -> None:
        if self.timeout_keep_alive_task is None:
            # Within a request or its response (its body is timed by BodyLimits), or
            # its headers are already being timed.
            HttpToolsProtocol.data_received(self, data)
            return
        # Idle kept-alive connection: these are the first bytes of the next request
        # (or CRLFs before one, which the parser skips without starting a request).
        self.awaiting_headers = True
        HttpToolsProtocol.data_received(self, data)
        if self.awaiting_headers and not self.transport.is_closing():
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self.awaiting_headers = False
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None
        HttpToolsProtocol.on_headers_complete(self)

    def _arm_header_timer(self) -> None:
        self.header_timer = self.loop.call_later(
            self.header_read_timeout_s, self.header_timeout_handler
        )

    def _disarm_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def header_timeout_handler(self) -> None:
        """The headers are late: 408 if a request has started, and close."""
        self.header_timer = None
        if self.transport.is_closing():
            return
        # The parser's on_message_begin makes a fresh scope for each request and
        # on_headers_complete gives it its method: a scope without one is a request
        # whose headers are still arriving (CRLFs alone start none).
        started = self.scope is not None and "method" not in self.scope
        answered = self.cycle is None or self.cycle.response_complete
        if started and answered:
            self.transport.write(
                timeout_response(self.header_read_timeout_s, self.server_state.default_headers)
            )
        HEADER_TIMEOUTS.labels("answered_408" if started and answered else "closed").inc()
        self.transport.close()


def http_protocol(header_read_timeout_s: float) -> Callable[..., HeaderTimeoutProtocol]:
    """The ``http`` option for uvicorn: :class:`HeaderTimeoutProtocol` with this timeout.

    A partial of a module-level class, so that uvicorn can pickle its config into
    ``--workers`` processes.
    """
    return functools.partial(HeaderTimeoutProtocol, header_read_timeout_s=header_read_timeout_s)
