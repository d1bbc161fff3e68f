"""Public reads of the embedded chain, run in worker processes on a snapshot of its state.

``POST /rpc`` (backend/ledger/rpc.py) must never make the anchoring worker or a
draw wait, and must never run for longer than ``HM_RPC_CALL_TIMEOUT_S``. Both are
hard in one process: py-evm runs under the lock every write needs, and a Python
thread cannot be stopped (one ``eth_call`` of the BLAKE2F precompile with 30M
rounds runs for minutes in pure Python). So public reads never touch the
service's chain object. They run in a small pool of worker processes
(``HM_RPC_READ_WORKERS``, pebble's ProcessPool), each of which opens the
chain's SQLite file read-only and answers each call in its own read transaction:
SQLite in WAL mode gives that transaction a consistent snapshot of the chain as
it was committed when the call began, while the service goes on writing blocks
next to it. A call that runs past the time limit is ended by killing its worker
process (pebble starts a fresh one); nothing it held is shared with the writer.

What a call used (gas, blocks scanned, time) comes back with its answer, so the
rate limit can charge by cost.

This module must never write to the chain's database (the connection is opened
read-only), and must never run a public read in the serving process.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("honest_metering.rpc")

# Requests (single or batch) admitted per read worker at once, running or queued;
# more are refused at once with 503 rather than left to wait (so a call waits for at
# most about one other call's time limit before it runs).
QUEUE_PER_WORKER = 2
# Read workers run at a lower CPU priority than the service (nice(2) increment): on a
# small machine, the anchoring worker and draws get the CPU before public reads do.
READ_WORKER_NICE = 10
# Imported once in the fork server, so a new read worker starts in a fraction of a second
# (the chain modules are imported lazily elsewhere, so they are named here).
PRELOAD = [
    "backend.ledger.rpc",
    "eth.chains.base",
    "eth.db.atomic",
    "eth.vm.forks",
    "eth_tester",
    "eth_tester.backends.pyevm.main",
    "web3.providers.eth_tester",
]
# How long a call may wait for a worker process to start (a fresh one imports py-evm:
# a few seconds) on top of its own time limit.
START_ALLOWANCE_S = 60.0


@dataclass(frozen=True)
class ReadLimits:
    """The limits one call runs under (sent with each call, so they are the serving
    process's values at the time of the call)."""

    gas_cap: int
    timeout_s: float
    max_log_block_range: int
    max_log_results: int


@dataclass
class Usage:
    """What one call used: EVM gas, blocks scanned, seconds in a worker."""

    gas: int = 0
    blocks: int = 0
    seconds: float = 0.0
    cut_off: bool = False


class ReadAborted(Exception):
    """A call did not finish: cut off at the time limit, or its worker died."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


# --- inside a read worker ------------------------------------------------------------


class _ReadOnlyKV:
    """The chain's key-value table, read through one read-only SQLite connection."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
        )

    def get(self, key: bytes) -> bytes | None:
        row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every read inside sees the same committed state."""
        self._conn.execute("BEGIN")
        try:
            self._conn.execute("SELECT 1 FROM kv LIMIT 1").fetchone()  # start the snapshot now
            yield
        finally:
            self._conn.execute("ROLLBACK")


def _read_only_db(kv: _ReadOnlyKV) -> Any:
    from eth.db.atomic import AtomicDB
    from eth.db.backends.base import BaseDB

    class ReadOnlyAdapter(BaseDB):
        def __getitem__(self, key: bytes) -> bytes:
            value = kv.get(key)
            if value is None:
                raise KeyError(key)
            return value

        def __setitem__(self, key: bytes, value: bytes) -> None:
            raise PermissionError("a public read tried to write to the chain")

        def __delitem__(self, key: bytes) -> None:
            raise PermissionError("a public read tried to write to the chain")

        def _exists(self, key: bytes) -> bool:
            return kv.get(key) is not None

    return AtomicDB(ReadOnlyAdapter())


def _reader_chain_class() -> Any:
    """The service's chain class, with the call's gas cap as the gas limit of the
    blocks it executes on (so ``eth_estimateGas``'s search stops at the cap) and the
    gas each executed transaction used added to the call's usage."""
    from backend.ledger.chain import _tester_chain_class

    base = _tester_chain_class()

    class ReaderChain(base):  # type: ignore[misc,valid-type]
        gas_cap: int | None = None
        usage: Usage | None = None

        def get_vm(self, at_header: Any = None) -> Any:
            header = self.ensure_header(at_header)
            if self.gas_cap is not None and header.gas_limit > self.gas_cap:
                header = header.copy(gas_limit=self.gas_cap)
            vm = super().get_vm(header)
            usage = self.usage
            if usage is not None:
                state = vm.state
                apply = state.apply_transaction

                def metered(transaction: Any) -> Any:
                    computation = apply(transaction)
                    # The computation's gas starts after the intrinsic gas (calldata).
                    usage.gas += computation.get_gas_used() + transaction.intrinsic_gas
                    return computation

                state.apply_transaction = metered
            return vm

    return ReaderChain


class ChainReader:
    """A read-only view of the embedded chain: a web3 client on a fresh chain object
    per call, inside one SQLite read transaction."""

    def __init__(self, chain_db: Path) -> None:
        from eth_tester import EthereumTester, PyEVMBackend
        from eth_tester.backends.pyevm.main import get_default_account_keys
        from web3 import Web3

        from backend.ledger.chain import make_tester_provider

        self._kv = _ReadOnlyKV(chain_db)
        self._db = _read_only_db(self._kv)
        self._chain_class = _reader_chain_class()
        self._backend = PyEVMBackend.__new__(PyEVMBackend)
        # eth_call's sender when none is given (the RPC layer drops it): a well-known
        # eth-tester account; no view of MeteringLedger depends on the sender.
        self._backend.account_keys = tuple(get_default_account_keys(1))
        with self._kv.snapshot():
            self._backend.chain = self._chain_class(self._db)
        tester = EthereumTester(backend=self._backend, auto_mine_transactions=False)
        self.w3 = Web3(make_tester_provider(tester))

    @contextmanager
    def snapshot(self, *, gas_cap: int | None, usage: Usage) -> Iterator[Any]:
        """The web3 client on the chain as committed now; ``gas_cap`` limits EVM calls."""
        with self._kv.snapshot():
            chain = self._chain_class(self._db)
            chain.gas_cap = gas_cap
            chain.usage = usage
            self._backend.chain = chain
            yield self.w3


_reader: ChainReader | None = None


def initialize(chain_db: str) -> None:
    """Start-up of a read worker (pebble's initializer): follow the parent, open the chain."""
    global _reader
    from backend.ops import parentdeath

    # Nothing to shut down gracefully: end at once with the service (the fork server's
    # main thread started this process, and the fork server ends with the service).
    parentdeath.exit_with_parent(signum=signal.SIGKILL, grace_s=0)
    os.nice(READ_WORKER_NICE)
    _reader = ChainReader(Path(chain_db))


def serve_one(request: Any, limits: ReadLimits) -> tuple[dict[str, Any], Usage]:
    """Answer one JSON-RPC call on a snapshot of the chain (in a read worker)."""
    from backend.ledger import rpc

    assert _reader is not None, "read worker not initialised"
    usage = Usage()
    started = time.monotonic()
    method = request.get("method") if isinstance(request, dict) else None
    gas_cap = limits.gas_cap if method in rpc.EVM_METHODS else None
    with _reader.snapshot(gas_cap=gas_cap, usage=usage) as w3:
        response = rpc.handle_one(w3, request, limits=limits, usage=usage)
    usage.seconds = time.monotonic() - started
    return response, usage


# --- in the serving process ------------------------------------------------------------


def _mp_context() -> Any:
    """multiprocessing's fork server, with the reader's imports done once in it.

    Not fork: the serving process has threads (the event loop's, the anchoring
    worker's) and open database connections a fork would copy. Not spawn: each new
    worker would import web3 and py-evm anew (seconds), and a worker killed at the
    time limit is replaced at once only if that is already done. The fork server is
    a clean single-threaded process that imports them once and forks each worker.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


class ReadPool:
    """The read workers, and admission to them."""

    def __init__(self, *, chain_db: Path, workers: int) -> None:
        self.workers = workers
        self._chain_db = chain_db
        self._admission = threading.BoundedSemaphore(workers * QUEUE_PER_WORKER)
        self._lock = threading.Lock()
        self._pool: Any = None
        self._closed = False

    def _processes(self) -> Any:
        """The pebble pool, made anew if it broke (every worker failed to start)."""
        from pebble import ProcessPool

        with self._lock:
            if self._closed:
                raise ReadAborted("the service is stopping", timed_out=False)
            if self._pool is None or not self._pool.active:
                if self._pool is not None:
                    self._pool.stop()
                self._pool = ProcessPool(
                    max_workers=self.workers,
                    initializer=initialize,
                    initargs=(str(self._chain_db),),
                    context=_mp_context(),
                )
            return self._pool

    def admit(self) -> bool:
        """Take a place for one request, or False at once when every place is taken."""
        return self._admission.acquire(blocking=False)

    def release(self) -> None:
        self._admission.release()

    def run(self, request: Any, limits: ReadLimits) -> tuple[dict[str, Any], Usage]:
        """One call in a read worker (blocks until it is answered or cut off).

        Raises :class:`ReadAborted` when the call ran past ``limits.timeout_s`` (its
        worker is killed and replaced) or its worker died.
        """
        from concurrent.futures.process import BrokenProcessPool

        from pebble import ProcessExpired

        try:
            future = self._processes().schedule(
                serve_one, args=(request, limits), timeout=limits.timeout_s
            )
        except RuntimeError as exc:  # pebble: the pool is closed or broken
            raise ReadAborted(f"no read worker: {exc}", timed_out=False) from None
        try:
            return future.result(timeout=limits.timeout_s + START_ALLOWANCE_S)
        except FutureTimeout:
            if not future.done():
                future.cancel()
                raise ReadAborted(
                    "no read worker was free in time", timed_out=False
                ) from None
            raise ReadAborted(
                f"ran longer than {limits.timeout_s:g} s", timed_out=True
            ) from None
        except ProcessExpired as exc:
            logger.error("a JSON-RPC read worker died: %s", exc)
            raise ReadAborted(
                f"the read worker died (exit code {exc.exitcode})", timed_out=False
            ) from None
        except BrokenProcessPool as exc:
            logger.error("the JSON-RPC read workers failed: %s", exc)
            raise ReadAborted(f"the read workers failed to start: {exc}", timed_out=False) from None
        except CancelledError:
            raise ReadAborted("the call was cancelled", timed_out=False) from None
        except Exception as exc:  # e.g. a request or answer pickle could not carry
            logger.exception("a JSON-RPC call failed in the read workers")
            raise ReadAborted(f"{type(exc).__name__}", timed_out=False) from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
            pool.join(timeout=10)
