"""Derived pledge and demonstration status: the one place these rules live.

A pledge is, on a given Asia/Shanghai date ``d``:

- ``withdrawn`` if a withdrawal row exists (its ``pledge.withdrawn`` record);
- else ``renewed`` if a later pledge names it in ``renews_pledge_id``;
- else ``expired`` if ``d >= valid_until`` (exclusive end);
- else ``active`` (``valid_from`` is the day it was made, never later).

An award is ``withdrawn`` if withdrawn, else ``expired`` if
``d >= valid_until``, else ``active``. Both are computed from inserted rows and
the date, never stored. This module only reads; it imports no other domain.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import and_, exists, func, not_, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from backend.ledger.records import format_time
from backend.ledger.status import WrittenRecord, anchor_status
from backend.pledges.models import (
    DemonstrationAward,
    DemonstrationPublic,
    DemonstrationStatus,
    DemonstrationWithdrawal,
    Pledge,
    PledgePublic,
    PledgeStatus,
    PledgeSummary,
    PledgeWithdrawal,
    SignaturePublic,
    TemplateRef,
    WithdrawalPublic,
)
from backend.pledges.records import DEMONSTRATION, PLEDGE_MADE, PLEDGE_WITHDRAWN
from backend.pledges.templates import TEMPLATES
from backend.timeutil import SHANGHAI, aware, shanghai_date, utcnow  # noqa: F401  (re-exported)


def add_months(d: date, months: int) -> date:
    """Same day ``months`` later, clamped to the month's end (29 Feb + 12 → 28 Feb)."""
    index = d.year * 12 + (d.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def written_record(session: Session, record_id: str, leaf_index: int) -> WrittenRecord:
    return WrittenRecord(
        record_id=record_id, leaf_index=leaf_index, anchor_status=anchor_status(session, leaf_index)
    )


# --- pledges ------------------------------------------------------------------


# The pledge renewing another. One alias for every query: building a fresh alias and
# adapting its columns cost about a millisecond of CPU per query, a fifth of a merchant
# lookup (scripts/loadtest.py).
_SUCCESSOR = aliased(Pledge, name="successor")


def active_pledge_clause(today: date) -> ColumnElement[bool]:
    """SQL condition: the ``pledge`` row is active on ``today``."""
    successor = _SUCCESSOR
    return and_(
        col(Pledge.valid_from) <= today,
        col(Pledge.valid_until) > today,
        not_(exists().where(col(PledgeWithdrawal.pledge_id) == col(Pledge.id))),
        not_(exists().where(col(successor.renews_pledge_id) == col(Pledge.id))),
    )


def status_of(pledge: Pledge, *, withdrawn: bool, renewed: bool, today: date) -> PledgeStatus:
    if withdrawn:
        return "withdrawn"
    if renewed:
        return "renewed"
    if today >= pledge.valid_until:
        return "expired"
    return "active"


def pledge_status(session: Session, pledge: Pledge, today: date) -> PledgeStatus:
    withdrawn = session.get(PledgeWithdrawal, pledge.id) is not None
    renewed = (
        session.execute(
            select(col(Pledge.id)).where(col(Pledge.renews_pledge_id) == pledge.id)
        ).first()
        is not None
    )
    return status_of(pledge, withdrawn=withdrawn, renewed=renewed, today=today)


def current_pledge(session: Session, uscc: str, today: date) -> Pledge | None:
    """The merchant's active pledge (at most one: a new pledge renews the old)."""
    return (
        session.execute(
            select(Pledge)
            .where(col(Pledge.uscc) == uscc, active_pledge_clause(today))
            .order_by(col(Pledge.made_at).desc())
            .limit(1)
        )
        .scalars()
        .first()
    )


def renewable_pledge(session: Session, uscc: str) -> Pledge | None:
    """The pledge a new pledge supersedes: the newest one neither withdrawn
    nor already renewed, whether still active or expired."""
    successor = _SUCCESSOR
    return (
        session.execute(
            select(Pledge)
            .where(
                col(Pledge.uscc) == uscc,
                not_(exists().where(col(PledgeWithdrawal.pledge_id) == col(Pledge.id))),
                not_(exists().where(col(successor.renews_pledge_id) == col(Pledge.id))),
            )
            .order_by(col(Pledge.made_at).desc())
            .limit(1)
        )
        .scalars()
        .first()
    )


def summary_of(pledge: Pledge, *, status: PledgeStatus) -> PledgeSummary:
    return PledgeSummary(
        pledge_id=pledge.id,
        status=status,
        valid_from=pledge.valid_from,
        valid_until=pledge.valid_until,
        record_id=pledge.record_id,
    )


def usccs_with_active_pledge(session: Session, usccs: Iterable[str], today: date) -> set[str]:
    wanted = list(usccs)
    if not wanted:
        return set()
    rows = session.execute(
        select(col(Pledge.uscc)).where(col(Pledge.uscc).in_(wanted), active_pledge_clause(today))
    )
    return {r for (r,) in rows}


def count_active_pledges(session: Session, today: date) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(Pledge).where(active_pledge_clause(today))
        ).scalar_one()
    )


