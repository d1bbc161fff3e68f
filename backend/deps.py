"""FastAPI dependency aliases, so route signatures stay short and readable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlmodel import Session

from backend.context import AppContext
from backend.db import INT_KEY_MAX, Database


# ``async``, though they never wait: FastAPI runs a plain ``def`` dependency in its
# thread pool, and two thread hops per request cost more than these two lookups.
async def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


async def get_db(ctx: Annotated[AppContext, Depends(get_ctx)]) -> Database:
    return ctx.db


def get_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    """A write session. The service function commits before returning."""
    with db.session() as s:
        yield s


def get_read_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    with db.read() as s:
        yield s


CtxDep = Annotated[AppContext, Depends(get_ctx)]
DbDep = Annotated[Database, Depends(get_db)]
SessionDep = Annotated[Session, Depends(get_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]

# Paging offsets and integer ids in the path: bounded, so no number reaches the database
# outside its integer range (422 instead of a database error).
Offset = Annotated[int, Query(ge=0, le=INT_KEY_MAX)]
IntId = Annotated[int, Path(ge=1, le=INT_KEY_MAX)]
