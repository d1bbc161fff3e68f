"""Pledge and demonstration-unit record kinds and their projections.

- ``pledge.made`` -> ``pledge`` (``renews_pledge_id``: the pledge whose record the
  ``renews`` ref names);
- ``pledge.withdrawn`` -> ``pledge_withdrawal``;
- ``supervision.demonstration`` ``award`` -> ``demonstration_award`` and
  ``withdraw`` -> ``demonstration_withdrawal``. An award's id is the first 32 hex
  digits of its record id, so the log alone names it.

Pure declarations (see ``backend/ledger/projection.py``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Table

from backend.ledger.projection import Projection, Rec, Rows, day, register
from backend.pledges.models import (
    DemonstrationAward,
    DemonstrationWithdrawal,
    Pledge,
    PledgeWithdrawal,
)

PLEDGE_MADE = "pledge.made"
PLEDGE_WITHDRAWN = "pledge.withdrawn"
DEMONSTRATION = "supervision.demonstration"

PLEDGE: Table = Pledge.__table__  # type: ignore[attr-defined]
WITHDRAWAL: Table = PledgeWithdrawal.__table__  # type: ignore[attr-defined]
AWARD: Table = DemonstrationAward.__table__  # type: ignore[attr-defined]
AWARD_WITHDRAWAL: Table = DemonstrationWithdrawal.__table__  # type: ignore[attr-defined]


def withdrawal_body(*, pledge_id: str, withdrawn_on: date, reason: str) -> dict[str, Any]:
    """The body of ``pledge.withdrawn`` (by the merchant, or with a rejected registration)."""
    return {"pledge_id": pledge_id, "withdrawn_on": withdrawn_on.isoformat(), "reason": reason}


def award_id_of(record_id: str) -> str:
    """A demonstration award's id: the first 32 hex digits of its record id."""
    return record_id[:32]


def _made(rec: Rec, rows: Rows) -> None:
    b = rec.body
    renews = rec.ref("renews")
    previous = rows.get_by(PLEDGE, "record_id", renews) if renews else None
    sig = b.get("signature") or None
    rows.insert(
        PLEDGE,
        {
            "id": b["pledge_id"],
            "uscc": rec.subject,
            "template_sector": b["template"]["sector"],
            "template_version": b["template"]["version"],
            "template_digest": b["template"]["digest"],
            "items": list(b["items"]),
            "extra_commitments": b.get("extra_commitments"),
            "valid_from": day(b["valid_from"]),
            "valid_until": day(b["valid_until"]),
            "made_at": rec.at,
            "account_id": rec.account_id,
            "record_id": rec.record_id,
            "leaf_index": rec.leaf_index,
            "renews_pledge_id": previous["id"] if previous else None,
            "signer": sig["signer"] if sig else None,
            "signature": sig["signature"] if sig else None,
        },
    )


def _withdrawn(rec: Rec, rows: Rows) -> None:
    b = rec.body
    rows.insert(
        WITHDRAWAL,
        {
            "pledge_id": b["pledge_id"],
            "withdrawn_on": day(b["withdrawn_on"]),
            "reason": b["reason"],
            **rec.provenance(),
        },
    )


def _award(rec: Rec, rows: Rows) -> None:
    b = rec.body
    if b.get("action") != "award":
        return
    rows.insert(
        AWARD,
        {
            "id": award_id_of(rec.record_id),
            "uscc": rec.subject,
            "awarded_on": day(b["on"]),
            "valid_until": day(b["valid_until"]),
            **rec.provenance(),
        },
    )


def _award_withdrawn(rec: Rec, rows: Rows) -> None:
    b = rec.body
    if b.get("action") != "withdraw":
        return
    award = rec.ref("revokes")
    rows.insert(
        AWARD_WITHDRAWAL,
        {
            "award_id": award_id_of(award) if award else None,
            "withdrawn_on": day(b["on"]),
            "reason": b["reason"],
            **rec.provenance(),
        },
    )


register(
    Projection(PLEDGE, key=("id",), types=frozenset({PLEDGE_MADE}), apply=_made),
    Projection(
        WITHDRAWAL, key=("pledge_id",), types=frozenset({PLEDGE_WITHDRAWN}), apply=_withdrawn
    ),
    Projection(AWARD, key=("id",), types=frozenset({DEMONSTRATION}), apply=_award),
    Projection(
        AWARD_WITHDRAWAL,
        key=("award_id",),
        types=frozenset({DEMONSTRATION}),
        apply=_award_withdrawn,
    ),
)
