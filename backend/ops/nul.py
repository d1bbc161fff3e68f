"""No NUL characters in requests: refused in this one place, as a pure ASGI middleware.

PostgreSQL text cannot hold U+0000: a NUL in a path, a query, a form field or a JSON
string that reaches a query made the driver fail (500), the login forms included. No
text this service keeps or looks up may contain one, so every request that carries one
is answered ``422 NulCharacter`` before anything reads it:

- the path (after percent-decoding) and the query string (``%00``): answered here, the
  app is not called;
- the body, checked as the app reads it (nothing is buffered here): ``%00`` or a NUL
  byte in an ``application/x-www-form-urlencoded`` form; a NUL byte or a ``\\u0000``
  escape in JSON (``application/json``, ``+json``, JSON lines); a NUL byte in other
  text (``text/*``); the fields, field names and file names of a ``multipart/form-data``
  form, but not its files' contents (an evidence PDF may hold any byte). Raised from
  ``receive``, so the app's handlers render it (JSON, or a page for a browser).

``POST /rpc`` bodies are exempt: JSON-RPC answers malformed calls in its own error
format, and the node stores nothing a call sends.
"""

from __future__ import annotations

import re
from typing import Any

import python_multipart as multipart
from python_multipart.multipart import parse_options_header
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

EXEMPT_BODY_PATHS = frozenset({"/rpc"})
_ESCAPED_NUL = re.compile(rb"(\\+)u0000")
_JSON_TYPES = ("application/json", "application/x-ndjson", "application/ndjson",
               "application/jsonl", "application/x-jsonlines")


# Where a NUL was found, as a person reads it (the ``where`` of :class:`NulCharacter`).
_WHERE_ZH = {
    "path": "网址路径",
    "query string": "网址的查询参数",
    "form": "表单",
    "form field": "表单项",
    "form field name or file name": "表单项的名称或文件名",
    "JSON body": "提交的 JSON 内容",
    "body": "提交的内容",
}


class NulCharacter(HTTPException):
    """A request carries U+0000 (422 ``NulCharacter``)."""

    error_name = "NulCharacter"

    def __init__(self, where: str) -> None:
        self.detail_zh = (
            f"{_WHERE_ZH.get(where, '提交的内容')}含有空字符（U+0000 或 %00），"
            "这里的文字都不能含有它，请删除后重新提交"
        )
        super().__init__(
            422,
            f"the {where} contains a NUL character (U+0000 or %00), which no text here may "
            "contain; remove it",
        )


def _nul_in_path(scope: Scope) -> str | None:
    if "\x00" in scope.get("path", ""):
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        return "query string"
    return None


class _Scanner:
    """Finds NUL in a body fed chunk by chunk; keeps at most a few bytes between chunks."""

    def __init__(self, media: str, options: dict[bytes, bytes]) -> None:
        self.media = media
        self.carry = b""
        self.found: str | None = None
        self.part_is_file = False
        self.parser: Any = None
        if media == "multipart/form-data" and b"boundary" in options:
            self.parser = multipart.MultipartParser(
                options[b"boundary"],
                {
                    "on_part_begin": self._part_begin,
                    "on_part_data": self._part_data,
                    "on_header_field": self._header_bytes,
                    "on_header_value": self._header_bytes,
                    "on_headers_finished": self._headers_finished,
                },
            )
            self.header = b""

    # multipart: the fields' values and every header (field and file names); not files.
    def _part_begin(self) -> None:
        self.header = b""
        self.part_is_file = False

    def _header_bytes(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        self.header += chunk
        if b"\x00" in chunk or b"%00" in self.header:
            self.found = "form field name or file name"

    def _headers_finished(self) -> None:
        self.part_is_file = b"filename" in self.header

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self.part_is_file and b"\x00" in data[start:end]:
            self.found = "form field"

    def feed(self, chunk: bytes) -> str | None:
        if self.found or not chunk:
            return self.found
        media = self.media
        if self.parser is not None:
            try:
                self.parser.write(chunk)
            except multipart.exceptions.FormParserError:
                self.parser = None  # malformed: the app's own parser will say so
        elif media == "application/x-www-form-urlencoded":
            data = self.carry + chunk
            if b"%00" in data or b"\x00" in data:
                self.found = "form"
            self.carry = data[-2:]
        elif media in _JSON_TYPES or media.endswith("+json"):
            data = self.carry + chunk
            if b"\x00" in data or any(
                len(m.group(1)) % 2 for m in _ESCAPED_NUL.finditer(data)
            ):
                self.found = "JSON body"
            self.carry = _json_tail(data)
        elif media.startswith("text/") and b"\x00" in chunk:
            self.found = "body"
        return self.found


def _json_tail(data: bytes) -> bytes:
    """The end of ``data`` that may begin an escape completed by the next chunk: from the
    start of the last run of backslashes, when fewer than six bytes follow it."""
    i = data.rfind(b"\\")
    if i < 0 or len(data) - i > 6:
        return b""
    while i > 0 and data[i - 1] == 0x5C:  # the whole run, for its parity
        i -= 1
    return data[i:]


class RefuseNul:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, *, exempt_body_paths: frozenset[str] = EXEMPT_BODY_PATHS):
        self.app = app
        self.exempt = exempt_body_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _nul_in_path(scope)
        if where is not None:
            err = NulCharacter(where)
            await JSONResponse(
                {"error": err.error_name, "detail": err.detail, "detail_zh": err.detail_zh},
                status_code=err.status_code,
            )(scope, receive, send)
            return
        if scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        ctype = Headers(scope=scope).get("content-type", "")
        media_bytes, options = parse_options_header(ctype)
        media = media_bytes.decode("latin-1").lower()
        scanner = _Scanner(media, options)

        async def checked_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                found = scanner.feed(message.get("body", b""))
                if found is not None:
                    raise NulCharacter(found)
            return message

        await self.app(scope, checked_receive, send)