def to_public(
    session: Session, pledge: Pledge, *, today: date, merchant_verified: bool
) -> PledgePublic:
    withdrawal = session.get(PledgeWithdrawal, pledge.id)
    successor = session.execute(
        select(col(Pledge.id)).where(col(Pledge.renews_pledge_id) == pledge.id)
    ).scalar_one_or_none()
    template = TEMPLATES.get((pledge.template_sector, pledge.template_version))
    texts = {i.code: i.text for i in template.items} if template else {}
    return PledgePublic(
        pledge_id=pledge.id,
        uscc=pledge.uscc,
        status=status_of(
            pledge, withdrawn=withdrawal is not None, renewed=successor is not None, today=today
        ),
        template=TemplateRef(
            sector=pledge.template_sector,
            version=pledge.template_version,
            digest=pledge.template_digest,
        ),
        title=template.title if template else "",
        items=list(pledge.items),
        item_texts=[texts.get(code, code) for code in pledge.items],
        extra_commitments=pledge.extra_commitments,
        valid_from=pledge.valid_from,
        valid_until=pledge.valid_until,
        made_at=pledge.made_at,
        made_record=written_record(session, pledge.record_id, pledge.leaf_index),
        renews=pledge.renews_pledge_id,
        renewed_by=successor,
        withdrawal=(
            WithdrawalPublic(
                withdrawn_on=withdrawal.withdrawn_on,
                reason=withdrawal.reason,
                record=written_record(session, withdrawal.record_id, withdrawal.leaf_index),
            )
            if withdrawal is not None
            else None
        ),
        signature=(
            SignaturePublic(signer=pledge.signer, signature=pledge.signature)
            if pledge.signer and pledge.signature
            else None
        ),
        merchant_verified=merchant_verified,
    )


# --- demonstration units -------------------------------------------------------


def active_award_clause(today: date) -> ColumnElement[bool]:
    return and_(
        col(DemonstrationAward.awarded_on) <= today,
        col(DemonstrationAward.valid_until) > today,
        not_(exists().where(col(DemonstrationWithdrawal.award_id) == col(DemonstrationAward.id))),
    )


def award_status(
    award: DemonstrationAward, withdrawal: DemonstrationWithdrawal | None, today: date
) -> DemonstrationStatus:
    if withdrawal is not None:
        return "withdrawn"
    if today >= award.valid_until:
        return "expired"
    return "active"


def current_award(session: Session, uscc: str, today: date) -> DemonstrationAward | None:
    return (
        session.execute(
            select(DemonstrationAward)
            .where(col(DemonstrationAward.uscc) == uscc, active_award_clause(today))
            .order_by(col(DemonstrationAward.awarded_on).desc())
            .limit(1)
        )
        .scalars()
        .first()
    )


def usccs_with_active_award(session: Session, usccs: Iterable[str], today: date) -> set[str]:
    wanted = list(usccs)
    if not wanted:
        return set()
    rows = session.execute(
        select(col(DemonstrationAward.uscc)).where(
            col(DemonstrationAward.uscc).in_(wanted),
            active_award_clause(today),
        )
    )
    return {r for (r,) in rows}


def count_active_awards(session: Session, today: date) -> int:
    return int(
        session.execute(
            select(func.count(func.distinct(col(DemonstrationAward.uscc)))).where(
                active_award_clause(today)
            )
        ).scalar_one()
    )


def award_public(session: Session, award: DemonstrationAward, today: date) -> DemonstrationPublic:
    withdrawal = session.get(DemonstrationWithdrawal, award.id)
    return award_of(
        award,
        withdrawal,
        status=award_status(award, withdrawal, today),
        written=written_record(session, award.record_id, award.leaf_index),
        withdrawal_written=(
            written_record(session, withdrawal.record_id, withdrawal.leaf_index)
            if withdrawal
            else None
        ),
    )


def award_of(
    award: DemonstrationAward,
    withdrawal: DemonstrationWithdrawal | None,
    *,
    status: DemonstrationStatus,
    written: WrittenRecord,
    withdrawal_written: WrittenRecord | None = None,
) -> DemonstrationPublic:
    return DemonstrationPublic(
        award_id=award.id,
        uscc=award.uscc,
        status=status,
        awarded_on=award.awarded_on,
        valid_until=award.valid_until,
        award_record=written,
        withdrawn_on=withdrawal.withdrawn_on if withdrawal else None,
        withdrawal_reason=withdrawal.reason if withdrawal else None,
        withdrawal_record=withdrawal_written,
    )


# --- records as the tables hold them (for pages; see backend/disclosure) -------

_RENEWED = aliased(Pledge, name="renewed")


