"""Shop pages kept as rendered, under the version stamp they were rendered at.

A shop page costs tens of milliseconds to assemble (its view, rating, history,
records) and several to render; it changes far less often than it is read (every QR
code scan). So the page an anonymous visitor gets is kept in ``kept_page`` (shared by
every worker and host on the database, kept across restarts), gzip-compressed, with
its ``ETag``: the stamp of ``backend/shops/stamps.py``, which changes with any record
about the merchant, its wallet, the anchoring of its records, the credit policy, the
rating's ``next_change_on`` and the day. A request reads the stamp and the kept page
in one query; when the ETag still matches, the kept bytes are the answer, else the
page is assembled, rendered and kept again. The stamp is read before the page is
assembled, so a write committed in between at worst keeps a newer page under an
older stamp, which the next request replaces.

A cache, never the truth: ``honest-metering rebuild --from-log`` drops every kept
page (they are built from the tables it repairs), and pages are kept again as they
are asked for. Signed-in visitors' pages, which show their own navigation, are never
kept.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Column, LargeBinary, String, Table, bindparam, literal, select
from sqlmodel import Field, SQLModel

from backend.db import Database, upsert
from backend.ledger import projection
from backend.merchants.service import parse_uscc
from backend.shops.stamps import STAMP_COLUMNS, stamp_of
from backend.timeutil import utcnow


class KeptPage(SQLModel, table=True):
    """A rendered shop page (gzip) under the ETag it was rendered at (migration 0009)."""

    __tablename__ = "kept_page"

    uscc: str = Field(primary_key=True, max_length=18)
    etag: str = Field(sa_column=Column(String(64), nullable=False))
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    built_at: datetime


KEPT: Table = KeptPage.__table__  # type: ignore[attr-defined]
_ONE = select(literal(1).label("one")).subquery()
LOOKUP = select(*STAMP_COLUMNS, KEPT.c.etag, KEPT.c.body).select_from(
    _ONE.outerjoin(KEPT, KEPT.c.uscc == bindparam("uscc"))
)


@dataclass(frozen=True)
class Page:
    uscc: str
    etag: str
    gzipped: bytes | None
    """The kept page if it is current, else ``None`` (render it and :func:`keep` it)."""


async def lookup(db: Database, uscc: str, *, today: date, version: str) -> Page:
    """The current ETag of merchant ``uscc``'s page, and its kept bytes if they are
    current: one read, awaited on the event loop."""
    code = parse_uscc(uscc)
    (row,) = await db.quick_read_async(LOOKUP, {"uscc": code})
    etag = stamp_of(code, tuple(row)[:-2], today=today, version=version).etag
    kept_etag, body = tuple(row)[-2:]
    return Page(code, etag, bytes(body) if body is not None and kept_etag == etag else None)


def keep(db: Database, uscc: str, etag: str, html: bytes) -> None:
    """Keep a rendered page under the ETag read before it was assembled."""
    row = {
        "uscc": uscc,
        "etag": etag,
        "body": gzip.compress(html, compresslevel=6, mtime=0),
        "built_at": utcnow(),
    }
    with db.session() as session:
        upsert(session, KEPT, [row], key=["uscc"], update=["etag", "body", "built_at"])
        session.commit()


def html_of(gzipped: bytes) -> bytes:
    return gzip.decompress(gzipped)


def _audit(session: object, ctx: projection.CheckContext) -> list[projection.Difference]:
    """Kept pages are rendered from the tables audit checks (and a page's 验证 compares
    it with the log); they are not compared here."""
    return []


def _rebuild(session: object, ctx: projection.CheckContext) -> int:
    """Drop every kept page: they were rendered from tables the rebuild may repair."""
    conn = session.connection()  # type: ignore[attr-defined]
    return int(conn.execute(KEPT.delete()).rowcount or 0)


PAGES_CHECK = projection.Check("kept_page", _audit, _rebuild)
