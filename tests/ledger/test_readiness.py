"""``GET /readyz`` answers within its deadline and sees a reset chain (issue 15, L5).

Before: with a ledger node that accepts connections and never answers, /readyz took
52 s (web3 retries its 10 s request five times); and after the chain was reset (a node
restarted without its state) it said "ready" while none of the database's checkpoints
were on chain any more.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.context import AppContext
from backend.ledger.anchoring import Anchorer
from tests.conftest import AnvilNode, free_port, make_settings, require, start_anvil
from tests.ledger.conftest import append_records

DEADLINE_S = 1.0


@contextmanager
def hanging_node() -> Iterator[str]:
    """A TCP server that accepts connections and never answers; yields its URL."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # never read, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def probe_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("readyz-ledger"))


def test_readyz_answers_within_its_deadline_when_the_ledger_hangs(tmp_path: Path) -> None:
    with hanging_node() as url:
        settings = make_settings(
            tmp_path / "data",
            ledger_url=url,
            ledger_key="0x" + "11" * 32,
            anchor_enabled=False,
            rerate_enabled=False,
            readyz_timeout_s=DEADLINE_S,
        )
        with TestClient(create_app(settings)) as c:
            for _ in range(3):
                started = time.monotonic()
                r = c.get("/readyz")
                took = time.monotonic() - started
                assert r.status_code == 503
                body = r.json()
                assert body["status"] == "not ready"
                assert body["checks"] == {
                    "database": "up",
                    "ledger": "down: no answer within 1 s (HM_READYZ_TIMEOUT_S)",
                    "checkpoints": "unknown: the ledger did not answer",
                }
                assert "pending_leaves" in body["anchoring"]  # the database part is there
                # The deadline plus room for a loaded machine; it was 52 s.
                assert took < DEADLINE_S + 5, took
            # The probe still stuck on the node is waited for, not started again.
            assert probe_threads() <= 1


def test_readyz_names_a_node_that_is_not_there(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data",
        ledger_url=f"http://127.0.0.1:{free_port()}",
        ledger_key="0x" + "11" * 32,
        anchor_enabled=False,
        readyz_timeout_s=30,
    )
    with TestClient(create_app(settings)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        checks = r.json()["checks"]
        assert checks["ledger"] == "down: ledger unreachable: ConnectionError"
        assert checks["checkpoints"] == "unknown: the ledger is down"


@pytest.mark.anvil
def test_readyz_sees_a_reset_chain(anvil_available: bool, tmp_path: Path) -> None:
    require(anvil_available, "anvil not installed (run: npm ci)")
    node: AnvilNode = start_anvil()
    settings = make_settings(
        tmp_path / "data", ledger_url=node.url, ledger_key=node.key, anchor_enabled=False
    )
    try:
        with TestClient(create_app(settings)) as c:
            ctx: AppContext = c.app.state.ctx  # type: ignore[attr-defined]
            append_records(ctx, 3)
            Anchorer(ctx).run_once(force=True)
            address = ctx.ledger().contract_address
            r = c.get("/readyz")
            assert r.status_code == 200, r.text
            assert r.json()["checks"] == {"database": "up", "ledger": "up", "checkpoints": "up"}

            # anvil restarted without its state: the same chain id, an empty chain.
            node.stop()
            node = start_anvil(port=node.port)
            r = c.get("/readyz")
            assert r.status_code == 503, r.text
            checks = r.json()["checks"]
            assert checks["ledger"] == "up"
            assert checks["checkpoints"].startswith("missing on chain: the database records 1 ")
            assert "no contract code at that address: the chain was reset" in checks[
                "checkpoints"
            ]
            assert address in checks["checkpoints"]

            # The contract deployed again at the same address has none of the checkpoints.
            assert ctx.ledger().deploy(reveal_delay_blocks=2) == address
            r = c.get("/readyz")
            assert r.status_code == 503, r.text
            assert "has only 0: the chain lost checkpoints" in r.json()["checks"]["checkpoints"]
    finally:
        node.stop()
