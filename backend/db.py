"""Database engine, sessions and migrations.

SQLite (the default, one file in the data dir) and PostgreSQL (production) are
both first-class. Write transactions on SQLite start with ``BEGIN IMMEDIATE``
so two writers never deadlock upgrading a read lock; readers use a separate
engine and never block writers (WAL). Within a process, SQLite writers queue on
one lock (:class:`SqliteWriteLock`) before ``BEGIN IMMEDIATE``, rather than
polling SQLite's busy handler, which lets a late writer overtake and starves
others until they fail; a writer that cannot have it within
``SQLITE_WRITE_WAIT_S`` gets 503 ``DatabaseBusy`` with ``Retry-After``. Schema
changes go through Alembic (``backend/migrations``); nothing here creates
tables behind its back.

A write service function is one unit of work: it commits before it returns,
so a response is never sent for a transaction that did not commit.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, Executable, Row, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, create_engine

from backend.asyncreads import AsyncReads
from backend.errors import ServiceUnavailable
from backend.privatefiles import private_file

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATE_LOCK_KEY = 7340000  # 7340001: contract deployment, 7340002: the anchoring lock
# Integer keys are PostgreSQL INTEGER (32-bit). A larger number names no row, and sending
# one to the database is an error there (and on SQLite past 2**63), so inputs that become
# keys or offsets are bounded by this when they are parsed.
INT_KEY_MAX = 2**31 - 1
# How long a SQLite writer waits for its turn: for this process's lock, then (another
# process writing) in SQLite's busy handler. Past it: 503 DatabaseBusy, Retry-After.
SQLITE_WRITE_WAIT_S = 15.0
SQLITE_RETRY_AFTER_S = 2
_HOLDS_WRITE_LOCK = "hm_holds_sqlite_write_lock"


class DatabaseBusy(ServiceUnavailable):
    """Writes to the SQLite database are queued longer than ``SQLITE_WRITE_WAIT_S``."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retry_after_s=SQLITE_RETRY_AFTER_S)
        self.headers = {"Retry-After": str(SQLITE_RETRY_AFTER_S)}


class SqliteWriteLock:
    """One process's turn to write to a SQLite file: held from ``BEGIN IMMEDIATE`` to
    ``COMMIT`` or ``ROLLBACK``. Waiting threads sleep on it and are woken in turn when it
    is released, instead of each polling SQLite (whose busy handler sleeps up to 100 ms
    between tries, so a newcomer often wins and an old waiter times out)."""

    def __init__(self, wait_s: float = SQLITE_WRITE_WAIT_S) -> None:
        self.wait_s = wait_s
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self._lock.acquire(timeout=self.wait_s):
            raise DatabaseBusy(
                f"the database is busy with other writes (waited {self.wait_s:.0f} s); "
                f"retry in {SQLITE_RETRY_AFTER_S} s"
            )

    def release(self) -> None:
        self._lock.release()


