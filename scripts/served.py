"""A served ``honest-metering serve`` for tests and benchmarks: its environment, its start
(wait until it answers), its stop (its whole process group), and clients bound to a
loopback address of their own (the server sees each as a different client).

Used by tests/ops (``from scripts.served import ...``) and scripts/bench_auth.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
TEST_SECRET = "test-secret-key-0123456789abcdef0123456789"


def service_env(
    data_dir: Path, *, env: str = "test", secret: str = TEST_SECRET, **extra: object
) -> dict[str, str]:
    """This process's environment without its ``HM_`` settings, for a fresh service on
    ``data_dir`` (no demo data); ``extra``: more settings (``HM_LEDGER_URL=...``)."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("HM_", "PROMETHEUS_"))}
    out.update(
        HM_ENV=env,
        HM_DATA_DIR=str(data_dir),
        HM_SECRET_KEY=secret,
        HM_DEMO_ON_FIRST_START="false",
    )
    out.update({k: str(v) for k, v in extra.items()})
    return out


def serve_argv(port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "backend.cli", "serve", "--port", str(port), *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_client(port: int, address: str = "127.0.0.1", *, timeout: float = 120) -> httpx.Client:
    """A client of the service on ``port`` from ``address`` (any of 127.0.0.0/8)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", transport=transport, timeout=timeout)


def answers(port: int, address: str = "127.0.0.1") -> bool:
    """Whether ``GET /healthz`` answers 200."""
    try:
        with local_client(port, address, timeout=5) as c:
            return c.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def stop(proc: subprocess.Popen[Any], *, grace_s: float = 30) -> None:
    """SIGTERM to the process group, SIGKILL after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def served(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    ready: Callable[[], bool] | None = None,
    timeout_s: float = 120,
    output: IO[Any] | int | None = subprocess.DEVNULL,
) -> Iterator[subprocess.Popen[Any]]:
    """Run ``argv`` in a session of its own; with ``ready``, wait until it holds (a
    RuntimeError if the process ends or ``timeout_s`` passes first). Stopped on exit."""
    proc = subprocess.Popen(
        list(argv), cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        if ready is not None:
            deadline = time.monotonic() + timeout_s
            while not ready():
                if proc.poll() is not None:
                    raise RuntimeError(f"the service exited ({proc.returncode}) before it "
                                       "was ready")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not ready after {timeout_s} s")
                time.sleep(0.2)
        yield proc
    finally:
        stop(proc)
