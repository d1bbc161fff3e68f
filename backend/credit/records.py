"""Credit record kinds and their projections.

- ``credit.policy`` -> ``credit_policy`` (one row per version);
- ``credit.repair_applied`` -> ``credit_repair``;
- ``credit.repair_decided`` -> ``credit_repair_decision``.

The rating cache (``merchant_rating``, ``rating_change``) is not a projection of
single records but of all of a merchant's records, the policy and the date:
``backend/credit/service.py`` owns it and audit recomputes it
(``backend/credit/audit.py``).

Pure declarations (see ``backend/ledger/projection.py``).
"""

from __future__ import annotations

from sqlalchemy import Table

from backend.credit.models import CreditPolicyVersion, CreditRepair, CreditRepairDecision
from backend.ledger.projection import Projection, Rec, Rows, day, register

POLICY = "credit.policy"
REPAIR_APPLIED = "credit.repair_applied"
REPAIR_DECIDED = "credit.repair_decided"

POLICY_TABLE: Table = CreditPolicyVersion.__table__  # type: ignore[attr-defined]
REPAIR: Table = CreditRepair.__table__  # type: ignore[attr-defined]
DECISION: Table = CreditRepairDecision.__table__  # type: ignore[attr-defined]


def _policy(rec: Rec, rows: Rows) -> None:
    b = rec.body
    rows.insert(
        POLICY_TABLE,
        {
            "version": b["version"],
            "effective_from": day(b["effective_from"]),
            "document": dict(b),
            "record_id": rec.record_id,
            "leaf_index": rec.leaf_index,
            "at": rec.at,
            "account_id": rec.account_id,
        },
    )


def _applied(rec: Rec, rows: Rows) -> None:
    b = rec.body
    rows.insert(
        REPAIR,
        {
            "id": b["repair_id"],
            "uscc": rec.subject,
            "penalty_record_id": b["penalty_record"],
            "applied_on": day(b["applied_on"]),
            "statement": b["statement"],
            **rec.provenance(),
        },
    )


def _decided(rec: Rec, rows: Rows) -> None:
    b = rec.body
    rows.insert(
        DECISION,
        {
            "repair_id": b["repair_id"],
            "decision": b["decision"],
            "decided_on": day(b["decided_on"]),
            "reason": b["reason"],
            **rec.provenance(),
        },
    )


register(
    Projection(POLICY_TABLE, key=("version",), types=frozenset({POLICY}), apply=_policy),
    Projection(REPAIR, key=("id",), types=frozenset({REPAIR_APPLIED}), apply=_applied),
    Projection(DECISION, key=("repair_id",), types=frozenset({REPAIR_DECIDED}), apply=_decided),
)
