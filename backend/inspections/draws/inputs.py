"""A draw's committed inputs: the snapshot, the inspector directory, the recusal pairs.

The ``draw_snapshot_entry``, ``draw_inspector`` and ``draw_recusal`` rows are in no
record: the ``draw.committed`` record commits to them by their Merkle roots
(``snapshot_root``, ``inspectors_root``, ``recusal_root``), which is what anyone
re-derives from what the API serves (``honest-metering verify --draw``). They are
written once, beside the ``draw.committed`` record, and never changed. So the log
cannot rebuild them; audit (:data:`INPUTS_CHECK`) recomputes each draw's roots from
the rows and names the draw whose rows no longer give the roots its record commits
to (restore those rows from a backup). ``draw_recusal.source`` and
``source_draw_id`` (why a pair is recused) are not part of the root.

This module owns the queries on those three tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import func, insert, select
from sqlmodel import Session, col

from backend.inspections import selection
from backend.inspections.models import DrawInspector, DrawRecusal, DrawSnapshotEntry
from backend.inspections.records import COMMITTED
from backend.ledger import log, projection

_INSERT_CHUNK = 5000


def insert_inputs(
    session: Session,
    *,
    draw_id: str,
    entries: Iterable[selection.SnapshotEntry],
    inspectors: Iterable[selection.InspectorEntry],
    recusals: Iterable[Mapping[str, Any]],
) -> None:
    """Keep what the ``draw.committed`` record ``draw_id`` committed to (in bulk)."""
    _bulk_insert(session, DrawSnapshotEntry, (
        {"draw_id": draw_id, "uscc": e.uscc, "tier": e.tier, "region_code": e.region_code,
         "sector": e.sector}
        for e in entries
    ))
    _bulk_insert(session, DrawInspector, (
        {"draw_id": draw_id, "inspector_id": i.id, "unit": i.unit, "region_code": i.region_code}
        for i in inspectors
    ))
    _bulk_insert(session, DrawRecusal, ({"draw_id": draw_id, **r} for r in recusals))


def _bulk_insert(session: Session, model: Any, rows: Iterable[dict[str, Any]]) -> None:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= _INSERT_CHUNK:
            session.execute(insert(model), batch)
            batch = []
    if batch:
        session.execute(insert(model), batch)


def committed_inputs(
    session: Session, draw_id: str
) -> tuple[list[selection.SnapshotEntry], list[selection.InspectorEntry], set[tuple[str, str]]]:
    """The snapshot, directory and recusal pairs (as (inspector_id, uscc)) a draw committed to."""
    entries = [
        selection.SnapshotEntry(u, t, r, sec)
        for u, t, r, sec in session.execute(
            select(
                col(DrawSnapshotEntry.uscc),
                col(DrawSnapshotEntry.tier),
                col(DrawSnapshotEntry.region_code),
                col(DrawSnapshotEntry.sector),
            ).where(col(DrawSnapshotEntry.draw_id) == draw_id)
        )
    ]
    return entries, committed_directory(session, draw_id), recused_pairs(session, draw_id)


def committed_directory(session: Session, draw_id: str) -> list[selection.InspectorEntry]:
    """The inspectors a draw committed to, by id."""
    return [
        selection.InspectorEntry(i, u, r)
        for i, u, r in session.execute(
            select(
                col(DrawInspector.inspector_id),
                col(DrawInspector.unit),
                col(DrawInspector.region_code),
            )
            .where(col(DrawInspector.draw_id) == draw_id)
            .order_by(col(DrawInspector.inspector_id))
        )
    ]


def recused_pairs(session: Session, draw_id: str) -> set[tuple[str, str]]:
    return {
        (i, u)
        for u, i in session.execute(
            select(col(DrawRecusal.uscc), col(DrawRecusal.inspector_id)).where(
                col(DrawRecusal.draw_id) == draw_id
            )
        )
    }


def snapshot_page(
    session: Session,
    draw_id: str,
    *,
    usccs: list[str] | None = None,
    tier: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[int, list[tuple[str, str, str, str]]]:
    """One page of a draw's snapshot in USCC order, and how many entries match:
    ``usccs`` (a search's matches) and ``tier`` narrow it."""
    where: list[Any] = [col(DrawSnapshotEntry.draw_id) == draw_id]
    if usccs is not None:
        where.append(col(DrawSnapshotEntry.uscc).in_(usccs))
    if tier:
        where.append(col(DrawSnapshotEntry.tier) == tier)
    total = int(
        session.execute(
            select(func.count()).select_from(DrawSnapshotEntry).where(*where)
        ).scalar_one()
    )
    rows = session.execute(
        select(
            col(DrawSnapshotEntry.uscc),
            col(DrawSnapshotEntry.tier),
            col(DrawSnapshotEntry.region_code),
            col(DrawSnapshotEntry.sector),
        )
        .where(*where)
        .order_by(col(DrawSnapshotEntry.uscc))
        .offset(offset)
        .limit(limit)
    )
    return total, [(u, t, r, sec) for u, t, r, sec in rows]


def recusal_rows(session: Session, draw_id: str) -> list[tuple[str, str, str, str | None]]:
    """(uscc, inspector id, source, source draw id) of a draw's recusal rows."""
    return [
        (u, i, s, d)
        for u, i, s, d in session.execute(
            select(
                col(DrawRecusal.uscc),
                col(DrawRecusal.inspector_id),
                col(DrawRecusal.source),
                col(DrawRecusal.source_draw_id),
            ).where(col(DrawRecusal.draw_id) == draw_id)
        )
    ]


def snapshot_rows(
    db: Any, draw_id: str, *, batch: int = 20_000
) -> Iterator[tuple[str, str, str, str]]:
    """A draw's snapshot entries in USCC order, streamed in batches (own read sessions)."""
    after = ""
    while True:
        with db.read() as s:
            rows = s.execute(
                select(
                    col(DrawSnapshotEntry.uscc),
                    col(DrawSnapshotEntry.tier),
                    col(DrawSnapshotEntry.region_code),
                    col(DrawSnapshotEntry.sector),
                )
                .where(
                    col(DrawSnapshotEntry.draw_id) == draw_id, col(DrawSnapshotEntry.uscc) > after
                )
                .order_by(col(DrawSnapshotEntry.uscc))
                .limit(batch)
            ).all()
        yield from ((u, t, r, sec) for u, t, r, sec in rows)
        if len(rows) < batch:
            return
        after = rows[-1][0]


def snapshot_json(db: Any, *, draw_id: str, body: Mapping[str, Any]) -> Iterator[bytes]:
    """``GET /api/draws/{id}/snapshot`` as JSON chunks (never all 10^6 entries in memory)."""
    head = {
        "draw_id": draw_id,
        "snapshot_root": body["snapshot_root"],
        "snapshot_size": body["snapshot_size"],
    }
    yield json.dumps(head)[:-1].encode() + b', "entries": ['
    sep = ""
    chunk: list[str] = []
    for uscc, tier, region, sector in snapshot_rows(db, draw_id):
        chunk.append(
            sep + json.dumps({"uscc": uscc, "tier": tier, "region_code": region, "sector": sector})
        )
        sep = ","
        if len(chunk) >= 5000:
            yield "".join(chunk).encode()
            chunk = []
    yield ("".join(chunk) + "]}").encode()


# --- audit ---------------------------------------------------------------------------------

NOT_AS_COMMITTED = "not as committed"
_TABLES = {
    "snapshot_root": DrawSnapshotEntry.__tablename__,
    "inspectors_root": DrawInspector.__tablename__,
    "recusal_root": DrawRecusal.__tablename__,
}


def _draw_ids_with_inputs(session: Session) -> dict[str, set[str]]:
    """table name -> the draws it holds rows of."""
    return {
        model.__tablename__: set(session.execute(select(col(model.draw_id)).distinct()).scalars())
        for model in (DrawSnapshotEntry, DrawInspector, DrawRecusal)
    }


def audit_inputs(
    session: Session, ctx: projection.CheckContext
) -> list[projection.Difference]:
    """Each draw's committed inputs against the roots of its ``draw.committed`` record."""
    bodies = log.bodies_of_type(session, COMMITTED)
    found: list[projection.Difference] = []
    for table, draw_ids in _draw_ids_with_inputs(session).items():
        found.extend(
            projection.Difference(
                table, (draw_id,), NOT_AS_COMMITTED, None,
                detail=f"rows of draw {draw_id}, which no draw.committed record names",
            )
            for draw_id in sorted(draw_ids - bodies.keys())
        )
    for n, (draw_id, body) in enumerate(sorted(bodies.items())):
        entries, inspectors, pairs = committed_inputs(session, draw_id)
        for what, computed in (
            ("snapshot_root", selection.snapshot_root(entries)),
            ("inspectors_root", selection.inspectors_root(inspectors)),
            ("recusal_root", selection.recusal_root(pairs, {})),
        ):
            if computed.hex() != body[what]:
                found.append(
                    projection.Difference(
                        _TABLES[what], (draw_id,), NOT_AS_COMMITTED, draw_id,
                        detail=f"the rows of draw {draw_id} give {what} {computed.hex()}, but "
                        f"its record commits to {body[what]} (restore them from a backup)",
                    )
                )
        if ctx.progress is not None:
            ctx.progress("checking draw inputs", n + 1, len(bodies))
    return found


def _rebuild_inputs(session: Session, ctx: projection.CheckContext) -> int:
    return 0  # the log holds only their roots


INPUTS_CHECK = projection.Check("draw_inputs", audit_inputs, _rebuild_inputs, repairs=False)
