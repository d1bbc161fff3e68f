"""Credit-repair applications and decisions as their tables hold them, for pages.

A page must show what the table says, so that the browser's 验证, which compares
the page with the record from the log, notices a table that no longer matches
its record. This module never reads the log, and never writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from backend.credit.models import CreditRepair, CreditRepairDecision
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
