"""The anchoring worker: publishes the log's tree head on the ledger as checkpoints.

One pass (:meth:`Anchorer.run_once`) first *reconciles*: it reads the contract's
checkpoints the database lacks, checks each against the local tree (the root
the log computes at that size must be the root on chain) and records it. Then,
if pending leaves reached ``HM_ANCHOR_MAX_PENDING`` or the oldest pending leaf
is older than ``HM_ANCHOR_INTERVAL_S``, it anchors the whole current tree with
a consistency proof from the last checkpoint, so one transaction covers every
pending record.

Crash safety comes from the chain being the source of truth: a transaction
sent but not recorded is found by the next reconciliation, and the contract
refuses a tree size that does not grow, so a checkpoint can never be anchored
twice or skipped. The database's checkpoint table only ever mirrors the chain;
when the two disagree, anchoring stops and says so loudly instead of guessing.

Only one anchorer runs at a time: on PostgreSQL a session-level advisory lock
(released by the server when its holder's connection dies), on SQLite an
``flock`` on a file in the data dir (released by the kernel when its holder dies).

This module must never anchor a root it has not just computed from the log,
and never write a checkpoint row that the chain does not have.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from fastapi import FastAPI
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from backend.background import BackgroundThread
from backend.context import AppContext
from backend.errors import LedgerUnavailable
from backend.ledger import index_store, merkle, onchain
from backend.ledger import log as ledger_log
from backend.ledger.chain import LedgerClient, TxResult
from backend.ledger.models import Checkpoint, LogLeaf
from backend.ops import metrics

logger = logging.getLogger("honest_metering.anchoring")

LOCK_FILE = "anchor.lock"
PG_LOCK_KEY = 7340002  # 7340001 serialises contract deployment (backend/context.py)
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
LOCKED_RETRY_S = 2.0
# Gas limit of an anchor transaction (only gas used is paid): about 90k are used at
# any size; each consistency-proof hash costs a SHA-256 precompile call and calldata.
ANCHOR_GAS_BASE = 200_000
ANCHOR_GAS_PER_PROOF_HASH = 5_000

# Test-only fault injection: called right after an anchor transaction is mined and
# before its checkpoint row is written. Production code never sets it; the crash
# test sets it (in a subprocess) to ``os._exit`` to prove reconciliation works.
_test_hook_after_anchor_sent: Callable[[TxResult], None] | None = None


class AnchoringHalted(RuntimeError):
    """The database and the chain disagree; anchoring refuses to continue."""


class TamperEvidence(AnchoringHalted):
    """The log in the database no longer produces a root that was anchored on chain."""


class LedgerDisagreement(AnchoringHalted):
    """The database's checkpoint table does not match the contract (reset chain, wrong contract)."""


class AnchorLockHeld(RuntimeError):
    """Another process is the anchorer right now."""


# --- the one-anchorer lock -------------------------------------------------------


class AnchorLock:
    """Held by at most one process; released automatically when its holder dies."""

    # Incremented each time the lock is newly taken, so a holder can tell that it lost
    # the lock in between (and someone else may have anchored meanwhile).
    generation: int = 0

    def acquire(self) -> bool:
        raise NotImplementedError

    def held(self) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError


