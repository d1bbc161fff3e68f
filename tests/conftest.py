"""Shared fixtures: settings in a temp data dir, the anvil node, PostgreSQL.

A component that may be missing on a developer's machine (anvil, PostgreSQL,
Chromium) makes its tests skip with a visible reason - except under CI=true,
where a missing component fails the run instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import backend.domains  # noqa: F401  (record projections and hooks)
from backend.config import Settings

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"
ANVIL_BIN = ROOT / "node_modules" / ".bin" / "anvil"
# anvil's first well-known development account (public test key, funded by anvil).
ANVIL_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
POSTGRES_URL = os.environ.get(
    "HM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def require(available: bool, reason: str) -> None:
    """Skip (or, under CI=true, fail) when a test's component is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a required component is missing: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@dataclass
class AnvilNode:
    url: str
    port: int
    key: str
    process: subprocess.Popen[bytes]
    state_file: Path | None = None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def anvil_command() -> list[str] | None:
    """anvil from ``@foundry-rs/anvil``'s platform package, else its node launcher.

    The native binary is preferred: the launcher forwards SIGTERM to anvil and
    exits at once, leaving an unreaped anvil behind; run directly, anvil is our
    child and is reaped.
    """
    for binary in sorted(ROOT.glob("node_modules/@foundry-rs/anvil-*/bin/anvil")):
        if os.access(binary, os.X_OK):
            return [str(binary)]
    if ANVIL_BIN.exists() and shutil.which("node") is not None:
        return [str(ANVIL_BIN)]
    return None


def start_anvil(*, port: int | None = None, state_file: Path | None = None) -> AnvilNode:
    """Start anvil on loopback; with ``state_file`` its chain survives a restart."""
    command = anvil_command()
    if command is None:
        raise FileNotFoundError(f"anvil is not installed under {ROOT / 'node_modules'}")
    port = port or free_port()
    cmd = [*command, "--host", "127.0.0.1", "--port", str(port), "--silent"]
    if state_file is not None:
        cmd += ["--state", str(state_file), "--state-interval", "1"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for_port(port)
    except TimeoutError:
        proc.kill()
        raise
    return AnvilNode(f"http://127.0.0.1:{port}", port, ANVIL_KEY, proc, state_file)


@pytest.fixture(scope="session")
def anvil_available() -> bool:
    return anvil_command() is not None


@pytest.fixture
def anvil(anvil_available: bool) -> Iterator[AnvilNode]:
    """A fresh anvil node for one test."""
    require(anvil_available, f"anvil not installed at {ANVIL_BIN} (run: npm ci)")
    node = start_anvil()
    try:
        yield node
    finally:
        node.stop()


def _postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@contextlib.contextmanager
def fresh_postgres(prefix: str = "hm_test") -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards (skips if unreachable)."""
    require(_postgres_reachable(), f"PostgreSQL not reachable at {POSTGRES_URL}")
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    with fresh_postgres() as url:
        yield url


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "env": "test",
        "data_dir": data_dir,
        "anchor_interval_s": 0.2,
        "anchor_max_pending": 1000,
        "demo_on_first_start": False,
        "secret_key": "test-secret-key-0123456789abcdef0123456789",
        "draw_reveal_delay_blocks": 2,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded defaults (SQLite + embedded chain) in a temp data dir."""
    return make_settings(tmp_path / "data")


@pytest.fixture(params=["embedded", "anvil"])
def ledger_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for each ledger kind: the embedded chain and a real anvil node."""
    if request.param == "embedded":
        yield make_settings(tmp_path / "data")
        return
    node = request.getfixturevalue("anvil")
    yield make_settings(tmp_path / "data", ledger_url=node.url, ledger_key=node.key)
