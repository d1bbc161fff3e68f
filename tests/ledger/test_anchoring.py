"""The anchoring worker: when it anchors, what one checkpoint covers, crash safety,
reconciliation, the one-anchorer lock, and a ledger that goes away and comes back."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from backend.app import create_app
from backend.config import Settings
from backend.context import AppContext
from backend.ledger import anchoring, log, merkle, onchain
from backend.ledger.anchoring import (
    Anchorer,
    AnchorWorker,
    FileAnchorLock,
    LedgerDisagreement,
    PgAdvisoryLock,
    TamperEvidence,
    backoff_delay,
)
from backend.ledger.models import Checkpoint
from tests.conftest import ROOT, AnvilNode, make_settings, require, start_anvil
from tests.ledger.conftest import (
    append_records,
    crash_launcher,
    run_cli,
    settings_env,
    wait_until,
)
from tests.ledger.crash_after_anchor_tx import CRASH_EXIT_CODE


def chain_checkpoints(ctx: AppContext) -> list[onchain.OnChainCheckpoint]:
    return onchain.all_checkpoints(ctx.ledger().contract())


def db_checkpoints(ctx: AppContext) -> list[Checkpoint]:
    with ctx.db.read() as s:
        rows = list(s.execute(select(Checkpoint).order_by(Checkpoint.seq)).scalars())  # type: ignore[arg-type]
        for r in rows:
            s.expunge(r)
        return rows


class TestRunOnce:
    def test_nothing_pending(self, ctx: AppContext) -> None:
        out = Anchorer(ctx).run_once()
        assert out.action == "nothing_pending"
        assert out.tree_size == 0
        assert chain_checkpoints(ctx) == []

    def test_one_checkpoint_covers_every_pending_record(self, ctx: AppContext) -> None:
        recs = append_records(ctx, 37)
        out = Anchorer(ctx).run_once(force=True)
        assert out.action == "anchored"
        # 37 records and the subject index record that ends every checkpoint.
        assert (out.checkpoint, out.tree_size, out.pending) == (0, 38, 38)
        [cp] = chain_checkpoints(ctx)
        with ctx.db.read() as s:
            assert cp.root == log.root_at(s, 38)
            from backend.ledger.status import anchor_status

            assert {anchor_status(s, r.leaf_index).status for r in recs} == {"anchored"}
        [row] = db_checkpoints(ctx)
        assert (row.seq, row.tree_size, bytes(row.root)) == (0, 38, cp.root)
        assert row.tx_hash == out.tx_hash and row.gas_used == out.gas_used
        assert row.block_number == cp.block_number
        # One transaction for 37 records: a few thousand gas each, not ~45k.
        assert out.gas_used is not None and out.gas_used / 37 < 5_000

    def test_next_checkpoint_carries_a_consistency_proof(self, ctx: AppContext) -> None:
        append_records(ctx, 5)
        Anchorer(ctx).run_once(force=True)
        append_records(ctx, 9, start=5)
        out = Anchorer(ctx).run_once(force=True)
        # Each checkpoint ends with its subject index record.
        assert (out.checkpoint, out.tree_size, out.pending) == (1, 16, 10)
        cps = chain_checkpoints(ctx)
        assert [c.tree_size for c in cps] == [6, 16]
        with ctx.db.read() as s:
            proof = log.consistency_proof(s, 6, 16)
        merkle.verify_consistency(6, 16, cps[0].root, cps[1].root, proof)

    def test_not_due_until_interval_or_max_pending(self, ledger_settings: Settings) -> None:
        settings = ledger_settings.model_copy(
            update={"anchor_interval_s": 3600.0, "anchor_max_pending": 10}
        )
        ctx = AppContext.create(settings)
        try:
            anchorer = Anchorer(ctx)
            append_records(ctx, 9)
            out = anchorer.run_once()
            assert out.action == "not_due" and out.pending == 9
            assert out.due_in_s is not None and out.due_in_s > 3000
            assert chain_checkpoints(ctx) == []

            # The oldest pending record reaching the interval makes it due.
            later = Anchorer(ctx, clock=lambda: datetime.now(UTC) + timedelta(hours=2))
            assert later.run_once().action == "anchored"

            append_records(ctx, 9, start=9)
            assert anchorer.run_once().action == "not_due"
            append_records(ctx, 1, start=18)  # 10 pending = HM_ANCHOR_MAX_PENDING
            out = anchorer.run_once()
            # (each checkpoint ends with its subject index record)
            assert (out.action, out.tree_size, out.pending) == ("anchored", 21, 11)
        finally:
            ctx.close()

    def test_idempotent(self, ctx: AppContext) -> None:
        append_records(ctx, 3)
        a = Anchorer(ctx)
        assert a.run_once(force=True).action == "anchored"
        assert a.run_once(force=True).action == "nothing_pending"
        assert Anchorer(ctx).run_once(force=True).action == "nothing_pending"
        assert len(chain_checkpoints(ctx)) == 1


class TestWorkerInServe:
    def test_record_becomes_anchored_within_the_interval(self, ledger_settings: Settings) -> None:
        interval = ledger_settings.anchor_interval_s
        with TestClient(create_app(ledger_settings)) as client:
            ctx: AppContext = client.app.state.ctx  # type: ignore[attr-defined]
            worker = client.app.state.anchor_worker  # type: ignore[attr-defined]
            assert worker is not None
            wait_until(lambda: worker.status.state == "anchorer", timeout=30, what="worker up")
            [rec] = append_records(ctx, 1)
            t0 = time.monotonic()
            first = client.get(f"/api/records/{rec.record_id}").json()
            assert first["anchor_status"]["status"] == "pending"

            def anchored() -> dict[str, object] | None:
                body = client.get(f"/api/records/{rec.record_id}").json()
                return body if body["anchor_status"]["status"] == "anchored" else None

            body = wait_until(anchored, timeout=30, what="the record to be anchored", interval=0.02)
            elapsed = time.monotonic() - t0
            # Due after `interval`; polled every min(interval, 1 s); plus one transaction.
            assert elapsed < interval + 0.2 + 2.0, elapsed
            assert body["anchor_status"]["tree_size"] >= rec.leaf_index + 1

            ready = client.get("/readyz").json()
            assert ready["anchoring"]["worker"]["state"] == "anchorer"
        assert worker.status.state == "stopped"

    def test_disabled_worker_does_not_start(self, settings: Settings) -> None:
        app = create_app(settings.model_copy(update={"anchor_enabled": False}))
        with TestClient(app) as client:
            assert client.app.state.anchor_worker is None  # type: ignore[attr-defined]


class TestCrashSafety:
    def test_crash_between_send_and_record_leaves_one_checkpoint(
        self, ctx: AppContext, tmp_path: Path
    ) -> None:
        settings = ctx.settings
        append_records(ctx, 6)
        # The subprocess must own the embedded chain's files while it runs.
        ctx.close()
        env = settings_env(settings)
        proc = run_cli_script(crash_launcher(), env)
        assert proc.returncode == CRASH_EXIT_CODE, proc.stderr
        sent_tx = proc.stdout.split("sent ", 1)[1].split()[0]

        ctx2 = AppContext.create(settings)
        try:
            # The transaction made it on chain; the database never heard of it.
            assert db_checkpoints(ctx2) == []
            # 6 records and the subject index record.
            assert [c.tree_size for c in chain_checkpoints(ctx2)] == [7]
            append_records(ctx2, 2, start=6)  # written while "down", before the restart

            out = Anchorer(ctx2).run_once(force=True)
            assert out.reconciled == 1
            assert (out.action, out.checkpoint, out.tree_size, out.pending) == (
                "anchored",
                1,
                10,
                3,
            )
            cps = chain_checkpoints(ctx2)
            assert [c.tree_size for c in cps] == [7, 10]  # exactly one checkpoint of size 7
            rows = db_checkpoints(ctx2)
            assert [(r.seq, r.tree_size, bytes(r.root)) for r in rows] == [
                (c.index, c.tree_size, c.root) for c in cps
            ]
            assert rows[0].tx_hash == sent_tx
            assert Anchorer(ctx2).run_once(force=True).action == "nothing_pending"
        finally:
            ctx2.close()

    def test_restart_with_nothing_new_only_records(self, ctx: AppContext) -> None:
        settings = ctx.settings
        append_records(ctx, 4)
        ctx.close()
        proc = run_cli_script(crash_launcher(), settings_env(settings))
        assert proc.returncode == CRASH_EXIT_CODE, proc.stderr

        # A restart through the real command: it reconciles and finds nothing to anchor.
        done = run_cli(["anchor", "--once"], env=settings_env(settings))
        assert done.returncode == 0, done.stderr
        assert "all 5 record(s) are anchored" in done.stdout  # 4 and the index record
        assert "recorded 1 checkpoint(s) found on chain" in done.stdout
        ctx2 = AppContext.create(settings)
        try:
            assert [c.tree_size for c in chain_checkpoints(ctx2)] == [5]
            assert [r.tree_size for r in db_checkpoints(ctx2)] == [5]
        finally:
            ctx2.close()


def run_cli_script(script: Path, env: dict[str, str]):  # type: ignore[no-untyped-def]
    import subprocess

    return subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestReconciliation:
    def _lose_rows(self, ctx: AppContext) -> None:
        with ctx.db.session() as s:
            s.execute(text("DELETE FROM checkpoint"))
            s.commit()

    def test_records_checkpoints_the_database_lacks(self, ctx: AppContext) -> None:
        append_records(ctx, 3)
        Anchorer(ctx).run_once(force=True)
        append_records(ctx, 3, start=3)
        Anchorer(ctx).run_once(force=True)
        before = db_checkpoints(ctx)
        self._lose_rows(ctx)
        assert Anchorer(ctx).reconcile(ctx.ledger()) == 2
        after = db_checkpoints(ctx)
        assert [(r.seq, r.tree_size, bytes(r.root), r.tx_hash, r.block_number) for r in after] == [
            (r.seq, r.tree_size, bytes(r.root), r.tx_hash, r.block_number) for r in before
        ]

    def test_refuses_when_the_log_no_longer_gives_the_anchored_root(
        self, ctx: AppContext, caplog: pytest.LogCaptureFixture
    ) -> None:
        append_records(ctx, 4)
        Anchorer(ctx).run_once(force=True)
        self._lose_rows(ctx)
        # Rewrite the stored subtree hash the root of size 4 is computed from.
        with ctx.db.session() as s:
            s.execute(
                text("UPDATE merkle_node SET hash = :h WHERE level = 2 AND idx = 0"),
                {"h": b"\x11" * 32},
            )
            s.commit()
        with pytest.raises(TamperEvidence, match="altered after it was anchored"):
            Anchorer(ctx).run_once(force=True)
        assert db_checkpoints(ctx) == []
        assert len(chain_checkpoints(ctx)) == 1

    def test_refuses_when_anchored_records_were_removed(self, ctx: AppContext) -> None:
        append_records(ctx, 4)
        Anchorer(ctx).run_once(force=True)
        with ctx.db.session() as s:
            s.execute(text("DELETE FROM log_leaf WHERE leaf_index = 3"))
            s.execute(text("UPDATE log_head SET size = 3"))
            s.commit()
        with pytest.raises(TamperEvidence, match="records were removed"):
            Anchorer(ctx).run_once(force=True)

    def test_refuses_when_the_chain_has_fewer_checkpoints(self, ctx: AppContext) -> None:
        append_records(ctx, 2)
        contract = ctx.ledger().contract()
        with ctx.db.session() as s:
            s.add(
                Checkpoint(
                    seq=0,
                    tree_size=2,
                    root=b"\x00" * 32,
                    tx_hash="0x" + "00" * 32,
                    block_number=1,
                    chain_id=ctx.ledger().chain_id,
                    contract_address=contract.address,
                    anchored_at=datetime.now(UTC),
                )
            )
            s.commit()
        with pytest.raises(LedgerDisagreement, match="has only 0"):
            Anchorer(ctx).run_once(force=True)
        assert chain_checkpoints(ctx) == []

    def test_worker_halts_loudly(self, ctx: AppContext, caplog: pytest.LogCaptureFixture) -> None:
        append_records(ctx, 2)
        with ctx.db.session() as s:
            s.add(
                Checkpoint(
                    seq=0,
                    tree_size=2,
                    root=b"\x00" * 32,
                    tx_hash="0x" + "00" * 32,
                    block_number=1,
                    chain_id=1,
                    contract_address="0x" + "00" * 20,
                    anchored_at=datetime.now(UTC),
                )
            )
            s.commit()
        worker = AnchorWorker(ctx, lock=FileAnchorLock(ctx.settings.data_dir / "t.lock"))
        delay = worker.step()
        assert worker.status.state == "halted"
        assert "refusing to anchor" in (worker.status.last_error or "")
        assert delay > 0
        assert any(r.levelname == "CRITICAL" for r in caplog.records)
        worker.lock.release()  # type: ignore[union-attr]


class TestLock:
    def test_file_lock_is_exclusive(self, tmp_path: Path) -> None:
        a, b = FileAnchorLock(tmp_path / "a.lock"), FileAnchorLock(tmp_path / "a.lock")
        assert a.acquire()
        assert not b.acquire()
        a.release()
        assert b.acquire()
        b.release()

    def test_anchor_once_defers_to_a_running_anchorer(self, settings: Settings) -> None:
        lock = FileAnchorLock(settings.data_dir / anchoring.LOCK_FILE)
        assert lock.acquire()
        try:
            proc = run_cli(["anchor", "--once"], env=settings_env(settings))
            assert proc.returncode == 4, proc.stderr
            assert "another process is anchoring" in proc.stderr
        finally:
            lock.release()

    def test_worker_stands_by_while_another_holds_the_lock(self, embedded_ctx: AppContext) -> None:
        path = embedded_ctx.settings.data_dir / anchoring.LOCK_FILE
        other = FileAnchorLock(path)
        assert other.acquire()
        worker = AnchorWorker(embedded_ctx)
        try:
            worker.step()
            assert worker.status.state == "standby"
            other.release()
            worker.step()
            assert worker.status.state == "anchorer"
        finally:
            worker.lock.release()  # type: ignore[union-attr]
            other.release()

    @pytest.mark.postgres
    def test_postgres_advisory_lock_passes_on_when_holder_dies(self, postgres_url: str) -> None:
        from backend.db import Database

        db = Database(make_settings(Path("/nonexistent"), database_url=postgres_url).db_url)
        try:
            a, b = PgAdvisoryLock(db.engine, key=99), PgAdvisoryLock(db.engine, key=99)
            assert a.acquire() and a.held()
            assert not b.acquire()
            # The holder's connection dies (as when its process is killed).
            assert a._conn is not None
            a._conn.invalidate()
            a._conn = None
            assert b.acquire() and b.held()
            b.release()
        finally:
            db.dispose()

    @pytest.mark.postgres
    def test_anchoring_on_postgres(self, postgres_url: str, tmp_path: Path) -> None:
        ctx = AppContext.create(make_settings(tmp_path / "data", database_url=postgres_url))
        try:
            append_records(ctx, 5)
            worker = AnchorWorker(ctx)
            assert isinstance(worker.lock, PgAdvisoryLock)
            worker.step()  # first pass: reconcile, not yet due (0.2 s)
            time.sleep(0.25)
            worker.step()
            assert worker.status.state == "anchorer", worker.status.detail
            # 5 records and the subject index record
            assert [c.tree_size for c in chain_checkpoints(ctx)] == [6]
            worker.lock.release()  # type: ignore[union-attr]
        finally:
            ctx.close()


def test_backoff_is_exponential_and_capped() -> None:
    delays = [backoff_delay(n, base=0.5, cap=8) for n in range(1, 8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


@pytest.mark.anvil
def test_ledger_down_writes_accepted_then_all_anchored(
    anvil_available: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(anvil_available, "anvil not installed (run: npm ci)")
    monkeypatch.setattr(anchoring, "BACKOFF_CAP_S", 0.5)
    state = tmp_path / "anvil-state.json"
    node: AnvilNode = start_anvil(state_file=state)
    settings = make_settings(tmp_path / "data", ledger_url=node.url, ledger_key=node.key)
    try:
        with TestClient(create_app(settings)) as client:
            ctx: AppContext = client.app.state.ctx  # type: ignore[attr-defined]
            worker = client.app.state.anchor_worker  # type: ignore[attr-defined]
            first = append_records(ctx, 3)
            wait_until(
                lambda: client.get(f"/api/records/{first[-1].record_id}").json()["anchor_status"][
                    "status"
                ]
                == "anchored",
                timeout=30,
                what="the first records to be anchored",
            )
            time.sleep(1.5)  # let anvil write its --state file (every second)
            node.stop()

            # The ledger is down: writes are still accepted and stay pending.
            during = append_records(ctx, 4, start=3)
            ready = wait_until(
                lambda: (r := client.get("/readyz")).status_code == 503 and r.json(),
                timeout=30,
                what="readiness to report the ledger down",
            )
            assert ready["checks"]["database"] == "up"
            assert ready["checks"]["ledger"].startswith("down")
            assert ready["anchoring"]["pending_leaves"] == 4
            wait_until(
                lambda: worker.status.state == "backing_off",
                timeout=30,
                what="the worker to back off",
            )
            for r in during:
                body = client.get(f"/api/records/{r.record_id}").json()
                assert body["anchor_status"]["status"] == "pending"
            assert client.get(f"/api/records/{during[0].record_id}/proof").status_code == 409

            node = start_anvil(port=node.port, state_file=state)
            wait_until(
                lambda: all(
                    client.get(f"/api/records/{r.record_id}").json()["anchor_status"]["status"]
                    == "anchored"
                    for r in during
                ),
                timeout=30,
                what="every record written while the ledger was down to be anchored",
            )
            assert client.get("/readyz").status_code == 200
            cps = chain_checkpoints(ctx)
            with ctx.db.read() as s:
                assert cps[-1].tree_size == log.tree_size(s) >= during[-1].leaf_index + 1
            assert [r.tree_size for r in db_checkpoints(ctx)] == [c.tree_size for c in cps]
            with ctx.db.read() as s:
                rows = s.execute(select(func.count()).select_from(Checkpoint)).scalar_one()
                assert int(rows) == len(cps)
    finally:
        node.stop()
