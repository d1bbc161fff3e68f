"""Fixtures for the production-path tests: the app under a real uvicorn server on a free
loopback port (with ``serve``'s own server options), raw HTTP over sockets, and the
``honest-metering`` command in a subprocess."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from backend.config import Settings
from backend.ops.server import uvicorn_options
from tests.api_fixtures import admin, client, regulator  # noqa: F401
from tests.conftest import free_port


@contextmanager
def uvicorn_server(app: FastAPI, settings: Settings) -> Iterator[int]:
    """``app`` under uvicorn with the options ``serve`` uses; yields the port.

    The logging config is left out: applying it would replace pytest's log capture.
    """
    options = {k: v for k, v in uvicorn_options(settings).items() if k != "log_config"}
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **options
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_s: float


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_response(sock: socket.socket, *, timeout: float = 10.0) -> RawResponse:
    """Read one HTTP/1.1 response (Content-Length framed) from ``sock``."""
    started = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response; got {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawResponse(status, headers, body[:length], time.monotonic() - started)


def closed_by_server(sock: socket.socket, *, within: float) -> bool:
    """True if the server closes the connection within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus exposition (0 if absent)."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head == name and not labels:
            return float(value)
        if head.startswith(name + "{") and all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return 0.0
