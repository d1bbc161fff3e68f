"""The merchant lookup (``GET /api/merchants/{uscc}``), served from built views that
are never stale.

Building a merchant's public view takes six queries; the disclosure site and every
QR code scan ask for it, far more often than it changes. So the built view is kept
in ``merchant_view`` (shared by every worker, kept across restarts) with the
*version stamp* it was built at, and a lookup is one query that returns the kept
view together with the current stamp:

- the merchant's newest log record (``log_leaf.subject``): registration,
  verification, pledges made, withdrawn or renewed, demonstration awards and
  their withdrawal, supervision outcomes are all records about the merchant;
- its newest wallet binding (the one part of the view that is not a record);
- the dates the view holds for: from the day it was built until the current
  pledge or award expires (pledges and awards never start in the future);
- the anchored tree size, which matters only while a record the view shows is
  pending: it says when that record became anchored.

If the stamp still matches, the kept bytes are the answer; otherwise the view is
rebuilt and kept. The stamp is read before the view is built, so a write that
commits in between at worst keeps a newer view under an older stamp, which the
next lookup rebuilds. A write acknowledged by one worker is therefore visible at
once through every worker. One worker at a time also rebuilds stale views in the
background (:class:`ViewWarmer`), a batch of 500 in a handful of queries.

The kept bytes give the ``ETag``: a client that sends ``If-None-Match`` gets
``304 Not Modified`` without the body.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Table, bindparam, func, literal, or_, select
from sqlmodel import Session

from backend.background import BackgroundThread
from backend.config import Settings
from backend.context import AppContext
from backend.db import Database, upsert
from backend.ledger import log as ledger_log
from backend.ledger import projection
from backend.ledger.status import anchored_size_subquery
from backend.merchants import queries as merchant_queries
from backend.merchants.service import MerchantNotFound, parse_uscc
from backend.shops import service
from backend.shops.models import MerchantPublic, MerchantView
from backend.timeutil import today_shanghai, utcnow

log = logging.getLogger("honest_metering.views")

VIEW: Table = MerchantView.__table__  # type: ignore[attr-defined]
WARM_LOCK_KEY = 7340003  # PostgreSQL advisory lock: one warmer at a time
BATCH = 500

Stamp = tuple[int, int | None]
"""(newest leaf index about the merchant, newest wallet binding id)."""

# The owners' scalar subqueries that make a stamp (read in the lookup's one query).
ANCHORED_SIZE = anchored_size_subquery()
last_leaf_of = ledger_log.last_leaf_of
last_wallet_of = merchant_queries.last_wallet_of


_ONE = select(literal(1).label("one")).subquery()
LOOKUP = select(
    VIEW.c.body,
    VIEW.c.last_leaf,
    VIEW.c.last_wallet,
    VIEW.c.built_on,
    VIEW.c.valid_until,
    VIEW.c.pending_from,
    last_leaf_of(bindparam("uscc")),
    last_wallet_of(bindparam("uscc")),
    ANCHORED_SIZE,
).select_from(_ONE.outerjoin(VIEW, VIEW.c.uscc == bindparam("uscc")))


@dataclass(frozen=True)
class View:
    body: bytes

    @property
    def etag(self) -> str:
        return '"' + hashlib.blake2b(self.body, digest_size=16).hexdigest() + '"'


def lookup(db: Database, settings: Settings, uscc: str, *, today: date) -> View:
    """The public view of merchant ``uscc`` as JSON: the kept one while its stamp holds."""
    code = parse_uscc(uscc)
    (row,) = db.quick_read(LOOKUP, {"uscc": code})
    return _kept(row, code, today) or _rebuild(db, settings, code, row, today)


def public(db: Database, settings: Settings, uscc: str, *, today: date) -> MerchantPublic:
    """:func:`lookup` as the model, for pages that show the view."""
    return MerchantPublic.model_validate_json(lookup(db, settings, uscc, today=today).body)


async def lookup_async(db: Database, settings: Settings, uscc: str, *, today: date) -> View:
    """:func:`lookup` awaited on the event loop: the kept view costs one read there;
    only a rebuild goes to the thread pool."""
    code = parse_uscc(uscc)
    (row,) = await db.quick_read_async(LOOKUP, {"uscc": code})
    kept = _kept(row, code, today)
    if kept is not None:
        return kept
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_rebuild, db, settings, code, row, today)


def _kept(row: Any, code: str, today: date) -> View | None:
    """The kept view in a :data:`LOOKUP` row if its stamp still holds, else ``None``."""
    body, leaf, wallet, built_on, valid_until, pending_from, last_leaf, last_wallet, anchored = (
        tuple(row)
    )
    if last_leaf is None:
        raise MerchantNotFound(f"no merchant with credit code {code}")
    if (
        body is not None
        and (leaf, wallet) == (last_leaf, last_wallet)
        and built_on <= today
        and (valid_until is None or today < valid_until)
        and (pending_from is None or anchored <= pending_from)
    ):
        return View(body.encode())
    return None


def _rebuild(db: Database, settings: Settings, code: str, row: Any, today: date) -> View:
    """Build and keep the view under the stamp read in ``row`` (before building)."""
    stamp = (row[6], row[7])
    built = build(db, settings, {code: stamp}, today=today)
    if code not in built:  # deleted in between: merchants are never deleted, but be exact
        raise MerchantNotFound(f"no merchant with credit code {code}")
    return built[code]


def stamps(session: Session, usccs: Iterable[str]) -> dict[str, Stamp]:
    """The current stamps of the merchants ``usccs`` that have records (the same
    subqueries as a lookup's, for a batch)."""
    wanted = sorted(set(usccs))
    out: dict[str, Stamp] = {}
    registered = merchant_queries.registered_usccs()
    uscc = registered.selected_columns.uscc
    for i in range(0, len(wanted), BATCH):
        rows = session.execute(
            registered.add_columns(last_leaf_of(uscc), last_wallet_of(uscc)).where(
                uscc.in_(wanted[i : i + BATCH])
            )
        )
        for uscc, leaf, wallet in rows:
            if leaf is not None:
                out[uscc] = (int(leaf), wallet)
    return out


def build(
    db: Database, settings: Settings, at: Mapping[str, Stamp], *, today: date
) -> dict[str, View]:
    """Build the views of the merchants in ``at`` and keep them under the stamps given,
    which must have been read before this call."""
    with db.read() as session:
        publics = service.public_views(session, at, settings=settings, today=today)
    now = utcnow()
    views: dict[str, View] = {}
    rows = []
    for uscc, public in publics.items():
        body = public.model_dump_json()
        views[uscc] = View(body.encode())
        leaf, wallet = at[uscc]
        rows.append(
            {
                "uscc": uscc,
                "body": body,
                "last_leaf": leaf,
                "last_wallet": wallet,
                "built_on": today,
                "valid_until": _valid_until(public),
                "pending_from": _pending_from(public.model_dump(mode="json")),
                "built_at": now,
            }
        )
    if rows:
        with db.session() as session:
            upsert(session, VIEW, rows, key=["uscc"], update=[c for c in rows[0] if c != "uscc"])
            session.commit()
    return views


def _valid_until(public: MerchantPublic) -> date | None:
    """The first day the view no longer holds: its current pledge or award has expired."""
    ends = [
        x.valid_until for x in (public.current_pledge, public.demonstration) if x is not None
    ]
    return min(ends) if ends else None


def _pending_from(node: Any) -> int | None:
    """The lowest leaf index of a record the view shows as pending, anywhere in it."""
    found: list[int] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            status = item.get("anchor_status")
            if isinstance(status, dict) and status.get("status") == "pending":
                found.append(int(item["leaf_index"]))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return min(found) if found else None


def stale(session: Session, *, today: date) -> list[str]:
    """Merchants whose kept view is missing or no longer holds."""
    registered = merchant_queries.registered_usccs()
    uscc = registered.selected_columns.uscc
    v = VIEW.c
    query = (
        registered.outerjoin(VIEW, v.uscc == uscc)
        .where(
            or_(
                v.uscc.is_(None),
                v.built_on > today,
                v.valid_until <= today,
                v.pending_from < ANCHORED_SIZE,
                v.last_leaf != last_leaf_of(uscc),
                func.coalesce(v.last_wallet, 0) != func.coalesce(last_wallet_of(uscc), 0),
            )
        )
        .order_by(uscc)
    )
    return [u for (u,) in session.execute(query)]


def warm(db: Database, settings: Settings, *, today: date,
         stop: threading.Event | None = None) -> int:
    """Rebuild every stale view, a batch at a time; returns how many were rebuilt."""
    with db.read() as session:
        todo = stale(session, today=today)
    done = 0
    for i in range(0, len(todo), BATCH):
        if stop is not None and stop.is_set():
            break
        with db.read() as session:
            current = stamps(session, todo[i : i + BATCH])
        done += len(build(db, settings, current, today=today))
    return done


class ViewWarmer(BackgroundThread):
    """Rebuilds stale views at start and every ``view_warm_interval_s``; on PostgreSQL
    only the worker holding an advisory lock does, the others skip the round."""

    thread_name = "view-warmer"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.last_built: int | None = None

    def round(self) -> int | None:
        """One round; ``None`` when another worker holds the lock."""
        db, settings = self.ctx.db, self.ctx.settings
        if db.is_sqlite:
            return warm(db, settings, today=today_shanghai(), stop=self._stop)
        with db.engine.connect() as conn:
            if not conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({WARM_LOCK_KEY})").scalar():
                conn.rollback()
                return None
            conn.commit()
            try:
                return warm(db, settings, today=today_shanghai(), stop=self._stop)
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({WARM_LOCK_KEY})")
                conn.commit()

    def run(self) -> None:
        interval = self.ctx.settings.view_warm_interval_s
        while not self.stopping:
            try:
                self.last_built = self.round()
                if self.last_built:
                    log.info("rebuilt %d merchant view(s)", self.last_built)
            except Exception:  # keep the worker alive; the next round retries
                log.exception("rebuilding merchant views failed")
            self.pause(interval)


def install(app: FastAPI) -> None:
    """Warm the views in the background unless ``HM_VIEW_WARM_INTERVAL_S=0``."""

    def start(ctx: AppContext) -> None:
        if ctx.settings.view_warm_interval_s > 0:
            app.state.view_warmer = ViewWarmer(ctx).start()

    def stop(ctx: AppContext) -> None:
        warmer = getattr(app.state, "view_warmer", None)
        if warmer is not None:
            warmer.stop()
            app.state.view_warmer = None

    app.state.view_warmer = None
    app.state.startup_hooks.append(start)
    app.state.shutdown_hooks.append(stop)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison of ``If-None-Match`` against our ETag."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


# --- audit -------------------------------------------------------------------------------


def _audit_views(session: Session, ctx: projection.CheckContext) -> list[projection.Difference]:
    """Every kept view whose stamp still holds (so a lookup would serve it as it is)
    against a view built afresh from the tables (which audit checks against the log)."""
    stale_now = set(stale(session, today=ctx.today))
    kept = {
        u: (body, leaf, wallet)
        for u, body, leaf, wallet in session.execute(
            select(VIEW.c.uscc, VIEW.c.body, VIEW.c.last_leaf, VIEW.c.last_wallet)
        )
        if u not in stale_now
    }
    found: list[projection.Difference] = []
    codes = sorted(kept)
    for i in range(0, len(codes), BATCH):
        part = codes[i : i + BATCH]
        at = {u: (int(kept[u][1]), kept[u][2]) for u in part}
        fresh = service.public_views(session, at, settings=ctx.settings, today=ctx.today)
        for u in part:
            want = fresh.get(u)
            if want is None:
                found.append(projection.Difference("merchant_view", (u,), "inserted", None))
            elif _comparable(want.model_dump_json()) != _comparable(kept[u][0]):
                found.append(projection.Difference(
                    "merchant_view", (u,), "altered", None, ("body",),
                    detail="the kept view differs from one built from the tables",
                ))
    return found


def _comparable(body: str) -> Any:
    """A view's content without what depends on the serving process's settings (the
    address its links name), which a command-line audit does not share."""
    data = json.loads(body)
    data.pop("public_url", None)
    return data


def _rebuild_views(session: Session, ctx: projection.CheckContext) -> int:
    """Kept views are caches: drop them all; lookups and the warmer build them again."""
    return int(session.connection().execute(VIEW.delete()).rowcount or 0)


VIEWS_CHECK = projection.Check("merchant_view", _audit_views, _rebuild_views)
