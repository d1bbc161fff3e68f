"""Request body limits: size (413) and read time (408), as a pure ASGI middleware.

The limits are checked on the bytes actually received, not on what the client
declares, so a chunked body without ``Content-Length`` is limited like any
other; a declared length over the limit is refused before anything is read.
The whole body must arrive within ``HM_BODY_READ_TIMEOUT_S`` of the app first
asking for it, so a client trickling a body cannot keep a request open for
ever. Both errors are raised from ``receive`` as HTTP exceptions, so the app's
handlers render them in the one error shape (``PayloadTooLarge``,
``RequestTimeout``) — or as an HTML page for a browser — and both close the
connection, since the rest of the body is never read.

A response sent without reading a request's body also closes the connection,
so a client cannot keep streaming an unread body into a kept-alive socket.

This module must never buffer a body itself: it only counts and times what the
app reads.
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Endpoints that take a whole file (HM_MAX_BULK_BODY_BYTES instead of HM_MAX_BODY_BYTES).
BULK_UPLOAD_PATHS = frozenset({"/api/supervision/records/bulk", "/regulator/outcomes/bulk"})

CLOSE = {"Connection": "close"}


class BodyTooLarge(HTTPException):
    """The request body is over the limit for its endpoint (413 ``PayloadTooLarge``)."""

    def __init__(self, limit: int, *, declared: int | None = None) -> None:
        said = f" (Content-Length {declared})" if declared is not None else ""
        self.detail_zh = f"提交的内容超过 {_size_zh(limit)} 的上限，请减少内容" + (
            "或把文件分成几份上传" if limit > 1024 * 1024 else ""
        )
        super().__init__(
            413,
            f"the request body is larger than {limit} bytes{said}; send less"
            + (" or split the file" if limit > 1024 * 1024 else ""),
            headers=CLOSE,
        )


class BodyReadTimeout(HTTPException):
    """The request body did not arrive in time (408 ``RequestTimeout``)."""

    def __init__(self, timeout_s: float, received: int) -> None:
        self.detail_zh = (
            f"请求内容未在 {timeout_s:g} 秒内传完（只收到 {received} 字节），请检查网络后重新提交"
        )
        super().__init__(
            408,
            f"the request body did not arrive within {timeout_s:g} s (got {received} bytes); "
            "send it at once",
            headers=CLOSE,
        )


def _size_zh(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} 字节"


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or not value.strip().isdigit():
        return None  # the server (h11/httptools) rejects a malformed Content-Length itself
    return int(value)


class BodyLimits:
    """Size and read-time limits on request bodies; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_bulk_body_bytes: int,
        read_timeout_s: float,
        bulk_paths: frozenset[str] = BULK_UPLOAD_PATHS,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_bulk_body_bytes = max_bulk_body_bytes
        self.read_timeout_s = read_timeout_s
        self.bulk_paths = bulk_paths

    def limit_for(self, path: str) -> int:
        return self.max_bulk_body_bytes if path in self.bulk_paths else self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit = self.limit_for(scope.get("path", ""))
        declared = _declared_length(headers)
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        state: dict[str, Any] = {
            # A request without a body is complete before it is read.
            "done": not chunked and not declared,
            "received": 0,
            "deadline": None,
            "responded": False,
        }

        async def limited_receive() -> Message:
            if state["done"] or state["responded"]:
                # After the body (or once answering): waits for a disconnect, unlimited.
                return await receive()
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit, declared=declared)
            now = anyio.current_time()
            if state["deadline"] is None:
                state["deadline"] = now + self.read_timeout_s
            try:
                with anyio.fail_after(max(0.0, state["deadline"] - now)):
                    message = await receive()
            except TimeoutError:
                raise BodyReadTimeout(self.read_timeout_s, state["received"]) from None
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    raise BodyTooLarge(limit)
                if not message.get("more_body", False):
                    state["done"] = True
            else:
                state["done"] = True
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["responded"] = True
                if not state["done"]:
                    MutableHeaders(scope=message)["connection"] = "close"
            await send(message)

        await self.app(scope, limited_receive, closing_send)
