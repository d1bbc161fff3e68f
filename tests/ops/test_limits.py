"""Request body limits and slow clients, against a real uvicorn server over raw sockets.

413 ``PayloadTooLarge`` for a declared or a streamed (chunked, no Content-Length) body over
the limit; a higher limit on the bulk upload endpoint; 408 ``RequestTimeout`` for a body
trickled in too slowly; idle keep-alive connections closed. Every refusal closes the
connection, so the rest of a body never ties it up.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.config import Settings
from tests.conftest import make_settings
from tests.ops.conftest import closed_by_server, connect, read_response, uvicorn_server

LIMIT = 4096
BULK_LIMIT = 64 * 1024


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "anchor_enabled": False,
        "rerate_enabled": False,
        "max_body_bytes": LIMIT,
        "max_bulk_body_bytes": BULK_LIMIT,
        "body_read_timeout_s": 1.0,
        "timeout_keep_alive_s": 1,
    }
    base.update(overrides)
    return make_settings(tmp_path / "data", **base)


@pytest.fixture
def port(tmp_path: Path) -> Iterator[int]:
    settings = _settings(tmp_path)
    with uvicorn_server(create_app(settings), settings) as p:
        yield p


def _head(path: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{extra}\r\n"
    ).encode()


def _error(resp: object) -> dict[str, str]:
    body = json.loads(resp.body)  # type: ignore[attr-defined]
    assert set(body) >= {"error", "detail", "detail_zh"}, body
    return body  # type: ignore[no-any-return]


class TestBodySize:
    def test_declared_length_over_the_limit_is_refused_before_reading(self, port: int) -> None:
        with connect(port) as sock:
            sock.sendall(_head("/api/complaints", f"Content-Length: {LIMIT + 1}\r\n"))
            # No body sent at all: the refusal must not wait for it.
            resp = read_response(sock, timeout=5)
            assert resp.status == 413
            assert _error(resp)["error"] == "PayloadTooLarge"
            assert str(LIMIT) in _error(resp)["detail"]
            assert resp.headers["connection"] == "close"
            assert closed_by_server(sock, within=2)

    def test_chunked_body_without_content_length_is_counted(self, port: int) -> None:
        with connect(port) as sock:
            sock.sendall(_head("/api/complaints", "Transfer-Encoding: chunked\r\n"))
            chunk = b"x" * 1024
            sent = 0
            refused = None
            # Keep streaming well past the limit; the server must answer 413 on its own.
            for _ in range(64):
                try:
                    sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    refused = True  # already answered and closed; the answer is buffered
                    break
                sent += len(chunk)
                sock.settimeout(0.05)
                try:
                    if sock.recv(1, socket.MSG_PEEK):
                        refused = True
                        break
                except TimeoutError:
                    pass
            assert refused, f"no answer after streaming {sent} bytes"
            assert sent > LIMIT
            resp = read_response(sock)
            assert resp.status == 413 and _error(resp)["error"] == "PayloadTooLarge"
            assert resp.headers["connection"] == "close"
            assert closed_by_server(sock, within=2)

    def test_within_the_limit_reaches_the_endpoint(self, port: int) -> None:
        body = json.dumps({"uscc": "x", "content": "y" * 100}).encode()
        with connect(port) as sock:
            sock.sendall(_head("/api/complaints", f"Content-Length: {len(body)}\r\n") + body)
            resp = read_response(sock)
            # Through the limits to validation (the credit code is not valid).
            assert resp.status == 422, resp.body

    def test_bulk_upload_has_the_higher_limit(
        self, tmp_path: Path
    ) -> None:
        from tests import factories

        app = create_app(_settings(tmp_path))
        with TestClient(app) as c:
            staff = factories.create_staff(c, username="bulk-reg", role="regulator")
            headers = {**staff, "Content-Type": "application/x-ndjson"}
            over_normal = b'{"kind": "spot_check"}\n' * (2 * LIMIT // 20)
            assert LIMIT < len(over_normal) < BULK_LIMIT
            resp = c.post("/api/supervision/records/bulk", content=over_normal, headers=headers)
            assert resp.status_code == 422, resp.text  # read and validated, not refused
            assert resp.json()["error"] == "BulkValidationFailed"
            resp = c.post(
                "/api/supervision/records/bulk",
                content=b"x" * (BULK_LIMIT + 1),
                headers=headers,
            )
            assert resp.status_code == 413 and resp.json()["error"] == "PayloadTooLarge"
            # The same size to an ordinary endpoint is refused at the ordinary limit.
            resp = c.post("/api/complaints", content=over_normal, headers=headers)
            assert resp.status_code == 413 and str(LIMIT) in resp.json()["detail"]

    def test_browsers_get_an_error_page(self, tmp_path: Path) -> None:
        with TestClient(create_app(_settings(tmp_path))) as c:
            resp = c.post(
                "/complaint",
                content=b"content=" + b"x" * LIMIT,
                headers={
                    "Accept": "text/html",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            assert resp.status_code == 413
            assert resp.headers["content-type"].startswith("text/html")


class TestSlowClients:
    def test_trickled_body_gets_408_and_the_connection_is_closed(self, port: int) -> None:
        with connect(port) as sock:
            sock.sendall(_head("/api/complaints", "Content-Length: 200\r\n") + b'{"uscc"')
            started = time.monotonic()
            resp = None
            # One byte every 0.2 s: each read is quick, the whole body is not.
            for _ in range(40):
                try:
                    sock.sendall(b" ")
                except (BrokenPipeError, ConnectionResetError):
                    break
                sock.settimeout(0.2)
                try:
                    if sock.recv(1, socket.MSG_PEEK):
                        break
                except TimeoutError:
                    continue
            resp = read_response(sock)
            waited = time.monotonic() - started
            assert resp.status == 408
            body = _error(resp)
            assert body["error"] == "RequestTimeout" and "1 s" in body["detail"]
            assert body["detail_zh"].startswith("请求内容未在 1 秒内传完")
            assert resp.headers["connection"] == "close"
            assert 0.8 <= waited < 4.0, waited
            assert closed_by_server(sock, within=2)

    def test_slow_but_steady_body_within_the_deadline_is_accepted(self, port: int) -> None:
        body = json.dumps({"uscc": "x", "content": "y"}).encode()
        with connect(port) as sock:
            sock.sendall(_head("/api/complaints", f"Content-Length: {len(body)}\r\n"))
            for part in (body[:10], body[10:20], body[20:]):
                time.sleep(0.2)
                sock.sendall(part)
            assert read_response(sock).status == 422  # validation, not a timeout

    def test_a_slow_response_is_not_cut_by_the_body_deadline(self, tmp_path: Path) -> None:
        # The deadline covers reading the body only; a handler may take longer than it.
        settings = _settings(tmp_path, body_read_timeout_s=0.2)
        app = create_app(settings)

        @app.get("/api/test-slow")
        def slow() -> dict[str, bool]:
            time.sleep(0.6)
            return {"ok": True}

        with uvicorn_server(app, settings) as p, connect(p) as sock:
            sock.sendall(b"GET /api/test-slow HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).status == 200

    def test_idle_keep_alive_connection_is_closed(self, port: int) -> None:
        with connect(port) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            resp = read_response(sock)
            assert resp.status == 200 and resp.headers.get("connection") != "close"
            started = time.monotonic()
            assert closed_by_server(sock, within=5)
            assert time.monotonic() - started < 3

    def test_unread_body_closes_the_connection(self, port: int) -> None:
        # /healthz never reads a body: the rest of it must not keep the socket busy.
        with connect(port) as sock:
            sock.sendall(
                b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10
            )
            resp = read_response(sock)
            assert resp.status == 405
            assert resp.headers["connection"] == "close"
            assert closed_by_server(sock, within=2)
