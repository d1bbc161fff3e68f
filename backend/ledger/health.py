"""Readiness (``GET /readyz``): is the database up, is the ledger up, and does the chain
still hold the checkpoints the database records.

A readiness probe must answer in time whatever it checks: a ledger node that
accepts connections and never answers held ``/readyz`` for 52 s (web3 retries
its 10 s request five times). So each check runs in a background thread of its
own, and ``/readyz`` waits for it at most ``HM_READYZ_TIMEOUT_S``; a check with
no answer by then is reported down. A check runs one at a time (single flight):
a probe arriving while the last one is still stuck waits for that one instead of
starting another thread, so a hung node never piles up threads.

"Up" is not enough for the ledger: a chain reset (a development node restarted
without its state, a wiped node) answers quickly and has none of the service's
checkpoints. The ledger check therefore also checks that the contract still has
code and holds the database's newest checkpoint
(:func:`backend.ledger.anchoring.check_chain_holds`).

This module must never let a probe wait longer than its deadline, and never
write anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import text

from backend.context import AppContext
from backend.ledger import service
from backend.ledger.anchoring import LedgerDisagreement, check_chain_holds, last_checkpoint

T = TypeVar("T")

PROBES = "readyz.probes"  # the AppContext local holding this process's probes


class SingleFlight(Generic[T]):
    """``fn`` run in a thread of its own, at most one run at a time.

    A daemon thread per run, not an executor: a run stuck on a hung node must not hold
    up the process's exit (Python joins executor threads at exit).
    """

    def __init__(self, name: str, fn: Callable[[], T]) -> None:
        self._name = name
        self._fn = fn
        self._lock = threading.Lock()
        self._running: Future[T] | None = None

    def start(self) -> Future[T]:
        """The run in progress, or a new one."""
        with self._lock:
            if self._running is None or self._running.done():
                future: Future[T] = Future()
                future.set_running_or_notify_cancel()

                def run() -> None:
                    try:
                        future.set_result(self._fn())
                    except BaseException as exc:
                        future.set_exception(exc)

                threading.Thread(target=run, name=self._name, daemon=True).start()
                self._running = future
            return self._running


@dataclass(frozen=True)
class DatabaseState:
    anchoring: dict[str, Any]


@dataclass(frozen=True)
class LedgerState:
    ledger: str
    checkpoints: str


def _describe(exc: BaseException) -> str:
    return str(getattr(exc, "detail", None) or type(exc).__name__)


class Probes:
    """This process's readiness checks (one single-flight runner for each)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.database = SingleFlight("readyz-database", self._database)
        self.ledger = SingleFlight("readyz-ledger", self._ledger)

    def _database(self) -> DatabaseState:
        with self.ctx.db.read() as s:
            s.execute(text("SELECT 1"))
            return DatabaseState(service.anchoring_info(s).model_dump())

    def _ledger(self) -> LedgerState:
        try:
            ledger = self.ctx.require_ledger()
            ledger.block_number()
        except Exception as exc:
            return LedgerState(f"down: {_describe(exc)}", "unknown: the ledger is down")
        try:
            with self.ctx.db.read() as s:
                last = last_checkpoint(s)
        except Exception as exc:
            return LedgerState("up", f"unknown: the database is down ({_describe(exc)})")
        try:
            check_chain_holds(ledger, last, action="anchoring halts")
        except LedgerDisagreement as exc:
            return LedgerState("up", f"missing on chain: {exc}")
        except Exception as exc:
            return LedgerState(
                f"down: reading the contract failed ({_describe(exc)})",
                "unknown: the ledger is down",
            )
        return LedgerState("up", "up")


def readiness(ctx: AppContext) -> tuple[bool, dict[str, str], dict[str, Any]]:
    """(ready, the checks, anchoring progress), within ``HM_READYZ_TIMEOUT_S``."""
    timeout_s = ctx.settings.readyz_timeout_s
    probes: Probes = ctx.local(PROBES, lambda: Probes(ctx))
    # Both start before either is waited for: they share the deadline.
    database, ledger = probes.database.start(), probes.ledger.start()
    both: list[Future[Any]] = [database, ledger]
    wait(both, timeout=timeout_s)
    late = f"down: no answer within {timeout_s:g} s (HM_READYZ_TIMEOUT_S)"
    checks: dict[str, str] = {}
    anchoring: dict[str, Any] = {}
    if not database.done():
        checks["database"] = late
    elif database.exception() is not None:  # any failure means "not ready"
        checks["database"] = f"down: {type(database.exception()).__name__}"
    else:
        checks["database"] = "up"
        anchoring = database.result().anchoring
    if not ledger.done():
        checks["ledger"] = late
        checks["checkpoints"] = "unknown: the ledger did not answer"
    else:
        state = ledger.result()  # the check catches its own failures
        checks["ledger"], checks["checkpoints"] = state.ledger, state.checkpoints
    ready = all(v == "up" for v in checks.values())
    return ready, checks, anchoring
