"""Record kinds of graded spot-check frequencies (抽查比例) and their projection.

- ``credit.rates_proposed`` -> a ``rate_proposal`` row (status ``pending``);
- ``credit.rates_decided`` -> the same row's decision (``approved`` or ``rejected``).

An approved proposal is published as the next ``credit.policy`` version by
``backend/credit/frequencies.py``; these records say who proposed and who approved it.
Pure declarations (see ``backend/ledger/projection.py``).
"""

from __future__ import annotations

from sqlalchemy import Table

from backend.credit.models import RateProposal
from backend.ledger.projection import Projection, Rec, Rows, day, register

PROPOSED = "credit.rates_proposed"
DECIDED = "credit.rates_decided"

PROPOSAL: Table = RateProposal.__table__  # type: ignore[attr-defined]


def _proposed(rec: Rec, rows: Rows) -> None:
    b = rec.body
    rows.insert(
        PROPOSAL,
        {
            "id": b["proposal_id"],
            "rates_bp": dict(b["rates_bp"]),
            # Proposals recorded before minimum intervals existed carry none.
            "min_interval_months": (
                dict(b["min_interval_months"]) if b.get("min_interval_months") else None
            ),
            "effective_from": day(b["effective_from"]),
            "note": b["note"],
            "base_version": b["base_version"],
            "status": "pending",
            "decided_at": None,
            "decided_by": None,
            "decision_reason": None,
            "decision_record_id": None,
            **rec.provenance(),
        },
    )


def _decided(rec: Rec, rows: Rows) -> None:
    b = rec.body
    rows.update(
        PROPOSAL,
        (b["proposal_id"],),
        {
            "status": b["decision"],
            "decided_at": rec.at,
            "decided_by": rec.account_id,
            "decision_reason": b["reason"],
            "decision_record_id": rec.record_id,
        },
    )


def _apply(rec: Rec, rows: Rows) -> None:
    (_proposed if rec.type == PROPOSED else _decided)(rec, rows)


register(
    Projection(
        PROPOSAL, key=("id",), unique=("record_id",), types=frozenset({PROPOSED, DECIDED}),
        apply=_apply,
    )
)
