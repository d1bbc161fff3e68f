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

A cache, never the truth: ``honest-metering audit`` renders every kept page that
would be served now (its ETag current) afresh from the tables and names one that
differs (edited behind the service's back, or kept from data that no longer holds);
``honest-metering rebuild --from-log`` renders every kept page again from the tables
it repairs. Signed-in visitors' pages, which show their own navigation, are never
kept.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, LargeBinary, String, Table, bindparam, literal, select
from sqlmodel import Field, Session, SQLModel

from backend.config import Settings
from backend.db import Database, upsert
from backend.disclosure import service, web
from backend.ledger import projection, trustroot_store
from backend.ledger.trustroot import TrustRoot
from backend.merchants.service import MerchantNotFound, parse_uscc
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


def page_version(settings: Settings, pinned: TrustRoot | None) -> str:
    """What an anonymous shop page depends on besides the merchant's data: the build
    (templates, static files, the ledger endpoint it names) and the trust root it pins.
    Part of the page's ETag, so a new trust root version, or another list of nodes a
    visitor may choose (``HM_VERIFY_RPC_NODES``), changes every page's."""
    nodes = " ".join([web.page_rpc_url(settings), *settings.verify_rpc_nodes])
    return web.site_version(nodes) + web.pinned_fingerprint(pinned)


def page_context(data: Any, today: date, pinned: TrustRoot | None) -> dict[str, Any]:
    return {"title": data.merchant.name, "page": data, "today": today, "pinned": pinned}


def render_fresh(
    session: Session, settings: Settings, uscc: str, *, today: date, pinned: TrustRoot | None
) -> bytes:
    """The anonymous visitor's page of ``uscc`` assembled from the tables in ``session``
    and rendered, as the page route renders it (what a kept page must equal)."""
    data = service.merchant_page(session, settings=settings, uscc=uscc, today=today)
    return web.page_html("merchant.html", settings, page_context(data, today, pinned)).encode()


def _current_etags(
    session: Session, codes: list[str], *, today: date, version: str
) -> dict[str, str]:
    """The ETag each of ``codes`` would be served under now (merchants that exist)."""
    out: dict[str, str] = {}
    for code in codes:
        row = session.execute(select(*STAMP_COLUMNS), {"uscc": code}).one()
        try:
            out[code] = stamp_of(code, tuple(row), today=today, version=version).etag
        except MerchantNotFound:
            continue
    return out


def _audit(session: Session, ctx: projection.CheckContext) -> list[projection.Difference]:
    """Every kept page that would be served now (its ETag is the page's current one)
    against the page rendered afresh from the tables (which audit checks against the
    log): a kept page edited behind the service's back, or kept from data that no longer
    holds under a current stamp, is named. Kept pages under an older ETag are never
    served (the next visit replaces them) and are not compared."""
    settings, today = ctx.settings, ctx.today
    pinned = trustroot_store.latest(settings)
    version = page_version(settings, pinned)
    kept = list(session.execute(select(KEPT.c.uscc, KEPT.c.etag, KEPT.c.body)))
    current = _current_etags(session, [u for u, _, _ in kept], today=today, version=version)
    found: list[projection.Difference] = []
    for uscc, etag, body in kept:
        if current.get(uscc) != etag:
            continue
        fresh = render_fresh(session, settings, uscc, today=today, pinned=pinned)
        try:
            held = html_of(bytes(body))
        except (OSError, EOFError, zlib.error):
            held = b""
        if held != fresh:
            found.append(projection.Difference(
                "kept_page", (uscc,), "altered", None, ("body",),
                detail="the kept page served under the current ETag differs from the page "
                       "rendered afresh from the tables",
            ))
    return found


def _rebuild(session: Session, ctx: projection.CheckContext) -> int:
    """Render again every page that was kept, from the tables the rebuild has just
    repaired (in its transaction), under the ETag it has now: the pages people visit
    need no first visit again."""
    settings, today = ctx.settings, ctx.today
    pinned = trustroot_store.latest(settings)
    version = page_version(settings, pinned)
    codes = [u for (u,) in session.execute(select(KEPT.c.uscc))]
    conn = session.connection()
    conn.execute(KEPT.delete())
    current = _current_etags(session, codes, today=today, version=version)
    now = utcnow()
    rows = [
        {
            "uscc": code,
            "etag": etag,
            "body": gzip.compress(
                render_fresh(session, settings, code, today=today, pinned=pinned),
                compresslevel=6, mtime=0,
            ),
            "built_at": now,
        }
        for code, etag in current.items()
    ]
    if rows:
        conn.execute(KEPT.insert(), rows)
    return len(rows)


PAGES_CHECK = projection.Check("kept_page", _audit, _rebuild)  # type: ignore[arg-type]
