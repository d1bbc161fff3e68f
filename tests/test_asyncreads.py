"""``Database.quick_read_async``: one-statement reads awaited on the event loop
(backend/asyncreads.py), on real PostgreSQL, and through the thread pool on SQLite."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import bindparam, func, literal, literal_column, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.sql import Select

from backend.asyncreads import libpq_conninfo
from backend.db import Database
from tests.conftest import make_settings

ECHO = select(
    bindparam("x").label("x"),
    literal(7).label("seven"),
    func.current_setting("application_name").label("app"),
)
SLEEP = select(func.pg_sleep(bindparam("s")))


def _own_backends(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
            (f"honest-metering pid {os.getpid()}",),
        ).fetchall()
    return [r[0] for r in rows]


def _terminate(url: str, pids: list[int]) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Database]:
    db = Database(postgres_url)
    try:
        yield db
    finally:
        db.dispose()


def test_conninfo_drops_the_driver_suffix() -> None:
    assert libpq_conninfo("postgresql+psycopg://u:p@h:5433/d?sslmode=require") == (
        "postgresql://u:p@h:5433/d?sslmode=require"
    )


@pytest.mark.postgres
class TestOnPostgres:
    def test_rows_by_name_and_position_with_literals_bound(self, pg: Database) -> None:
        async def go() -> None:
            (row,) = await pg.quick_read_async(ECHO, {"x": "hello"})
            assert (row.x, row.seven) == ("hello", 7)
            assert tuple(row)[:2] == ("hello", 7)
            assert row.app == f"honest-metering pid {os.getpid()}"

        asyncio.run(go())

    def test_statements_built_per_request_carry_their_own_values(self, pg: Database) -> None:
        """Statements of one shape (search builds one per request) share a compiled SQL
        text, but each is answered with its own values, literals included."""

        def built(word: str, n: int) -> Select[str, int]:
            return select(literal(word).label("word"), (literal(n) + 1).label("n"))

        async def go() -> None:
            for word, n in (("one", 1), ("two", 2), ("three", 3)):
                (row,) = await pg.quick_read_async(built(word, n), {}, keep_compiled=False)
                assert (row.word, row.n) == (word, n + 1)
            reads = pg.async_reads
            assert reads is not None
            assert len(reads._shapes) == 1 and not reads._compiled

        asyncio.run(go())

    def test_one_connection_serves_reads_in_turn(self, pg: Database, postgres_url: str) -> None:
        async def go() -> None:
            for i in range(20):
                (row,) = await pg.quick_read_async(ECHO, {"x": str(i)})
                assert row.x == str(i)
            assert len(_own_backends(postgres_url)) == 1

        asyncio.run(go())

    def test_concurrent_reads_are_bounded_by_the_pool(
        self, pg: Database, postgres_url: str
    ) -> None:
        async def go() -> None:
            rows = await asyncio.gather(
                *(pg.quick_read_async(ECHO, {"x": str(i)}) for i in range(40))
            )
            assert [r[0].x for r in rows] == [str(i) for i in range(40)]
            assert 1 <= len(_own_backends(postgres_url)) <= 10

        asyncio.run(go())

    def test_a_connection_killed_while_idle_is_replaced(
        self, pg: Database, postgres_url: str
    ) -> None:
        async def go() -> None:
            await pg.quick_read_async(ECHO, {"x": "a"})
            _terminate(postgres_url, _own_backends(postgres_url))
            (row,) = await pg.quick_read_async(ECHO, {"x": "b"})  # retried on a new one
            assert row.x == "b"

        asyncio.run(go())

    def test_a_cancelled_read_never_returns_its_connection(
        self, pg: Database, postgres_url: str
    ) -> None:
        async def go() -> None:
            task = asyncio.create_task(pg.quick_read_async(SLEEP, {"s": 30}))
            await asyncio.sleep(0.5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert pg.async_reads is not None and pg.async_reads._idle == []
            (row,) = await pg.quick_read_async(ECHO, {"x": "after"})
            assert row.x == "after"

        asyncio.run(go())

    def test_a_statement_error_is_a_dbapi_error_and_drops_the_connection(
        self, pg: Database
    ) -> None:
        bad = select(literal_column("no_such_column"))

        async def go() -> None:
            with pytest.raises(DBAPIError) as info:
                await pg.quick_read_async(bad, {})
            assert not isinstance(info.value, OperationalError)
            assert pg.async_reads is not None and pg.async_reads._idle == []

        asyncio.run(go())

    def test_each_event_loop_gets_its_own_connections(self, pg: Database) -> None:
        for i in range(3):  # a new loop each time, as a test client may start
            rows = asyncio.run(pg.quick_read_async(ECHO, {"x": str(i)}))
            assert rows[0].x == str(i)


def test_an_unreachable_database_is_an_operational_error() -> None:
    db = Database("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")
    try:
        with pytest.raises(OperationalError) as info:
            asyncio.run(db.quick_read_async(ECHO, {"x": "a"}))
        assert info.value.connection_invalidated
    finally:
        db.dispose()


def test_sqlite_reads_go_through_the_thread_pool(tmp_path: Path) -> None:
    db = Database(make_settings(tmp_path / "data").db_url)
    try:
        assert db.async_reads is None
        q = select(bindparam("x").label("x"), literal(7).label("seven"))  # no current_setting
        (row,) = asyncio.run(db.quick_read_async(q, {"x": "hi"}))
        assert (row.x, row.seven) == ("hi", 7)
    finally:
        db.dispose()
