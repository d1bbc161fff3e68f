"""Credit repair (信用修复) of a penalty record: application and decision.

A merchant applies for one of its own penalties (``credit.repair_applied``);
whether it may is :func:`backend.credit.rating.repair_eligibility` on today's
records and policy — every unmet condition is named in the 422. A regulator
decides (``credit.repair_decided``); an approval re-checks the conditions,
since a new penalty or listing may have arrived meanwhile. Approved, the
penalty stops counting and stops being shown (docs/records.md). Both steps
re-rate the merchant in their transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session, col

from backend.accounts.service import NotOwnMerchant, Principal, require_role
from backend.credit import rating
from backend.credit import service as credit
from backend.credit.models import (
    CreditRepair,
    CreditRepairDecision,
    RepairCreate,
    RepairDecisionCreate,
    RepairDecisionPublic,
    RepairPage,
    RepairPublic,
    RepairWritten,
)
from backend.credit.rating import PENALTY
from backend.credit.records import REPAIR_APPLIED, REPAIR_DECIDED
from backend.errors import Conflict, NotFound, RecordNotFound, ValidationFailed
from backend.ledger import log
from backend.ledger.records import RecordDraft, Ref
from backend.ledger.status import anchor_status
from backend.ledger.write import write
from backend.merchants.text import InvalidText, clean_text
from backend.timeutil import today_shanghai, utcnow

APPLIED = REPAIR_APPLIED
DECIDED = REPAIR_DECIDED


class RepairNotFound(NotFound):
    pass


class PenaltyNotFound(NotFound):
    pass


class RepairNotAllowed(ValidationFailed):
    """The conditions for credit repair are not met; ``unmet`` lists each one."""


class RepairPending(Conflict):
    pass


class RepairAlreadyDecided(Conflict):
    pass


def _record_id(raw: str) -> str:
    rid = raw.strip().lower().removeprefix("0x")
    if len(rid) != 64 or any(c not in "0123456789abcdef" for c in rid):
        raise ValidationFailed(
            f"penalty_record_id must be a record id (64 hex digits), got {raw!r}"
        )
    return rid


def _text(value: str, name: str, max_len: int) -> str:
    try:
        return clean_text(value, field=name, max_len=max_len, multiline=True)
    except InvalidText as exc:
        raise ValidationFailed(exc.detail, field=name) from None


def _public(rep: CreditRepair, dec: CreditRepairDecision | None) -> RepairPublic:
    return RepairPublic(
        repair_id=rep.id,
        uscc=rep.uscc,
        penalty_record_id=rep.penalty_record_id,
        applied_on=rep.applied_on,
        statement=rep.statement,
        status="pending" if dec is None else dec.decision,  # type: ignore[arg-type]
        application_record_id=rep.record_id,
        decision=None
        if dec is None
        else RepairDecisionPublic(
            decision=dec.decision,  # type: ignore[arg-type]
            decided_on=dec.decided_on,
            reason=dec.reason,
            record_id=dec.record_id,
        ),
    )


def _unmet(session: Session, uscc: str, penalty_record_id: str, now: datetime) -> list[str]:
    today = today_shanghai(now)
    versions = credit.ensure_policy(session, now=now)
    records = credit.load_records(session, [uscc])[uscc]
    policy = credit.in_force(versions, today).policy
    return rating.repair_eligibility(penalty_record_id, records, policy, today)


def _refuse(unmet: list[str]) -> RepairNotAllowed:
    return RepairNotAllowed("信用修复条件不满足：" + "；".join(unmet), unmet=unmet)


def apply_for_repair(
    session: Session,
    *,
    principal: Principal | None,
    data: RepairCreate,
    now: datetime | None = None,
) -> RepairWritten:
    p = require_role(principal, "merchant")
    now = now or utcnow()
    today = today_shanghai(now)
    pid = _record_id(data.penalty_record_id)
    # The penalty as recorded: records are the truth, and credit reads them itself.
    try:
        penalty = log.get_envelope(session, pid)
    except RecordNotFound:
        penalty = None
    if penalty is None or penalty["type"] != PENALTY:
        raise PenaltyNotFound(f"no penalty record {pid}")
    uscc = str(penalty["subject"])
    if uscc != p.merchant_uscc:
        raise NotOwnMerchant(
            f"penalty {pid} is about merchant {uscc}; account {p.username} may apply only "
            f"for its own merchant {p.merchant_uscc}"
        )
    newest = rating.newest_version(credit.load_records(session, [uscc])[uscc], pid)
    if newest != pid:
        raise RepairNotAllowed(
            f"penalty record {pid} was corrected; apply for its newest version {newest}",
            unmet=[f"该行政处罚记录已更正，请针对最新版本{newest}申请"],
        )
    pending = session.execute(
        select(col(CreditRepair.id))
        .where(col(CreditRepair.penalty_record_id) == pid)
        .where(
            ~select(col(CreditRepairDecision.repair_id))
            .where(col(CreditRepairDecision.repair_id) == col(CreditRepair.id))
            .exists()
        )
    ).scalar_one_or_none()
    if pending is not None:
        raise RepairPending(
            f"an application for penalty {pid} is already pending (repair {pending})"
        )
    unmet = _unmet(session, uscc, pid, now)
    if unmet:
        raise _refuse(unmet)
    statement = _text(data.statement, "statement", 2000)
    repair_id = uuid.uuid4().hex
    done = write(
        session,
        RecordDraft(
            type=APPLIED,
            subject=uscc,
            actor=p.actor,
            body={
                "repair_id": repair_id,
                "penalty_record": pid,
                "applied_on": today.isoformat(),
                "statement": statement,
            },
            refs=(Ref("repairs", pid),),
        ),
        now=now,
    )
    rec, result = done.one, done.results["credit"][uscc]
    rep = session.get(CreditRepair, repair_id)
    assert rep is not None  # projected by backend/credit/records.py
    session.commit()
    return RepairWritten(
        **_public(rep, None).model_dump(),
        record_id=rec.record_id,
        leaf_index=rec.leaf_index,
        anchor_status=anchor_status(session, rec.leaf_index),
        credit={"tier": result.tier, "score": result.score},
    )


def decide_repair(
    session: Session,
    *,
    principal: Principal | None,
    repair_id: str,
    data: RepairDecisionCreate,
    now: datetime | None = None,
) -> RepairWritten:
    p = require_role(principal, "regulator", "admin")
    now = now or utcnow()
    today = today_shanghai(now)
    rep = session.get(CreditRepair, repair_id)
    if rep is None:
        raise RepairNotFound(f"no credit repair {repair_id}")
    if session.get(CreditRepairDecision, repair_id) is not None:
        raise RepairAlreadyDecided(f"credit repair {repair_id} has already been decided")
    if data.decision == "approved":
        unmet = _unmet(session, rep.uscc, rep.penalty_record_id, now)
        if unmet:
            raise _refuse(unmet)
    reason = _text(data.reason, "reason", 1000)
    done = write(
        session,
        RecordDraft(
            type=DECIDED,
            subject=rep.uscc,
            actor=p.actor,
            body={
                "repair_id": rep.id,
                "decision": data.decision,
                "decided_on": today.isoformat(),
                "reason": reason,
            },
            refs=(Ref("decides", rep.record_id),),
        ),
        now=now,
    )
    rec, result = done.one, done.results["credit"][rep.uscc]
    dec = session.get(CreditRepairDecision, rep.id)
    assert dec is not None  # projected by backend/credit/records.py
    session.commit()
    return RepairWritten(
        **_public(rep, dec).model_dump(),
        record_id=rec.record_id,
        leaf_index=rec.leaf_index,
        anchor_status=anchor_status(session, rec.leaf_index),
        credit={"tier": result.tier, "score": result.score},
    )


def _may_read(principal: Principal | None, uscc: str) -> Principal:
    p = require_role(principal, "merchant", "regulator", "admin")
    if p.role == "merchant" and p.merchant_uscc != uscc:
        raise NotOwnMerchant(f"credit repair of merchant {uscc} is not yours")
    return p


def get_repair(session: Session, *, principal: Principal | None, repair_id: str) -> RepairPublic:
    rep = session.get(CreditRepair, repair_id)
    if rep is None:
        raise RepairNotFound(f"no credit repair {repair_id}")
    _may_read(principal, rep.uscc)
    return _public(rep, session.get(CreditRepairDecision, repair_id))


def list_repairs(
    session: Session, *, principal: Principal | None, status: str | None, limit: int, offset: int
) -> RepairPage:
    """Staff see every application; a merchant its own."""
    p = require_role(principal, "merchant", "regulator", "admin")
    query = select(CreditRepair, CreditRepairDecision).join(
        CreditRepairDecision,
        CreditRepairDecision.repair_id == CreditRepair.id,  # type: ignore[arg-type]
        isouter=True,
    )
    if p.role == "merchant":
        query = query.where(col(CreditRepair.uscc) == p.merchant_uscc)
    if status == "pending":
        query = query.where(col(CreditRepairDecision.repair_id).is_(None))
    elif status in ("approved", "rejected"):
        query = query.where(col(CreditRepairDecision.decision) == status)
    elif status is not None:
        raise ValidationFailed(f"status must be pending, approved or rejected; got {status!r}")
    total = int(session.execute(select(func.count()).select_from(query.subquery())).scalar_one())
    rows = session.execute(
        query.order_by(CreditRepair.at.desc()).limit(limit).offset(offset)  # type: ignore[attr-defined]
    ).all()
    return RepairPage(total=total, items=[_public(r, d) for r, d in rows])