_WRITE_LOCKS: dict[str, SqliteWriteLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def sqlite_write_lock(url: str) -> SqliteWriteLock:
    """The process's write lock of one SQLite file (shared by every engine on it)."""
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(url, SqliteWriteLock())


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a transaction reported committed survives a power cut, not just a crash.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    # Within the process writers queue on SqliteWriteLock; this covers other processes.
    cur.execute(f"PRAGMA busy_timeout={int(SQLITE_WRITE_WAIT_S * 1000)}")
    cur.close()


def _make_engine(
    url: str, *, immediate: bool, pre_ping: bool = True, autocommit: bool = False
) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            private_file(Path(path))  # mode 0600 in a 0700 dir (contacts, hashes)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_WRITE_WAIT_S},
            pool_size=8,
            hide_parameters=True,  # errors (and logged tracebacks) never show the values
        )
        event.listen(engine, "connect", _sqlite_pragmas)

        # Take transaction control away from pysqlite so BEGIN is ours.
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        if not immediate:

            @event.listens_for(engine, "begin")
            def _begin(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN")

            return engine

        lock = sqlite_write_lock(url)

        @event.listens_for(engine, "begin")
        def _begin_write(conn: Any) -> None:
            lock.acquire()
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                lock.release()
                raise
            conn.info[_HOLDS_WRITE_LOCK] = True

        # Released as the transaction ends (just before COMMIT or ROLLBACK runs: the next
        # writer's BEGIN IMMEDIATE waits the moment the commit takes in SQLite's handler).
        @event.listens_for(engine, "commit")
        @event.listens_for(engine, "rollback")
        def _end_write(conn: Any) -> None:
            if conn.info.pop(_HOLDS_WRITE_LOCK, False):
                lock.release()

        # A connection going back to the pool never keeps the lock (belt and braces).
        @event.listens_for(engine, "checkin")
        def _checkin(_dbapi_conn: Any, record: Any) -> None:
            if record is not None and record.info.pop(_HOLDS_WRITE_LOCK, False):
                lock.release()

        return engine
    return create_engine(
        url,
        pool_pre_ping=pre_ping,
        isolation_level="AUTOCOMMIT" if autocommit else "READ COMMITTED",
        pool_size=10,
        max_overflow=10,
        pool_recycle=1800,
        hide_parameters=True,  # errors (and logged tracebacks) never show the values
        # Names the process in pg_stat_activity, e.g. to see which worker holds the
        # anchoring lock (docs/operations.md).
        connect_args={"application_name": f"honest-metering pid {os.getpid()}"},
    )


_T = TypeVar("_T")
IN_CHUNK = 500


def in_chunks(values: Iterable[_T], size: int = IN_CHUNK) -> Iterator[list[_T]]:
    """``values`` de-duplicated and sorted, in lists of at most ``size``: each the values
    of one ``IN (...)`` (a bounded statement on every database)."""
    ordered = sorted(set(values))  # type: ignore[type-var]
    for i in range(0, len(ordered), size):
        yield ordered[i : i + size]


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: Sequence[str],
    update: Sequence[str],
) -> None:
    """Insert ``rows``, or update the columns ``update`` of those whose ``key`` exists
    (``INSERT ... ON CONFLICT DO UPDATE``, on PostgreSQL and SQLite alike)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    ins = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    stmt = ins.on_conflict_do_update(
        index_elements=list(key), set_={c: getattr(ins.excluded, c) for c in update}
    )
    for i in range(0, len(rows), 5000):
        session.execute(stmt, list(rows[i : i + 5000]))


@contextmanager
def _reading(engine: Engine) -> Iterator[Session]:
    """A session that only reads: rolled back and closed at the end, whatever happened."""
    s = Session(engine, expire_on_commit=False)
    try:
        yield s
    finally:
        _end_quietly(s.rollback)
        _end_quietly(s.close)


def _end_quietly(end: Callable[[], None]) -> None:
    """Roll back or close a session whose connection may have died under it (killed,
    database restarted): the server already ended that transaction, and raising here,
    often after a response has started, would only turn a finished request into an
    error. The dead connection is invalidated, never reused."""
    try:
        end()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise


class Database:
    """The service's database: a write engine and a read engine on one URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = _make_engine(url, immediate=True)
        self.read_engine = _make_engine(url, immediate=False) if self.is_sqlite else self.engine
        # For quick_read on PostgreSQL: autocommit connections, not pinged at checkout.
        self.quick_engine = (
            self.read_engine
            if self.is_sqlite
            else _make_engine(url, immediate=False, pre_ping=False, autocommit=True)
        )
        self.async_reads = None if self.is_sqlite else AsyncReads(self.quick_engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write session; the caller commits. Rolled back on any exception."""
        s = Session(self.engine, expire_on_commit=False)
        try:
            yield s
        except BaseException:
            _end_quietly(s.rollback)
            raise
        finally:
            _end_quietly(s.close)

    @contextmanager
    def quick_session(self) -> Iterator[Session]:
        """A read-only session for a few statements that need no common snapshot (a
        search page and its flags): on PostgreSQL on the autocommit connections of
        :meth:`quick_read`, without the ping, BEGIN and ROLLBACK round trips."""
        with _reading(self.quick_engine) as s:
            yield s

    def quick_read(self, statement: Executable, params: dict[str, Any]) -> Sequence[Row[Any]]:
        """The rows of one read-only statement, for the hottest lookups.

        On PostgreSQL it runs outside a transaction on a connection that is not pinged
        first: one round trip instead of four (ping, BEGIN, statement, ROLLBACK). A
        dead connection (the database restarted) is then noticed by the statement
        itself, and the statement is run once more on a new connection.
        """
        for attempt in (1, 2):
            try:
                with self.quick_engine.connect() as conn:
                    return conn.execute(statement, params).all()
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    async def quick_read_async(
        self, statement: Executable, params: dict[str, Any], *, keep_compiled: bool = True
    ) -> Sequence[Any]:
        """:meth:`quick_read` for async code: on PostgreSQL awaited on the event loop
        (``backend/asyncreads.py``), on SQLite in the thread pool. Rows are tuples with
        the columns also as attributes. ``keep_compiled=False`` for a statement built
        for one request (a module-level statement's SQL is compiled once and kept)."""
        if self.async_reads is None:
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(self.quick_read, statement, params)
        return await self.async_reads.read(statement, params, keep_compiled=keep_compiled)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with _reading(self.read_engine) as s:
            yield s

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        from alembic import command

        with self.engine.connect() as conn:
            if not self.is_sqlite:
                # Workers starting together migrate one at a time; the others then find
                # the schema current. (On SQLite, BEGIN IMMEDIATE serialises them.)
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK_KEY})")
            cfg = alembic_config(conn)
            command.upgrade(cfg, "heads")
            conn.commit()

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
        if self.quick_engine is not self.read_engine:
            self.quick_engine.dispose()
        if self.async_reads is not None:
            self.async_reads.close()


def alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg
