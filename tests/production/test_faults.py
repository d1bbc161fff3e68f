"""Faults on the production path (PostgreSQL + anvil + several workers): a worker
killed with SIGKILL while appending and while anchoring, the ledger node down for a
while, database connections dropped mid-request. After each: no accepted record
lost, no duplicate or missing leaf, no duplicate checkpoint, ``audit`` clean."""

from __future__ import annotations

import threading
import time

import httpx
import psycopg
import pytest

from tests.conftest import AnvilNode, require
from tests.production.conftest import (
    MakeService,
    Outcome,
    Writers,
    check_log,
    create_regulator,
    failed_transactions,
    json_of,
    register_merchants,
    rpc,
    start_node,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.anvil]

# What a client may see from a worker killed under it: the connection breaks.
BROKEN_CONNECTION = {"RemoteProtocolError", "ReadError", "WriteError", "ConnectError"}


def test_worker_killed_during_appends(make_service: MakeService, node: AnvilNode) -> None:
    svc = make_service(ledger_url=node.url, workers=2)
    headers = create_regulator(svc)
    usccs = register_merchants(svc, headers, 8)
    starts = svc.started_count()
    killed = []
    with Writers(svc.url, headers, usccs, threads=6) as w:
        for round_ in range(3):
            w.wait_count(w.count() + 60)
            holder = svc.anchor_holder()
            others = [p for p in svc.worker_pids() if p != holder]
            # The first time a worker that only appends; then the anchorer too.
            victim = others[0] if round_ == 0 or holder is None else holder
            svc.kill_worker(victim)
            killed.append(victim)
            starts += 1
            svc.wait_started(starts)  # uvicorn replaces it
        w.wait_count(w.count() + 60)
    assert len(w.accepted) >= 240
    # Requests in flight in a killed worker lose their connection (some were: the
    # kills hit appends under way); nothing else fails.
    assert w.failed
    assert {o.error for o in w.failed} <= BROKEN_CONNECTION, w.failed[:5]
    assert not set(killed) & set(svc.worker_pids())
    assert len(svc.worker_pids()) == 2

    svc.wait_all_anchored()
    check_log(svc.env, node.url, accepted=w.accepted)


def test_anchorer_killed_during_anchoring(
    make_service: MakeService, anvil_available: bool
) -> None:
    """Killed after sending its anchor transaction and before the receipt: the
    transaction is mined anyway and the next anchorer records it from the chain."""
    require(anvil_available, "anvil not installed under node_modules (run: npm ci)")
    # Mining once a second keeps each anchor transaction pending for a while.
    slow = start_node(block_time=1)
    try:
        svc = make_service(ledger_url=slow.url, workers=2)
        headers = create_regulator(svc)
        usccs = register_merchants(svc, headers, 5)
        kills = 0
        with Writers(svc.url, headers, usccs, threads=3) as w:
            for _ in range(2):
                holder = wait_for(svc.anchor_holder, timeout=30, what="an anchorer")

                def sent() -> bool:
                    status = rpc(slow.url, "txpool_status")
                    return int(status["pending"], 16) > 0

                wait_for(sent, timeout=30, what="an anchor transaction in flight", every=0.01)
                svc.kill_worker(holder)
                kills += 1

                def successor(dead: int = holder) -> bool:
                    return svc.anchor_holder() not in (None, dead)

                wait_for(successor, timeout=20, what="a new anchorer")
                w.wait_count(w.count() + 30)
        assert {o.error for o in w.failed} <= BROKEN_CONNECTION, w.failed[:5]
        svc.wait_all_anchored()
        check_log(svc.env, slow.url, accepted=w.accepted)
        with psycopg.connect(svc.database_url, autocommit=True) as conn:
            found = conn.execute("SELECT count(*) FROM checkpoint WHERE gas_used IS NULL")
            # Checkpoints recorded from the chain: the dead anchorers' transactions.
            assert found.fetchone()[0] >= 1  # type: ignore[index]
        # A successor may once send a transaction built on the checkpoint before the
        # dead one's (which the contract then refuses); never more than that.
        assert len(failed_transactions(slow.url)) <= kills
    finally:
        slow.stop()


