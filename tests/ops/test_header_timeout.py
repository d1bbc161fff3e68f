"""Header-read timeout (slowloris), against a real uvicorn server over raw sockets.

A request whose headers are trickled in gets 408 ``RequestTimeout`` and a closed
connection, on a new connection and on a kept-alive one; a connection that sends nothing
(or only CRLFs) is closed without a response. Prompt keep-alive requests, a slow body
(the body has its own deadline) and the idle keep-alive timeout are not affected.
"""

from __future__ import annotations

import json
import pickle
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.app import create_app
from backend.config import Settings
from backend.ops.header_timeout import HeaderTimeoutProtocol
from backend.ops.server import uvicorn_options
from tests.conftest import make_settings
from tests.ops.conftest import RawResponse, closed_by_server, connect, read_response, uvicorn_server

HEADER_TIMEOUT_S = 1.0
KEEP_ALIVE_S = 2  # longer than the header timeout, so the two cannot be mistaken
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path / "data",
        anchor_enabled=False,
        rerate_enabled=False,
        header_read_timeout_s=HEADER_TIMEOUT_S,
        timeout_keep_alive_s=KEEP_ALIVE_S,
        body_read_timeout_s=5.0,
    )


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    settings = _settings(tmp_path_factory.mktemp("header-timeout"))
    with uvicorn_server(create_app(settings), settings) as p:
        yield p


def _trickle_until_answered(sock: socket.socket, byte: bytes, *, limit_s: float) -> float:
    """Send ``byte`` every 0.2 s until the server answers or closes; the seconds taken."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        try:
            sock.sendall(byte)
        except (BrokenPipeError, ConnectionResetError):
            break
        sock.settimeout(0.2)
        try:
            sock.recv(1, socket.MSG_PEEK)
            break  # a response, or the end of the connection
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
    return time.monotonic() - started


def _assert_header_timeout(resp: RawResponse) -> None:
    assert resp.status == 408
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["connection"] == "close"
    body = json.loads(resp.body)
    assert body["error"] == "RequestTimeout"
    assert "headers" in body["detail"] and "1 s" in body["detail"]
    assert body["detail_zh"] == "请求头未在 1 秒内传完，请检查网络后重试"


class TestSlowHeaders:
    def test_trickled_headers_get_408_and_the_connection_is_closed(self, port: int) -> None:
        with connect(port) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            waited = _trickle_until_answered(sock, b"a", limit_s=4.0)
            resp = read_response(sock, timeout=2)
            _assert_header_timeout(resp)
            assert 0.8 <= waited < 3.0, waited
            assert closed_by_server(sock, within=2)

    def test_trickled_second_request_on_a_kept_alive_connection_gets_408(self, port: int) -> None:
        with connect(port) as sock:
            sock.sendall(HEALTHZ)
            assert read_response(sock).status == 200
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            waited = _trickle_until_answered(sock, b"X", limit_s=4.0)
            _assert_header_timeout(read_response(sock, timeout=2))
            assert 0.8 <= waited < 3.0, waited
            assert closed_by_server(sock, within=2)

    def test_timeouts_are_counted_in_metrics(self, port: int) -> None:
        from backend.ops.metrics import HEADER_TIMEOUTS

        def count(outcome: str) -> float:
            return float(HEADER_TIMEOUTS.labels(outcome)._value.get())  # type: ignore[attr-defined]

        answered, closed = count("answered_408"), count("closed")
        with connect(port) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            _trickle_until_answered(sock, b"a", limit_s=4.0)
            _assert_header_timeout(read_response(sock, timeout=2))
        with connect(port) as sock:
            sock.settimeout(4.0)
            assert sock.recv(65536) == b""
        assert (count("answered_408"), count("closed")) == (answered + 1, closed + 1)

    def test_a_silent_connection_is_closed_without_a_response(self, port: int) -> None:
        with connect(port) as sock:
            started = time.monotonic()
            sock.settimeout(4.0)
            assert sock.recv(65536) == b""  # closed, nothing said
            assert 0.8 <= time.monotonic() - started < 3.0

    def test_crlfs_after_a_response_do_not_hold_the_connection(self, port: int) -> None:
        # The parser skips CRLFs between requests without starting one.
        with connect(port) as sock:
            sock.sendall(HEALTHZ)
            assert read_response(sock).status == 200
            waited = _trickle_until_answered(sock, b"\r\n", limit_s=4.0)
            assert 0.8 <= waited < 3.0, waited
            assert closed_by_server(sock, within=1)

    def test_other_connections_are_served_meanwhile(self, port: int) -> None:
        with connect(port) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            with connect(port) as sock:
                sock.sendall(HEALTHZ)
                resp = read_response(sock, timeout=2)
                assert resp.status == 200 and resp.elapsed_s < 0.5
            _trickle_until_answered(slow, b"a", limit_s=4.0)
            _assert_header_timeout(read_response(slow, timeout=2))


class TestPromptClients:
    def test_prompt_keep_alive_requests_outlive_the_header_timeout(self, port: int) -> None:
        # Four requests over 1.8 s on one connection, one of them sent in two pieces
        # 0.3 s apart: each request's headers are timed on their own.
        with connect(port) as sock:
            started = time.monotonic()
            for i in range(4):
                if i:
                    time.sleep(0.6)
                if i == 1:
                    sock.sendall(HEALTHZ[:20])
                    time.sleep(0.3)
                    sock.sendall(HEALTHZ[20:])
                else:
                    sock.sendall(HEALTHZ)
                resp = read_response(sock, timeout=2)
                assert resp.status == 200 and resp.headers.get("connection") != "close"
            assert time.monotonic() - started > HEADER_TIMEOUT_S * 1.5

    def test_a_slow_body_is_timed_by_the_body_deadline_only(self, port: int) -> None:
        body = json.dumps({"uscc": "x", "content": "y"}).encode()
        with connect(port) as sock:
            sock.sendall(
                b"POST /api/complaints HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            )
            time.sleep(HEADER_TIMEOUT_S * 1.5)
            sock.sendall(body)
            assert read_response(sock, timeout=2).status == 422  # validation, not a timeout

    def test_idle_keep_alive_connection_closes_after_the_keep_alive_timeout(
        self, port: int
    ) -> None:
        with connect(port) as sock:
            sock.sendall(HEALTHZ)
            assert read_response(sock).status == 200
            started = time.monotonic()
            assert closed_by_server(sock, within=KEEP_ALIVE_S + 3)
            assert KEEP_ALIVE_S - 0.5 <= time.monotonic() - started < KEEP_ALIVE_S + 1.5


class TestOptions:
    def test_serve_uses_the_protocol_with_the_configured_timeout(self, tmp_path: Path) -> None:
        http = uvicorn_options(_settings(tmp_path))["http"]
        # --workers pickles the server config into each worker process.
        http = pickle.loads(pickle.dumps(http))
        assert http.func is HeaderTimeoutProtocol
        assert http.keywords == {"header_read_timeout_s": HEADER_TIMEOUT_S}

    def test_the_setting_is_read_from_the_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HM_HEADER_READ_TIMEOUT_S", "2.5")
        assert Settings(data_dir=tmp_path).header_read_timeout_s == 2.5
        monkeypatch.delenv("HM_HEADER_READ_TIMEOUT_S")
        assert Settings(data_dir=tmp_path).header_read_timeout_s == 10.0
