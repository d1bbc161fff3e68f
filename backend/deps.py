"""FastAPI dependency aliases, so route signatures stay short and readable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from backend.context import AppContext
from backend.db import Database


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def get_db(ctx: Annotated[AppContext, Depends(get_ctx)]) -> Database:
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
