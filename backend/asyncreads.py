"""One-statement reads awaited on the event loop: ``Database.quick_read_async``.

The hottest requests (a merchant lookup, the account check behind every
authenticated request) each need one short read. Run through the thread pool,
such a read costs two thread hops and, under load, a wait for the GIL behind
whatever else runs; that was most of a lookup's cost. On PostgreSQL the read is
sent instead on one of psycopg's own asyncio connections: autocommit, prepared,
one round trip, and the event loop serves other requests meanwhile.

Semantics are those of ``Database.quick_read``: no transaction, no ping; a
pooled connection found dead (the database restarted, the connection was
killed) is dropped and the statement is run once more on a new one. A lost or
refused connection is raised as SQLAlchemy's ``OperationalError``, so the app
answers 503 ``DatabaseUnavailable`` exactly as for a synchronous read.

This module must never hand a connection back to the pool after an error or a
cancellation: its state is unknown, and the next reader would inherit it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import Engine, Executable
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError


def libpq_conninfo(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (any driver suffix) as a libpq connection URI."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


SHAPES_KEPT = 1000
"""Compiled statements kept per pool for statements built per request (search)."""


class AsyncReads:
    """A small pool of autocommit asyncio connections, for the event loop it runs on.

    A pool belongs to one event loop: a server worker has one; a test client may
    start another, and then the connections of the old loop are closed (without
    awaiting: that loop may be gone) and new ones are made on the new loop.
    """

    def __init__(self, engine: Engine, *, size: int = 10) -> None:
        self._engine = engine
        self._conninfo = libpq_conninfo(engine.url.render_as_string(hide_password=False))
        self._size = size
        self._compiled: dict[Executable, tuple[str, dict[str, Any]]] = {}
        self._shapes: dict[Any, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[psycopg.AsyncConnection[Any]] = []

    def _sql(self, statement: Executable, keep: bool = True) -> tuple[str, dict[str, Any]]:
        if not keep:
            return self._sql_by_shape(statement)
        found = self._compiled.get(statement)
        if found is None:
            compiled = statement.compile(dialect=self._engine.dialect)  # type: ignore[attr-defined]
            # Literal values in the statement (a coalesce default, a constant) are
            # bound parameters with their values kept here.
            found = (str(compiled), dict(compiled.params))
            if keep:
                self._compiled[statement] = found
        return found

    def _sql_by_shape(self, statement: Executable) -> tuple[str, dict[str, Any]]:
        """A statement built for one request: compiled once per shape (SQLAlchemy's
        cache key, which leaves out the values), its values taken from this one."""
        key = statement._generate_cache_key()  # type: ignore[attr-defined]
        if key is None:  # not cacheable: compile this once
            compiled = statement.compile(dialect=self._engine.dialect)  # type: ignore[attr-defined]
            return str(compiled), dict(compiled.params)
        entry = self._shapes.get(key.key)
        if entry is None:
            entry = statement.compile(  # type: ignore[attr-defined]
                dialect=self._engine.dialect, cache_key=key
            )
            if len(self._shapes) >= SHAPES_KEPT:
                self._shapes.pop(next(iter(self._shapes)))
            self._shapes[key.key] = entry
        params = entry.construct_params(extracted_parameters=key.bindparams)
        return entry.string, dict(params)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        if loop is not self._loop or self._slots is None:
            self.close()
            self._loop, self._slots = loop, asyncio.Semaphore(self._size)
        return self._slots

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        try:
            return await psycopg.AsyncConnection.connect(
                self._conninfo,
                autocommit=True,
                prepare_threshold=0,
                row_factory=namedtuple_row,
                application_name=f"honest-metering pid {os.getpid()}",
            )
        except psycopg.OperationalError as exc:
            raise OperationalError("connect", {}, exc, connection_invalidated=True) from None

    async def read(
        self, statement: Executable, params: dict[str, Any], *, keep_compiled: bool = True
    ) -> Sequence[Any]:
        """The rows of ``statement`` (each a named tuple, by column name and position).
        ``keep_compiled=False`` for a statement built for one request (its SQL is not
        remembered; the database still keeps the plans of recent texts)."""
        sql, defaults = self._sql(statement, keep_compiled)
        values = {**defaults, **params}
        loop = asyncio.get_running_loop()
        async with self._bind(loop):
            for attempt in (1, 2):
                pooled = bool(self._idle)
                conn = self._idle.pop() if pooled else await self._connect()
                try:
                    cur = await conn.execute(sql, values)
                    rows = await cur.fetchall()
                except psycopg.OperationalError as exc:
                    self._drop(conn)
                    if pooled and attempt == 1:
                        continue  # it died while idle: once more on a new connection
                    raise OperationalError(sql, values, exc, connection_invalidated=True) from None
                except psycopg.Error as exc:
                    self._drop(conn)
                    raise DBAPIError(sql, values, exc) from None
                except BaseException:
                    self._drop(conn)  # cancelled mid-statement: the connection is in flux
                    raise
                if self._loop is loop:
                    self._idle.append(conn)
                else:  # the pool moved to another loop meanwhile
                    self._drop(conn)
                return rows
        raise AssertionError("unreachable")

    @staticmethod
    def _drop(conn: psycopg.AsyncConnection[Any]) -> None:
        # Closes the socket at once; awaiting conn.close() could itself be cancelled.
        with contextlib.suppress(Exception):
            conn.pgconn.finish()

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            self._drop(conn)
        self._loop = self._slots = None
