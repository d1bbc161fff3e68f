"""Credit-repair applications and decisions as their tables hold them, for pages.

A page must show what the table says, so that the browser's 验证, which compares
the page with the record from the log, notices a table that no longer matches
its record. This module never reads the log, and never writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlmodel import Session, col

from backend.credit.models import (
    CreditPolicyVersion,
    CreditRepair,
    CreditRepairDecision,
    MerchantRating,
)
from backend.db import in_chunks
from backend.ledger.records import format_time
from backend.timeutil import aware

APPLIED = "credit.repair_applied"
DECIDED = "credit.repair_decided"


def records_as_held(session: Session, wanted: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``record_id`` → the record as its row holds it: ``type``, ``at``, ``body``,
    ``refs``, for ``wanted`` (``record_id`` → the record's type, which picks the
    table). Ids without a row are left out."""
    out: dict[str, dict[str, Any]] = {}
    applied = sorted(rid for rid, t in wanted.items() if t == APPLIED)
    decided = sorted(rid for rid, t in wanted.items() if t == DECIDED)
    if applied:
        for rep in session.execute(
            select(CreditRepair).where(col(CreditRepair.record_id).in_(applied))
        ).scalars():
            out[rep.record_id] = {
                "type": APPLIED,
                "at": format_time(aware(rep.at)),
                "body": {
                    "repair_id": rep.id,
                    "penalty_record": rep.penalty_record_id,
                    "applied_on": rep.applied_on.isoformat(),
                    "statement": rep.statement,
                },
                "refs": [{"rel": "repairs", "record": rep.penalty_record_id}],
            }
    if not decided:
        return out
    for dec, application in session.execute(
        select(CreditRepairDecision, col(CreditRepair.record_id))
        .join(CreditRepair, col(CreditRepair.id) == col(CreditRepairDecision.repair_id))
        .where(col(CreditRepairDecision.record_id).in_(decided))
    ):
        out[dec.record_id] = {
            "type": DECIDED,
            "at": format_time(aware(dec.at)),
            "body": {
                "repair_id": dec.repair_id,
                "decision": dec.decision,
                "decided_on": dec.decided_on.isoformat(),
                "reason": dec.reason,
            },
            "refs": [{"rel": "decides", "record": application}],
        }
    return out


# --- for the packages above: they call these instead of querying the tables ------------------


def with_current_tier(query: Any, *, today: date, policy_version: int) -> Any:
    """``query`` (which selects a column named ``uscc``) with one more column: the
    merchant's maintained tier where it is current on ``today`` under
    ``policy_version``, else NULL (never rated, or due for a change: the caller rates
    those itself). The same staleness rule as the sweep (``service._due``), in SQL."""
    r = MerchantRating
    current = case(
        (
            and_(
                or_(col(r.next_change_on).is_(None), col(r.next_change_on) > today),
                col(r.policy_version) == policy_version,
                col(r.as_of) <= today,
            ),
            col(r.tier),
        ),
        else_=None,
    )
    return query.outerjoin(r, col(r.uscc) == query.selected_columns.uscc).add_columns(current)


def tiers_of(session: Session, usccs: Iterable[str]) -> dict[str, str]:
    """uscc -> the maintained rating's tier, for those rated."""
    out: dict[str, str] = {}
    for chunk in in_chunks(usccs):
        rows = session.execute(
            select(col(MerchantRating.uscc), col(MerchantRating.tier)).where(
                col(MerchantRating.uscc).in_(chunk)
            )
        )
        out.update((str(u), str(t)) for u, t in rows)
    return out


def count_undecided_repairs(session: Session) -> int:
    """Credit-repair applications no regulator has decided yet."""
    return int(
        session.execute(
            select(func.count())
            .select_from(CreditRepair)
            .where(~col(CreditRepair.id).in_(select(col(CreditRepairDecision.repair_id))))
        ).scalar_one()
    )


def has_tier_clause(uscc: Any, tier: str) -> Any:
    """A correlated ``EXISTS``: merchant ``uscc`` (the outer query's column) is rated
    ``tier``. EXISTS, not IN (subquery): SQLite builds the IN list (half the city) on
    every query, 5x slower at 10^5 merchants (scripts/bench.py site)."""
    return (
        select(col(MerchantRating.uscc))
        .where(col(MerchantRating.uscc) == uscc, col(MerchantRating.tier) == tier)
        .exists()
    )


def next_change_of(uscc: Any) -> Any:
    """A scalar subquery: the day merchant ``uscc``'s maintained rating next changes."""
    r = MerchantRating.__table__.c  # type: ignore[attr-defined]
    return select(r.next_change_on).where(r.uscc == uscc).scalar_subquery()


def newest_policy_leaf() -> Any:
    """A scalar subquery: the log position of the newest credit-policy record."""
    p = CreditPolicyVersion.__table__.c  # type: ignore[attr-defined]
    return select(func.max(p.leaf_index)).scalar_subquery()