def test_ledger_node_down_then_back(make_service: MakeService, node: AnvilNode) -> None:
    svc = make_service(ledger_url=node.url, workers=2, HM_CHAIN_POLL_TIMEOUT_S="3")
    headers = create_regulator(svc)
    usccs = register_merchants(svc, headers, 4)
    svc.wait_all_anchored()
    time.sleep(2.0)  # anvil writes its --state file every second
    node.stop()
    restarted: AnvilNode | None = None
    try:
        # Writes are accepted meanwhile and stay pending.
        with Writers(svc.url, headers, usccs, threads=3, limit=60) as w:
            w.wait_count(60)
        assert not w.failed, w.failed[:5]
        with httpx.Client(base_url=svc.url, timeout=10) as c:
            for o in w.accepted[:5]:
                status = c.get(f"/api/records/{o.record_id}").json()["anchor_status"]
                assert status["status"] == "pending"
            proof = c.get(f"/api/records/{w.accepted[0].record_id}/proof")
            assert proof.status_code == 409 and proof.json()["error"] == "RecordNotAnchored"
            ready = c.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["checks"]["database"] == "up"
        assert body["checks"]["ledger"].startswith("down")
        assert body["anchoring"]["pending_leaves"] == 60

        restarted = start_node(port=node.port, state_file=node.state_file)
        svc.wait_all_anchored(timeout=40)
        wait_for(lambda: svc.readyz()["status"] == "ready", timeout=20, what="ready again")
        check_log(svc.env, restarted.url, accepted=w.accepted)
    finally:
        if restarted is not None:
            restarted.stop()


def test_database_connections_dropped_mid_request(
    make_service: MakeService, node: AnvilNode
) -> None:
    svc = make_service(ledger_url=node.url, workers=2)
    headers = create_regulator(svc)
    usccs = register_merchants(svc, headers, 6)
    workers = svc.worker_pids()
    reads: list[Outcome] = []
    stop_reading = threading.Event()

    def read() -> None:
        with httpx.Client(base_url=svc.url, timeout=15) as c:
            while not stop_reading.is_set():
                for path in (f"/api/merchants/{usccs[0]}", "/api/merchants?q=巴中"):
                    try:
                        r = c.get(path)
                        reads.append(Outcome(r.status_code, json_of(r).get("error")))
                    except httpx.HTTPError as exc:
                        reads.append(Outcome(None, type(exc).__name__))

    def terminate_all(seconds: float) -> int:
        """Kill every server-side connection of the service, again and again."""
        n = 0
        deadline = time.monotonic() + seconds
        with psycopg.connect(svc.database_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                n += len(
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    ).fetchall()
                )
                time.sleep(0.05)
        return n

    reader = threading.Thread(target=read, daemon=True)
    with Writers(svc.url, headers, usccs, threads=4) as w:
        reader.start()
        w.wait_count(20)
        terminated = terminate_all(2.5)
        before = w.count()
        w.wait_count(before + 40)  # writes succeed again, without a restart
    stop_reading.set()
    reader.join(20)
    assert terminated > 0

    # Clients caught by a dropped connection got a 503 in the error shape: never a
    # hang, a broken connection or an unexpected 500.
    failures = [o for o in w.outcomes + reads if o.status not in (200, 201)]
    assert failures, "no request was caught by a dropped connection"
    assert {(o.status, o.error) for o in failures} == {(503, "DatabaseUnavailable")}, (
        failures[:5]
    )
    assert max(o.seconds for o in w.outcomes) < 10

    # The service recovered by itself: same processes, every request succeeds.
    assert svc.worker_pids() == workers
    with Writers(svc.url, headers, usccs, threads=2, limit=30) as after:
        after.wait_count(30)
    assert not after.failed, after.failed[:5]
    with httpx.Client(base_url=svc.url, timeout=10) as c:
        assert all(c.get(f"/api/merchants/{u}").status_code == 200 for u in usccs)

    svc.wait_all_anchored()
    check_log(svc.env, node.url, accepted=w.accepted + after.accepted)
