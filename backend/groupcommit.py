"""Group commit: concurrent requests' writes share one transaction.

Every write appends to the log under the ``log_head`` row lock, held until
commit, so writes of one kind take turns however many threads or workers run
them. Paying a transaction per write (the lock, the queries that load what
the write is checked against, the re-rating, the commit) caps throughput well
below what the machine can do. Like a database's own group commit, this module
lets the writes that arrive while one transaction runs go together in the next:

- Request threads :meth:`GroupCommit.submit` an item and wait for its result.
- One writer thread per process takes everything queued (up to ``max_batch``)
  and hands it to ``run_batch``, which returns one result or ``DomainError`` per
  item, in order. Nothing waits on purpose: a lone request is written at once.
- Each item stands alone: ``run_batch`` checks every item and writes those that
  pass. If the batch fails as a whole before its transaction starts to commit
  (a ``DomainError``, or any unexpected exception: a rating that overflows on one
  item's date), each item is tried again on its own, so one bad item fails alone
  and never its neighbours. Only a failure from the moment a COMMIT was sent
  reaches every caller of the batch, and is not retried: a transaction whose
  COMMIT was cut off may have committed, and must not be written twice. (Which
  side of that moment a failure lies on is known by an engine ``commit`` event,
  below; it fires for every commit, ORM or Core, before the COMMIT is sent.) A
  database that went away (a transient error) before the commit also reaches
  every caller: their retry, not ours, is the remedy.

A result reaches its caller only after ``run_batch`` has committed: an
accepted write is durable before anyone is told about it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from backend.errors import DomainError
from backend.ops.metrics import GROUP_COMMIT_SIZE

log = logging.getLogger("honest_metering.groupcommit")

Item = TypeVar("Item")
Result = TypeVar("Result")

_STOP = object()

_writer = threading.local()
"""Per writer thread: ``committing`` is set once the running batch sent a COMMIT."""


@event.listens_for(Engine, "commit")
def _commit_started(_conn: object) -> None:
    # Fires on whatever thread commits; only a group commit's writer thread reads it.
    _writer.committing = True


def _transient(exc: BaseException) -> bool:
    """The database is away (connection lost, none to be had): not one item's fault."""
    return isinstance(exc, OperationalError | PoolTimeout) or (
        isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
    )


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        name: str,
        run_batch: Callable[[Sequence[Item]], Sequence[Result | DomainError]],
        *,
        max_batch: int = 64,
    ) -> None:
        self.name = name
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, item: Item) -> Result:
        """Write ``item`` with whatever else is queued; its result, or raise its error."""
        return self._enqueue(item).result()

    async def submit_async(self, item: Item) -> Result:
        """:meth:`submit` for the event loop: waits without holding a thread. If the
        caller is cancelled before the batch takes the item, it is not written."""
        return await asyncio.wrap_future(self._enqueue(item))

    def _enqueue(self, item: Item) -> Future[Result]:
        fut: Future[Result] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"group commit {self.name} is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name=f"groupcommit-{self.name}", daemon=True
                )
                self._thread.start()
            self._queue.put((item, fut))
        return fut

    def close(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the writer thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._write(batch)  # type: ignore[arg-type]
            if stop:
                return

    def _write(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        # From here on the callers wait for the outcome; one already cancelled is dropped.
        batch = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
        if batch:
            self._run(batch)

    def _run(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        items = [item for item, _ in batch]
        _writer.committing = False
        try:
            results = self._run_batch(items)
            if len(results) != len(items):
                raise RuntimeError(
                    f"{self.name}: {len(results)} results for {len(items)} items"
                )
        except BaseException as exc:
            if getattr(_writer, "committing", False) or _transient(exc) or not isinstance(
                exc, Exception
            ):
                # From COMMIT on, whether the batch committed may be unknown, and writing
                # it again could write it twice; a database that went away fails every
                # item alike. Every caller gets the error, and nothing is retried.
                for _, fut in batch:
                    _settle(fut, exc)
                return
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            # One item broke the batch before anything was committed (a check that
            # refused the batch, a rating that cannot take a date): find it by writing
            # each on its own, so that it alone fails.
            log.warning(
                "group commit %s: a batch of %d failed before commit (%s); writing each on "
                "its own",
                self.name, len(batch), type(exc).__name__,
            )
            for one in batch:
                self._run([one])
            return
        GROUP_COMMIT_SIZE.labels(self.name).observe(len(batch))
        for (_, fut), result in zip(batch, results, strict=True):
            _settle(fut, result)


def _settle(fut: Future[Result], outcome: object) -> None:
    if isinstance(outcome, BaseException):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)  # type: ignore[arg-type]