class FileAnchorLock(AnchorLock):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - kept open while the lock is held
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        self.generation += 1
        return True

    def held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class PgAdvisoryLock(AnchorLock):
    """``pg_try_advisory_lock`` on a connection kept out of the pool while held."""

    def __init__(self, engine: Any, key: int = PG_LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        if self._conn is not None and self.held():
            return True
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(
                conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({int(self.key)})").scalar()
            )
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        self.generation += 1
        return True

    def held(self) -> bool:
        """True while the lock's connection is alive (the server drops the lock with it)."""
        if self._conn is None:
            return False
        try:
            self._conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            logger.warning("lost the anchoring lock's database connection")
            self._drop()
            return False

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:
                pass

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.exec_driver_sql(f"SELECT pg_advisory_unlock({int(self.key)})")
            self._conn.close()
        except Exception:
            self._drop()
        self._conn = None


def anchor_lock_for(ctx: AppContext) -> AnchorLock:
    if ctx.db.is_sqlite:
        return FileAnchorLock(ctx.settings.data_dir / LOCK_FILE)
    return PgAdvisoryLock(ctx.db.engine)


# --- one pass --------------------------------------------------------------------


Action = Literal["anchored", "nothing_pending", "not_due"]


@dataclass(frozen=True)
class AnchorOutcome:
    """What one pass did."""

    action: Action
    tree_size: int
    pending: int
    reconciled: int = 0
    checkpoint: int | None = None
    tx_hash: str | None = None
    gas_used: int | None = None
    due_in_s: float | None = None

    def describe(self) -> str:
        rec = (
            f"; recorded {self.reconciled} checkpoint(s) found on chain" if self.reconciled else ""
        )
        if self.action == "anchored":
            return (
                f"anchored checkpoint {self.checkpoint} (tree size {self.tree_size}, "
                f"{self.pending} new record(s)) in {self.tx_hash}, gas {self.gas_used}{rec}"
            )
        if self.action == "nothing_pending":
            return f"nothing to anchor: all {self.tree_size} record(s) are anchored{rec}"
        return (
            f"{self.pending} record(s) pending, next checkpoint due in "
            f"{self.due_in_s or 0:.1f}s{rec}"
        )


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def last_checkpoint(session: Session) -> Checkpoint | None:
    """The newest checkpoint row, detached so it outlives the (read) session."""
    cp = session.execute(
        select(Checkpoint).order_by(Checkpoint.seq.desc()).limit(1)  # type: ignore[attr-defined]
    ).scalars().first()
    if cp is not None:
        session.expunge(cp)
    return cp


def pending_summary(session: Session) -> tuple[int, int, datetime | None]:
    """(tree size, pending leaves, time the oldest pending leaf was appended)."""
    size = ledger_log.tree_size(session)
    last = last_checkpoint(session)
    anchored = last.tree_size if last else 0
    if size <= anchored:
        return size, 0, None
    oldest = session.execute(
        select(col(LogLeaf.appended_at)).where(col(LogLeaf.leaf_index) == anchored)
    ).scalar_one_or_none()
    return size, size - anchored, _aware(oldest) if oldest is not None else None


def check_chain_holds(
    ledger: LedgerClient, last: Checkpoint | None, *, action: str = "refusing to anchor"
) -> int:
    """The contract's checkpoint count, after checking that the chain still holds the
    database's newest checkpoint ``last`` (and so every one before it: the contract only
    appends). Raises :class:`LedgerDisagreement` naming what is missing: the contract
    is another one or has no code (the chain was reset), it has fewer checkpoints, or
    its checkpoint differs. ``action`` ends the message (what the caller does about it).
    """
    contract = ledger.contract()
    chain_id = ledger.chain_id
    address = contract.address
    if last is not None:
        if (last.chain_id, last.contract_address.lower()) != (chain_id, address.lower()):
            raise LedgerDisagreement(
                f"the database's checkpoints were anchored in contract "
                f"{last.contract_address} on chain {last.chain_id}, but the ledger is "
                f"contract {address} on chain {chain_id}; {action} (was the "
                "chain reset or HM_CONTRACT_ADDRESS changed?)"
            )
        if not ledger.has_code(address):
            raise LedgerDisagreement(
                f"the database records {last.seq + 1} checkpoints in contract {address} "
                f"on chain {chain_id}, but there is no contract code at that address: the "
                f"chain was reset or restarted without its state; {action}"
            )
    count = int(ledger.call(contract.functions.checkpointCount()))
    if last is not None:
        db_count = last.seq + 1
        if db_count > count:
            raise LedgerDisagreement(
                f"the database records {db_count} checkpoints but contract {address} on "
                f"chain {chain_id} has only {count}: the chain lost checkpoints (reset or "
                f"restarted without its state?); {action}"
            )
        on_chain = onchain.checkpoint_at(contract, last.seq)
        if (on_chain.tree_size, on_chain.root) != (last.tree_size, bytes(last.root)):
            raise LedgerDisagreement(
                f"checkpoint {last.seq} differs: database has size {last.tree_size} root "
                f"0x{bytes(last.root).hex()}, contract has size {on_chain.tree_size} root "
                f"0x{on_chain.root.hex()}"
            )
    return count


class Anchorer:
    """Reconciles with the contract and anchors; the caller holds the anchor lock."""

    def __init__(self, ctx: AppContext, *, clock: Callable[[], datetime] | None = None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self._reconciled = False
        self._kept_index: index_store.KeptIndex | None = None

    # reconciliation ---------------------------------------------------------

    def reconcile(self, ledger: LedgerClient) -> int:
        """Record the contract's checkpoints the database lacks; returns how many.

        Raises :class:`LedgerDisagreement` or :class:`TamperEvidence` instead of
        recording anything the local log cannot reproduce.
        """
        contract = ledger.contract()
        chain_id = ledger.chain_id
        address = contract.address
        with self.ctx.db.read() as s:
            last = last_checkpoint(s)
            db_count = 0 if last is None else last.seq + 1
            rows = int(s.execute(select(func.count()).select_from(Checkpoint)).scalar_one())
        if rows != db_count:
            raise LedgerDisagreement(
                f"the checkpoint table has {rows} rows but its last is checkpoint "
                f"{db_count - 1}: rows were deleted or inserted by hand; run "
                "`honest-metering audit`"
            )
        count = check_chain_holds(ledger, last, action="refusing to anchor")
        if last is not None:
            with self.ctx.db.read() as s:
                size = ledger_log.tree_size(s)
            if size < last.tree_size:
                raise TamperEvidence(
                    f"checkpoint {last.seq} covers {last.tree_size} records but the log has "
                    f"only {size}: records were removed; run `honest-metering audit`"
                )
        added = 0
        for seq in range(db_count, count):
            cp = onchain.checkpoint_at(contract, seq)
            self._check_against_log(cp)
            ev = onchain.find_anchoring_event(contract, cp)
            if ev is None:
                raise LedgerDisagreement(
                    f"checkpoint {seq} exists in contract {address} but no CheckpointAnchored "
                    f"event for it was found in block {cp.block_number}"
                )
            self._record(
                Checkpoint(
                    seq=seq,
                    tree_size=cp.tree_size,
                    root=cp.root,
                    tx_hash=ev.tx_hash,
                    block_number=cp.block_number,
                    chain_id=chain_id,
                    contract_address=address,
                    anchored_at=cp.anchored_at,
                    gas_used=None,
                )
            )
            logger.info(
                "recorded checkpoint %d (tree size %d) found on chain in %s",
                seq,
                cp.tree_size,
                ev.tx_hash,
            )
            added += 1
        self._reconciled = True
        return added

    def forget_reconciliation(self) -> None:
        """Read the chain again before the next decision (e.g. after regaining the lock)."""
        self._reconciled = False

    def _check_against_log(self, cp: onchain.OnChainCheckpoint) -> None:
        with self.ctx.db.read() as s:
            size = ledger_log.tree_size(s)
            if cp.tree_size > size:
                raise TamperEvidence(
                    f"checkpoint {cp.index} on chain covers {cp.tree_size} records but the "
                    f"log has only {size}: records are missing from the database"
                )
            try:
                local = ledger_log.root_at(s, cp.tree_size)
            except ledger_log.LogCorrupted as exc:
                raise TamperEvidence(
                    f"cannot recompute the root of checkpoint {cp.index} (tree size "
                    f"{cp.tree_size}): {exc}; run `honest-metering audit`"
                ) from None
        if local != cp.root:
            raise TamperEvidence(
                f"checkpoint {cp.index} on chain has root 0x{cp.root.hex()} for tree size "
                f"{cp.tree_size}, but the log now gives 0x{local.hex()}: the log was altered "
                "after it was anchored; run `honest-metering audit`"
            )

    def _record(self, row: Checkpoint) -> None:
        with self.ctx.db.session() as s:
            s.add(row)
            try:
                s.commit()
                return
            except IntegrityError:
                s.rollback()
            existing = s.get(Checkpoint, row.seq)
            if existing is None or (existing.tree_size, bytes(existing.root)) != (
                row.tree_size,
                bytes(row.root),
            ):
                raise LedgerDisagreement(
                    f"could not record checkpoint {row.seq} (size {row.tree_size}): the "
                    "checkpoint table holds a different row"
                )

    def _close_with_index(self, size: int) -> int:
        """The tree size to anchor: one past a ``ledger.subject_index`` record over every
        leaf before it, so that each checkpoint ends with the index it commits to
        (``backend/ledger/index_store.py``). Appends that record unless the log's last
        leaf is one already (a pass that crashed after appending it)."""
        with self.ctx.db.read() as s:
            if size and index_store.index_record_at(s, size - 1) is not None:
                return size
        with self.ctx.db.session() as s:
            try:
                rec, kept = index_store.append_index_record(
                    s, now=self._clock(), kept=self._kept_index
                )
                s.commit()
            except BaseException:
                self._kept_index = None
                raise
        self._kept_index = kept
        return rec.leaf_index + 1

    # one pass -----------------------------------------------------------------

    def run_once(self, *, force: bool = False) -> AnchorOutcome:
        """Reconcile if needed, then anchor if due (``force``: anchor anything pending).

        Raises ``LedgerUnavailable`` when the ledger cannot be reached,
        :class:`AnchoringHalted` when the database and the chain disagree, and
        whatever the ledger raised when an anchor transaction failed.
        """
        with self.ctx.db.read() as s:
            size, pending, oldest = pending_summary(s)
        due_in = self._due_in(pending, oldest)
        if self._reconciled and not force and (pending == 0 or due_in > 0):
            return AnchorOutcome(
                action="nothing_pending" if pending == 0 else "not_due",
                tree_size=size,
                pending=pending,
                due_in_s=None if pending == 0 else due_in,
            )

        ledger = self.ctx.require_ledger()
        try:
            reconciled = self.reconcile(ledger)
        except BaseException:
            self._reconciled = False
            raise
        with self.ctx.db.read() as s:
            size, pending, oldest = pending_summary(s)
            last = last_checkpoint(s)
        due_in = self._due_in(pending, oldest)
        if pending == 0 or (not force and due_in > 0):
            return AnchorOutcome(
                action="nothing_pending" if pending == 0 else "not_due",
                tree_size=size,
                pending=pending,
                reconciled=reconciled,
                due_in_s=None if pending == 0 else due_in,
            )
        try:
            return self._anchor(ledger, size, last, reconciled)
        except BaseException:
            # Whatever happened to the transaction, the chain knows: look again next time.
            self._reconciled = False
            raise

    def _due_in(self, pending: int, oldest: datetime | None) -> float:
        if pending == 0:
            return float("inf")
        if pending >= self.settings.anchor_max_pending or oldest is None:
            return 0.0
        age = (self._clock() - oldest).total_seconds()
        return max(0.0, self.settings.anchor_interval_s - age)

    def _anchor(
        self, ledger: LedgerClient, size: int, last: Checkpoint | None, reconciled: int
    ) -> AnchorOutcome:
        old_size = last.tree_size if last else 0
        size = self._close_with_index(size)
        with self.ctx.db.read() as s:
            root = ledger_log.root_at(s, size)
            proof = ledger_log.consistency_proof(s, old_size, size) if old_size else []
            old_local = ledger_log.root_at(s, old_size) if old_size else None
        if last is not None:
            if old_local != bytes(last.root):
                raise TamperEvidence(
                    f"the log's root at tree size {old_size} is 0x{(old_local or b'').hex()}, "
                    f"but checkpoint {last.seq} anchored 0x{bytes(last.root).hex()}: the log "
                    "was altered after it was anchored; run `honest-metering audit`"
                )
            # The contract checks this too; checking first gives a clear error, not a revert.
            merkle.verify_consistency(old_size, size, bytes(last.root), root, proof)

        contract = ledger.contract()
        fn = contract.functions.anchor(size, root, proof)
        # Simulate once (a revert surfaces as the contract's custom error, no gas spent),
        # then send with a fixed generous limit: estimating gas would run it a dozen times.
        ledger.call(fn)
        result = ledger.send(fn, gas=ANCHOR_GAS_BASE + ANCHOR_GAS_PER_PROOF_HASH * len(proof))
        if _test_hook_after_anchor_sent is not None:
            _test_hook_after_anchor_sent(result)

        events = onchain.anchoring_events_in_receipt(contract, result.logs)
        if len(events) != 1 or events[0].tree_size != size or events[0].root != root:
            raise LedgerDisagreement(
                f"anchor transaction {result.tx_hash} did not emit the expected "
                f"CheckpointAnchored event for tree size {size}"
            )
        ev = events[0]
        self._record(
            Checkpoint(
                seq=ev.index,
                tree_size=size,
                root=root,
                tx_hash=result.tx_hash,
                block_number=result.block_number,
                chain_id=ledger.chain_id,
                contract_address=contract.address,
                anchored_at=datetime.fromtimestamp(ev.timestamp, UTC),
                gas_used=result.gas_used,
            )
        )
        logger.info(
            "anchored checkpoint %d: tree size %d (+%d), tx %s, gas %d",
            ev.index,
            size,
            size - old_size,
            result.tx_hash,
            result.gas_used,
        )
        return AnchorOutcome(
            action="anchored",
            tree_size=size,
            pending=size - old_size,
            reconciled=reconciled,
            checkpoint=ev.index,
            tx_hash=result.tx_hash,
            gas_used=result.gas_used,
        )


# --- the background worker ---------------------------------------------------------


@dataclass
class WorkerStatus:
    """What the worker in this process is doing (for readiness and the CLI)."""

    state: Literal[
        "starting", "anchorer", "standby", "backing_off", "halted", "stopped"
    ] = "starting"
    detail: str = ""
    consecutive_failures: int = 0
    last_outcome: str | None = None
    last_error: str | None = None
    last_run_at: datetime | None = None
    next_attempt_at: datetime | None = None
    ledger_up: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "detail": self.detail,
            "consecutive_failures": self.consecutive_failures,
            "last_outcome": self.last_outcome,
            "last_error": self.last_error,
            "last_run_at": self.last_run_at.isoformat() if self.last_run_at else None,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
        }


def backoff_delay(failures: int, *, base: float | None = None, cap: float | None = None) -> float:
    """Exponential backoff: base, 2·base, 4·base, … capped."""
    b = BACKOFF_BASE_S if base is None else base
    c = BACKOFF_CAP_S if cap is None else cap
    return float(min(c, b * (2 ** max(0, failures - 1))))


@dataclass(eq=False)
class AnchorWorker(BackgroundThread):
    """Runs :class:`Anchorer` passes in a thread while holding the anchor lock."""

    thread_name = "anchoring-worker"

    ctx: AppContext
    lock: AnchorLock | None = None
    status: WorkerStatus = field(default_factory=WorkerStatus)
    poll_interval_s: float | None = None  # default: min(HM_ANCHOR_INTERVAL_S, 1 s)

    def __post_init__(self) -> None:
        BackgroundThread.__init__(self)
        if self.lock is None:
            self.lock = anchor_lock_for(self.ctx)
        self.anchorer = Anchorer(self.ctx)
        self._lock_generation = 0

    @property
    def poll_s(self) -> float:
        if self.poll_interval_s is not None:
            return self.poll_interval_s
        return min(self.ctx.settings.anchor_interval_s, 1.0)

    def run(self) -> None:
        """Loop until stopped (also used in the foreground by ``honest-metering anchor``)."""
        assert self.lock is not None
        try:
            while not self.stopping:
                self.pause(self.step())
        finally:
            self.lock.release()
            self.status.state = "stopped"
            self.status.next_attempt_at = None

    def step(self) -> float:
        """One iteration; returns how long to wait before the next."""
        assert self.lock is not None
        st = self.status
        try:
            if not self.lock.acquire():
                st.state, st.detail = "standby", "another process holds the anchoring lock"
                return LOCKED_RETRY_S
        except Exception as exc:
            return self._failed(f"cannot take the anchoring lock: {exc}", reason="lock")
        if self.lock.generation != self._lock_generation:
            # Newly (re)taken: someone else may have anchored while we did not hold it.
            self.anchorer.forget_reconciliation()
            self._lock_generation = self.lock.generation
        try:
            outcome = self.anchorer.run_once()
        except LedgerUnavailable as exc:
            st.ledger_up = False
            return self._failed(exc.detail, reason="ledger_unavailable")
        except AnchoringHalted as exc:
            st.ledger_up = True
            logger.critical("ANCHORING HALTED: %s", exc)
            delay = self._failed(str(exc), state="halted", reason="halted")
            return delay
        except Exception as exc:
            logger.exception("anchoring pass failed")
            return self._failed(f"{type(exc).__name__}: {exc}", reason="error")
        if outcome.action == "anchored":
            metrics.CHECKPOINTS_ANCHORED.inc()
        st.ledger_up = True
        st.state = "anchorer"
        st.consecutive_failures = 0
        st.last_error = None
        st.last_outcome = outcome.describe()
        st.detail = st.last_outcome
        st.last_run_at = datetime.now(UTC)
        if outcome.action == "not_due" and outcome.due_in_s is not None:
            delay = min(self.poll_s, max(outcome.due_in_s, 0.01))
        else:
            delay = self.poll_s
        st.next_attempt_at = None
        return delay

    def _failed(
        self,
        message: str,
        *,
        reason: str,
        state: Literal["backing_off", "halted"] = "backing_off",
    ) -> float:
        st = self.status
        metrics.ANCHOR_FAILURES.labels(reason).inc()
        st.consecutive_failures += 1
        delay = backoff_delay(st.consecutive_failures)
        if state == "backing_off":
            logger.warning(
                "anchoring failed (%d in a row), retrying in %.1fs: %s",
                st.consecutive_failures,
                delay,
                message,
            )
        st.state = state
        st.last_error = message
        st.detail = message
        st.last_run_at = datetime.now(UTC)
        st.next_attempt_at = datetime.fromtimestamp(time.time() + delay, UTC)
        return delay


def install(app: FastAPI) -> None:
    """Start the worker with the app (``honest-metering serve``) unless disabled."""

    def start(ctx: AppContext) -> None:
        app.state.anchor_worker = None
        if ctx.settings.anchor_enabled:
            app.state.anchor_worker = AnchorWorker(ctx).start()

    def stop(ctx: AppContext) -> None:
        worker = getattr(app.state, "anchor_worker", None)
        if worker is not None:
            worker.stop()
            app.state.anchor_worker = None

    app.state.anchor_worker = None
    app.state.startup_hooks.append(start)
    app.state.shutdown_hooks.append(stop)
