"""What a draw commits to: the eligible merchants with their tiers on the draw's day,
and the recusal pairs (declared conflicts, and each merchant's previous inspectors).

Reads only; the committed rows are kept by :mod:`backend.inspections.draws.inputs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from backend.credit import queries as credit_queries
from backend.credit import service as credit
from backend.credit.policy import add_months
from backend.inspections import directory, selection
from backend.inspections.models import Draw, DrawAssignment
from backend.merchants import queries as merchant_queries

_FETCH_CHUNK = 20_000


def build_snapshot(
    session: Session,
    *,
    regions: Sequence[str] | None,
    sectors: Sequence[str],
    today: date,
    versions: Sequence[credit.PolicyVersion],
) -> list[selection.SnapshotEntry]:
    """Verified merchants in scope, each with its credit tier on ``today``.

    The tier is the merchant's maintained rating (``merchant_rating``) when that
    is current; a merchant never rated, or whose rating is due for a change,
    is rated here from its records with the same function and policy (not
    stored: the rating cache has its own owner).
    """
    current_policy = credit.in_force(versions, today).version
    # One statement for 10^6 rows of four short strings each: the verified merchants
    # in scope (merchants' statement), with the tier where it is current (credit's).
    query = credit_queries.with_current_tier(
        merchant_queries.verified_in_scope(
            sectors=sectors, regions=regions, sector_index=not _wide_scope(session, sectors)
        ),
        today=today,
        policy_version=current_policy,
    )
    entries: list[selection.SnapshotEntry] = []
    stale: dict[str, tuple[str, str]] = {}
    entry = selection.SnapshotEntry
    result = session.connection().execute(query)
    try:
        # The DBAPI's plain tuples (four strings need no result processing): building a
        # Row object per merchant would double the time at 10^6 merchants.
        cursor = result.cursor
        while batch := cursor.fetchmany(_FETCH_CHUNK):
            for uscc, region, sector, tier in batch:
                if tier is not None:
                    entries.append(entry(uscc, tier, region, sector))
                else:
                    stale[uscc] = (region, sector)
    finally:
        result.close()
    if stale:
        records = credit.load_records(session, stale)
        for uscc, (region, sector) in stale.items():
            rating, _ = credit.compute(records[uscc], versions, today)
            entries.append(selection.SnapshotEntry(uscc, rating.tier, region, sector))
    return selection.sort_snapshot(entries)


def _wide_scope(session: Session, sectors: Sequence[str]) -> bool:
    """Whether the sectors in scope hold more than a quarter of the merchants (SQLite only)."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    total = merchant_queries.count_registered(session)
    if total < 10_000:
        return False
    return merchant_queries.count_in_sectors(session, sectors) * 4 > total


def recently_checked(
    session: Session,
    entries: Iterable[selection.SnapshotEntry],
    *,
    min_interval_months: Mapping[str, int],
    today: date,
) -> set[str]:
    """The merchants of ``entries`` checked within their tier's minimum interval
    (``docs/draws.md`` §8.4): a revealed draw assigned the merchant, and ``today`` is
    before ``add_months(that draw's planned_end, interval of the merchant's tier)``. Only
    draws revealed by now count (committing holds the reveal lock)."""
    tiers = {e.uscc: e.tier for e in entries if min_interval_months.get(e.tier, 0) > 0}
    if not tiers:
        return set()
    query = (
        select(col(DrawAssignment.uscc), func.max(col(Draw.planned_end)))
        .join(Draw, col(Draw.id) == col(DrawAssignment.draw_id))
        .where(col(Draw.status) == "revealed")
        .group_by(col(DrawAssignment.uscc))
    )
    recent: set[str] = set()
    for uscc, last_end in session.execute(query):
        tier = tiers.get(uscc)
        if tier is None:
            continue
        if today < add_months(_as_date(last_end), min_interval_months[tier]):
            recent.add(uscc)
    return recent


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def previous_assignments(
    session: Session, usccs: Iterable[str] | None = None
) -> dict[str, tuple[str, list[str]]]:
    """For each merchant, (draw id, inspector ids) of its most recent revealed assignment."""
    query = (
        select(
            col(DrawAssignment.uscc), col(DrawAssignment.draw_id), col(DrawAssignment.inspector_ids)
        )
        .join(Draw, col(Draw.id) == col(DrawAssignment.draw_id))
        .where(col(Draw.status) == "revealed")
        .order_by(col(Draw.revealed_at), col(Draw.number))
    )
    wanted = set(usccs) if usccs is not None else None
    out: dict[str, tuple[str, list[str]]] = {}
    for uscc, draw_id, ids in session.execute(query):
        if wanted is None or uscc in wanted:
            out[uscc] = (draw_id, list(ids))
    return out


def recusals(
    session: Session, snapshot_usccs: set[str]
) -> tuple[set[tuple[str, str]], dict[str, set[str]], list[dict[str, Any]]]:
    """Conflicts, previous-draw pairs, and the rows that record where each pair comes from."""
    conflicts = directory.active_conflicts(session)
    previous_src = previous_assignments(session, snapshot_usccs)
    previous = {u: set(ids) for u, (_, ids) in previous_src.items()}
    rows: list[dict[str, Any]] = [
        {"uscc": u, "inspector_id": i, "source": "conflict", "source_draw_id": None}
        for i, u in sorted(conflicts)
    ]
    for u, (draw_id, ids) in sorted(previous_src.items()):
        rows.extend(
            {"uscc": u, "inspector_id": i, "source": "previous", "source_draw_id": draw_id}
            for i in sorted(set(ids))
        )
    return conflicts, previous, rows


