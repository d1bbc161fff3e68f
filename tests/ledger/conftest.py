"""Fixtures for the anchoring, API, verifier and audit tests.

``ctx`` is a service context on each ledger kind (embedded chain and anvil);
``live_server`` runs an app under uvicorn on a free loopback port, so clients
(web3's HTTPProvider, the CLI) talk to it over real HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from backend.config import Settings
from backend.context import AppContext
from backend.ledger import log
from backend.ledger.log import AppendedRecord
from backend.ledger.records import SYSTEM, Actor, RecordDraft
from tests.conftest import ROOT, free_port

SUBJECT = "91511902MA62Q3T556"


def append_records(
    ctx: AppContext, n: int, *, type: str = "test.entry", start: int = 0
) -> list[AppendedRecord]:
    """Append ``n`` records in one transaction. The type has no projection: these tests
    are about the log and the chain, not about the tables records project to."""
    drafts = [
        RecordDraft(
            type=type,
            subject=SUBJECT,
            actor=Actor("regulator", "1"),
            body={"result": "未发现问题", "checked_on": "2026-11-20", "n": start + i},
        )
        for i in range(n)
    ]
    with ctx.db.session() as s:
        out = log.append(s, drafts)
        s.commit()
    return out


def append_one(ctx: AppContext, n: int = 0) -> AppendedRecord:
    with ctx.db.session() as s:
        draft = RecordDraft(type="test.note", subject=None, actor=SYSTEM, body={"n": n})
        out = log.append(s, draft)
        s.commit()
    return out[0]


@pytest.fixture
def ctx(ledger_settings: Settings) -> Iterator[AppContext]:
    """A service context (database migrated) on the embedded chain or anvil."""
    c = AppContext.create(ledger_settings)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def embedded_ctx(settings: Settings) -> Iterator[AppContext]:
    c = AppContext.create(settings)
    try:
        yield c
    finally:
        c.close()


@contextmanager
def serve(app: FastAPI, *, port: int | None = None) -> Iterator[str]:
    """Run ``app`` under uvicorn on a (free) loopback port; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # a busy 2-core CI machine
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def wait_until(predicate: Any, *, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment for a subprocess running ``honest-metering`` with these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HM_")}
    env.update(
        {
            "HM_ENV": settings.env,
            "HM_DATA_DIR": str(settings.data_dir),
            "HM_ANCHOR_INTERVAL_S": str(settings.anchor_interval_s),
            "HM_DEMO_ON_FIRST_START": "false",
            "HM_DRAW_REVEAL_DELAY_BLOCKS": str(settings.draw_reveal_delay_blocks),
        }
    )
    if settings.database_url:
        env["HM_DATABASE_URL"] = settings.database_url
    if settings.ledger_url:
        env["HM_LEDGER_URL"] = settings.ledger_url
    if settings.ledger_key is not None:
        env["HM_LEDGER_KEY"] = settings.ledger_key.get_secret_value()
    return env


def run_cli(
    args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``honest-metering ARGS`` in a fresh process (its own imports, no shared state)."""
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        cwd=ROOT,
        env=env
        if env is not None
        else {k: v for k, v in os.environ.items() if not k.startswith("HM_")},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def crash_launcher() -> Path:
    return Path(__file__).with_name("crash_after_anchor_tx.py")