def records_as_held(session: Session, wanted: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``record_id`` → the pledge or demonstration record as its row holds it:
    ``type``, ``at``, ``body``, ``refs`` (the envelope's fields, in its JSON form),
    for ``wanted`` (``record_id`` → the record's type, which picks the table).

    A page shows this, not the log, so that the browser's 验证, which compares the
    page with the record from the log, notices a table that no longer matches its
    record. Ids without a row are left out.
    """
    out: dict[str, dict[str, Any]] = {}
    made = sorted(rid for rid, t in wanted.items() if t == PLEDGE_MADE)
    withdrawn = sorted(rid for rid, t in wanted.items() if t == PLEDGE_WITHDRAWN)
    demonstrations = sorted(rid for rid, t in wanted.items() if t == DEMONSTRATION)
    if made:
        rows = session.execute(
            select(Pledge, col(_RENEWED.record_id))
            .outerjoin(_RENEWED, col(_RENEWED.id) == col(Pledge.renews_pledge_id))
            .where(col(Pledge.record_id).in_(made))
        )
        for p, renews in rows:
            out[p.record_id] = {
                "type": PLEDGE_MADE,
                "at": format_time(aware(p.made_at)),
                "body": {
                    "pledge_id": p.id,
                    "template": {
                        "sector": p.template_sector,
                        "version": p.template_version,
                        "digest": p.template_digest,
                    },
                    "items": p.items,
                    "extra_commitments": p.extra_commitments,
                    "valid_from": p.valid_from.isoformat(),
                    "valid_until": p.valid_until.isoformat(),
                    "signature": (
                        {"scheme": "eip712", "signer": p.signer, "signature": p.signature}
                        if p.signer and p.signature
                        else None
                    ),
                },
                "refs": [{"rel": "renews", "record": renews}] if renews else [],
            }
    if withdrawn:
        for w, pledged in session.execute(
            select(PledgeWithdrawal, col(Pledge.record_id))
            .join(Pledge, col(Pledge.id) == col(PledgeWithdrawal.pledge_id))
            .where(col(PledgeWithdrawal.record_id).in_(withdrawn))
        ):
            out[w.record_id] = {
                "type": PLEDGE_WITHDRAWN,
                "at": format_time(aware(w.at)),
                "body": {
                    "pledge_id": w.pledge_id,
                    "withdrawn_on": w.withdrawn_on.isoformat(),
                    "reason": w.reason,
                },
                "refs": [{"rel": "revokes", "record": pledged}],
            }
    if demonstrations:
        for a in session.execute(
            select(DemonstrationAward).where(
                col(DemonstrationAward.record_id).in_(demonstrations)
            )
        ).scalars():
            out[a.record_id] = {
                "type": DEMONSTRATION,
                "at": format_time(aware(a.at)),
                "body": {
                    "action": "award",
                    "on": a.awarded_on.isoformat(),
                    "valid_until": a.valid_until.isoformat(),
                },
                "refs": [],
            }
        for dw, awarded in session.execute(
            select(DemonstrationWithdrawal, col(DemonstrationAward.record_id))
            .join(
                DemonstrationAward,
                col(DemonstrationAward.id) == col(DemonstrationWithdrawal.award_id),
            )
            .where(col(DemonstrationWithdrawal.record_id).in_(demonstrations))
        ):
            out[dw.record_id] = {
                "type": DEMONSTRATION,
                "at": format_time(aware(dw.at)),
                "body": {
                    "action": "withdraw",
                    "on": dw.withdrawn_on.isoformat(),
                    "reason": dw.reason,
                },
                "refs": [{"rel": "revokes", "record": awarded}],
            }
    return out


# --- for the packages above: they call these instead of querying the tables ------------------


def _newest(rows: Iterable[Any]) -> dict[str, Any]:
    """The last row of each merchant from rows in ascending order."""
    return {row.uscc: row for row in rows}


def current_pledges(session: Session, usccs: Sequence[str], today: date) -> dict[str, Pledge]:
    """uscc -> the pledge active ``today`` (the newest if ever more than one); one query,
    one ``IN`` chunk."""
    return _newest(
        session.execute(
            select(Pledge)
            .where(col(Pledge.uscc).in_(usccs), active_pledge_clause(today))
            .order_by(col(Pledge.made_at))
        ).scalars()
    )


def current_awards(
    session: Session, usccs: Sequence[str], today: date
) -> dict[str, DemonstrationAward]:
    """uscc -> the demonstration award active ``today`` (the newest if more than one)."""
    return _newest(
        session.execute(
            select(DemonstrationAward)
            .where(col(DemonstrationAward.uscc).in_(usccs), active_award_clause(today))
            .order_by(col(DemonstrationAward.awarded_on))
        ).scalars()
    )


def pledged_among(among: Callable[[Any], Any], today: Any) -> Any:
    """The codes ``among`` the caller's (a condition built on the code column) with a
    pledge active ``today`` (a date or a bound parameter): a statement, for a ``UNION``."""
    return select(col(Pledge.uscc)).where(among(col(Pledge.uscc)), active_pledge_clause(today))


def awarded_among(among: Callable[[Any], Any], today: Any) -> Any:
    """The codes ``among`` the caller's that are demonstration units ``today`` (a
    statement)."""
    return select(col(DemonstrationAward.uscc)).where(
        among(col(DemonstrationAward.uscc)), active_award_clause(today)
    )
