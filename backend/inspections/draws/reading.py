"""What a draw publishes: its page (:func:`draw_public`), the list of draws, the
committed recusal pairs. The seed only once revealed; never an inspector's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from backend.context import AppContext
from backend.errors import DomainError
from backend.inspections.draws import inputs
from backend.inspections.draws.base import DrawNotFound, load_draw
from backend.inspections.draws.results import current_results
from backend.inspections.models import (
    AssignmentPublic,
    ChainInfo,
    Draw,
    DrawAssignment,
    DrawInspectorPublic,
    DrawPage,
    DrawPublic,
    DrawRecord,
    DrawSummary,
    InspectorRef,
    RecusalList,
    RecusalPublic,
    SpotCheckResult,
)
from backend.inspections.records import PLAN
from backend.ledger import log
from backend.ledger.models import LogLeaf
from backend.ledger.service import ledger_url_for
from backend.ledger.status import anchor_status
from backend.timeutil import today_shanghai


def _draw_record(session: Session, leaf: LogLeaf) -> DrawRecord:
    return DrawRecord(
        type=leaf.record_type,
        record_id=leaf.record_id,
        leaf_index=int(leaf.leaf_index),
        canonical=bytes(leaf.canonical).decode("utf-8"),
        anchor_status=anchor_status(session, int(leaf.leaf_index)),
    )


def _body_of(leaf: LogLeaf | None) -> dict[str, Any] | None:
    if leaf is None:
        return None
    env: dict[str, Any] = log.parse_canonical(bytes(leaf.canonical))
    body: dict[str, Any] = env["body"]
    return body


def _assignments(
    session: Session, row: Draw, *, today: date, units: Mapping[str, str]
) -> list[AssignmentPublic]:
    results = current_results(session, [row.id])[row.id]
    out = []
    for a in session.execute(
        select(DrawAssignment)
        .where(col(DrawAssignment.draw_id) == row.id)
        .order_by(col(DrawAssignment.position))
    ).scalars():
        found = results.get(a.uscc, [])
        overdue = not found and today > a.due_on
        out.append(
            AssignmentPublic(
                uscc=a.uscc,
                tier=a.tier,
                position=a.position,
                inspectors=[InspectorRef(id=i, unit=units.get(i, "")) for i in a.inspector_ids],
                due_on=a.due_on,
                result_status="recorded" if found else ("overdue" if overdue else "pending"),
                overdue=overdue,
                results=[
                    SpotCheckResult(
                        record_id=r.record_id,
                        result=str(r.body.get("result")),
                        checked_on=r.body.get("checked_on"),
                        authority=r.body.get("authority"),
                    )
                    for r in found
                ],
            )
        )
    return out


def draw_public(
    session: Session,
    *,
    ctx: AppContext,
    ref: str | int,
    today: date | None = None,
    staff: bool = False,
) -> DrawPublic:
    """Everything about a draw that may be published (the seed only once revealed)."""
    today = today or today_shanghai()
    row = load_draw(session, ref)
    record_ids = [
        r for r in (row.id, row.revealed_record_id, row.outcome_record_id) if r is not None
    ]
    leaves = log.get_leaves(session, record_ids)
    committed = _body_of(leaves.get(row.id))
    if committed is None:
        raise DrawNotFound(f"the draw.committed record of draw {row.id} is missing from the log")
    revealed = _body_of(leaves.get(row.revealed_record_id or ""))
    outcome_leaf = leaves.get(row.outcome_record_id or "")
    plan = (
        _body_of(outcome_leaf)
        if outcome_leaf is not None and outcome_leaf.record_type == PLAN
        else None
    )
    directory_rows = [
        DrawInspectorPublic(id=i.id, unit=i.unit, region_code=i.region_code)
        for i in inputs.committed_directory(session, row.id)
    ]
    units = {d.id: d.unit for d in directory_rows}
    assignments = _assignments(session, row, today=today, units=units)
    head = None
    if staff:
        ledger = ctx.ledger_if_open()
        if ledger is not None:
            try:
                head = ledger.block_number()
            except DomainError:
                head = None
    return DrawPublic(
        id=row.id,
        number=row.number,
        status=row.status,  # type: ignore[arg-type]
        item=committed["item"],
        regions=committed["scope"]["regions"],
        sectors=committed["scope"]["sectors"],
        inspector_regions=committed["inspector_regions"],
        planned_start=date.fromisoformat(committed["planned_start"]),
        planned_end=date.fromisoformat(committed["planned_end"]),
        results_due=date.fromisoformat(committed["results_due"]),
        rates_bp=committed["rates_bp"],
        per_check=committed["per_check"],
        commitment=committed,
        seed=revealed["seed"] if revealed else None,
        randomness=revealed["randomness"] if revealed else None,
        block_hash=revealed["block_hash"] if revealed else None,
        chain=ChainInfo(
            chain_id=row.chain_id,
            contract_address=row.contract_address,
            ledger_url=ledger_url_for(ctx.settings),
            commit_tx=row.commit_tx,
            commit_block=row.commit_block,
            target_block=row.target_block,
            reveal_tx=row.reveal_tx,
            reveal_block=row.reveal_block,
            head_block=head,
        ),
        records=[_draw_record(session, leaves[r]) for r in record_ids if r in leaves],
        inspectors=directory_rows,
        plan=plan,
        plan_digest=row.plan_digest,
        assignments=assignments,
        failure=row.failure,
        overdue=sum(1 for a in assignments if a.overdue),
        created_at=row.created_at,
    )


def list_draws(
    session: Session,
    *,
    status: str | None = None,
    item_id: int | None = None,
    overdue_only: bool = False,
    limit: int = 20,
    offset: int = 0,
    today: date | None = None,
) -> DrawPage:
    today = today or today_shanghai()
    query = select(Draw)
    if status is not None:
        query = query.where(col(Draw.status) == status)
    if item_id is not None:
        query = query.where(col(Draw.item_id) == item_id)
    if overdue_only:
        # Only revealed draws whose results deadline has passed can have overdue checks.
        query = query.where(col(Draw.status) == "revealed", col(Draw.results_due) < today)
    rows = list(session.execute(query.order_by(col(Draw.number).desc())).scalars())
    ids = [r.id for r in rows]
    counts: dict[str, int] = {}
    for draw_id, n in session.execute(
        select(col(DrawAssignment.draw_id), func.count())
        .where(col(DrawAssignment.draw_id).in_(ids))
        .group_by(col(DrawAssignment.draw_id))
    ):
        counts[draw_id] = int(n)
    results = current_results(session, ids)
    summaries = []
    for r in rows:
        selected = counts.get(r.id) if r.status == "revealed" else None
        recorded = len(results.get(r.id, {})) if r.status == "revealed" else None
        overdue = None
        if selected is not None and recorded is not None:
            overdue = _overdue_count(session, r, results.get(r.id, {}), today)
        if overdue_only and not overdue:
            continue
        body = r.body
        summaries.append(
            DrawSummary(
                id=r.id,
                number=r.number,
                status=r.status,  # type: ignore[arg-type]
                item_id=r.item_id,
                item_title=body["item"]["title"],
                regions=body["scope"]["regions"],
                sectors=body["scope"]["sectors"],
                planned_start=date.fromisoformat(body["planned_start"]),
                planned_end=r.planned_end,
                results_due=r.results_due,
                snapshot_size=body["snapshot_size"],
                selected=selected,
                results_recorded=recorded,
                overdue=overdue,
                created_at=r.created_at,
            )
        )
    return DrawPage(
        total=len(summaries),
        limit=limit,
        offset=offset,
        items=summaries[offset : offset + limit],
    )


def _overdue_count(session: Session, row: Draw, results: Mapping[str, Any], today: date) -> int:
    if today <= row.results_due:
        return 0
    n = 0
    for (uscc,) in session.execute(
        select(col(DrawAssignment.uscc)).where(col(DrawAssignment.draw_id) == row.id)
    ):
        if uscc not in results:
            n += 1
    return n


def recusal_list(session: Session, *, ref: str) -> RecusalList:
    row = load_draw(session, ref)
    grouped: dict[tuple[str, str], RecusalPublic] = {}
    for u, i, source, src_draw in inputs.recusal_rows(session, row.id):
        item = grouped.setdefault((u, i), RecusalPublic(uscc=u, inspector_id=i, sources=[]))
        item.sources = sorted({*item.sources, source})
        if src_draw:
            item.previous_draw = src_draw
    items = [grouped[k] for k in sorted(grouped)]
    return RecusalList(
        draw_id=row.id, recusal_root=row.body["recusal_root"], count=len(items), items=items
    )


