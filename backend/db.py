"""Database engine, sessions and migrations.

SQLite (the default, one file in the data dir) and PostgreSQL (production) are
both first-class. Write transactions on SQLite start with ``BEGIN IMMEDIATE``
so two writers never deadlock upgrading a read lock; readers use a separate
engine and never block writers (WAL). Schema changes go through Alembic
(``backend/migrations``); nothing here creates tables behind its back.

A write service function is one unit of work: it commits before it returns,
so a response is never sent for a transaction that did not commit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Executable, Row, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, create_engine

from backend.asyncreads import AsyncReads
from backend.privatefiles import private_file

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATE_LOCK_KEY = 7340000  # 7340001: contract deployment, 7340002: the anchoring lock
# Integer keys are PostgreSQL INTEGER (32-bit). A larger number names no row, and sending
# one to the database is an error there (and on SQLite past 2**63), so inputs that become
# keys or offsets are bounded by this when they are parsed.
INT_KEY_MAX = 2**31 - 1


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a transaction reported committed survives a power cut, not just a crash.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
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
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            hide_parameters=True,  # errors (and logged tracebacks) never show the values
        )
        event.listen(engine, "connect", _sqlite_pragmas)

        # Take transaction control away from pysqlite so BEGIN is ours.
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

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
        self, statement: Executable, params: dict[str, Any]
    ) -> Sequence[Any]:
        """:meth:`quick_read` for async code: on PostgreSQL awaited on the event loop
        (``backend/asyncreads.py``), on SQLite in the thread pool. Rows are tuples with
        the columns also as attributes."""
        if self.async_reads is None:
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(self.quick_read, statement, params)
        return await self.async_reads.read(statement, params)

    @contextmanager
    def read(self) -> Iterator[Session]:
        s = Session(self.read_engine, expire_on_commit=False)
        try:
            yield s
        finally:
            _end_quietly(s.rollback)
            _end_quietly(s.close)

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
