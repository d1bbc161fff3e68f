"""Complaints from the public, and the regulator's review of each.

Anyone may complain, anonymously too, limited per client address. A complaint
is private (the complainant's contact never leaves the ``complaint`` table); a
regulator verifies it, which appends a ``supervision.complaint_verified``
record carrying only the public summary, or rejects it, which is kept private.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from backend.accounts import ratelimit
from backend.accounts.service import Principal, require_role
from backend.errors import Conflict, NotFound, ValidationFailed
from backend.ledger.status import anchor_status
from backend.merchants import queries as merchant_queries
from backend.merchants.service import parse_uscc
from backend.supervision import tickets
from backend.supervision.checks import (
    RowInvalid,
    SupervisionRecordNotFound,
    checker_for,
    text_field,
)
from backend.supervision.models import (
    Complaint,
    ComplaintCreate,
    ComplaintPage,
    ComplaintPrivate,
    ComplaintReceived,
    ComplaintReview,
    ComplaintReviewCreate,
    ComplaintReviewed,
    ComplaintReviewPublic,
    ComplaintVerifiedInput,
)
from backend.supervision.service import WRITER_ROLES, prepare, write_prepared
from backend.timeutil import aware, today_shanghai, utcnow

COMPLAINTS_PER_ADDRESS = ratelimit.Limit(max_events=10, window_s=3600)


class ComplaintNotFound(NotFound):
    pass


class ComplaintAlreadyReviewed(Conflict):
    pass


def complaint_key(address: str | None) -> str:
    return f"complaint:{address or 'unknown'}"[:200]


def submit_complaint(
    session: Session,
    *,
    principal: Principal | None,
    data: ComplaintCreate,
    address: str | None,
    now: datetime | None = None,
) -> ComplaintReceived:
    """Anyone may complain, anonymously too; limited per client address."""
    now = now or utcnow()
    # Taken atomically; committed (or rolled back) with the complaint.
    ratelimit.take(
        session,
        key=complaint_key(address),
        limit=COMPLAINTS_PER_ADDRESS,
        now=now,
        what="complaints from this address",
    )
    code = parse_uscc(data.uscc)
    if not merchant_queries.is_registered(session, code):
        raise SupervisionRecordNotFound(
            f"no registered merchant with credit code {code}", field="uscc"
        )
    content = text_field(data.content, "content", 2000, multiline=True)
    contact = None
    if data.contact is not None and data.contact.strip():
        contact = text_field(data.contact, "contact", 100)
    complaint = Complaint(
        id=uuid.uuid4().hex,
        uscc=code,
        content=content,
        contact=contact,
        submitted_at=now,
        account_id=principal.account_id if principal is not None else None,
    )
    session.add(complaint)
    issued = tickets.issue(session, complaint_id=complaint.id, now=now)
    session.commit()
    return ComplaintReceived(
        complaint_id=complaint.id,
        uscc=code,
        submitted_at=now,
        ticket=issued.ticket,
        check_code=issued.code,
    )


def _complaint_private(c: Complaint, review: ComplaintReview | None) -> ComplaintPrivate:
    return ComplaintPrivate(
        complaint_id=c.id,
        uscc=c.uscc,
        content=c.content,
        contact=c.contact,
        submitted_at=aware(c.submitted_at),
        status="pending" if review is None else review.outcome,  # type: ignore[arg-type]
        review=None
        if review is None
        else ComplaintReviewPublic(
            outcome=review.outcome,  # type: ignore[arg-type]
            decided_on=review.decided_on,
            summary=review.summary,
            record_id=review.record_id,
        ),
    )


def get_complaint(session: Session, *, complaint_id: str) -> ComplaintPrivate:
    c = session.get(Complaint, complaint_id)
    if c is None:
        raise ComplaintNotFound(f"no complaint {complaint_id}")
    return _complaint_private(c, session.get(ComplaintReview, complaint_id))


def list_complaints(
    session: Session,
    *,
    status: str | None,
    uscc: str | None,
    limit: int,
    offset: int,
    usccs: Sequence[str] | None = None,
) -> ComplaintPage:
    """Complaints, newest first; ``usccs``: only about these merchants (a name search)."""
    query = select(Complaint, ComplaintReview).join(
        ComplaintReview,
        ComplaintReview.complaint_id == Complaint.id,  # type: ignore[arg-type]
        isouter=True,
    )
    if uscc:
        query = query.where(col(Complaint.uscc) == parse_uscc(uscc))
    if usccs is not None:
        query = query.where(col(Complaint.uscc).in_(list(usccs)))
    if status == "pending":
        query = query.where(col(ComplaintReview.complaint_id).is_(None))
    elif status in ("verified", "rejected"):
        query = query.where(col(ComplaintReview.outcome) == status)
    elif status is not None:
        raise ValidationFailed(f"status must be pending, verified or rejected; got {status!r}")
    total = int(session.execute(select(func.count()).select_from(query.subquery())).scalar_one())
    rows = session.execute(
        query.order_by(Complaint.submitted_at.desc()).limit(limit).offset(offset)  # type: ignore[attr-defined]
    ).all()
    return ComplaintPage(
        total=total,
        limit=limit,
        offset=offset,
        items=[_complaint_private(c, r) for c, r in rows],
    )


def review_complaint(
    session: Session,
    *,
    principal: Principal | None,
    complaint_id: str,
    data: ComplaintReviewCreate,
    now: datetime | None = None,
) -> ComplaintReviewed:
    """A regulator verifies (appends ``supervision.complaint_verified``) or rejects a complaint."""
    p = require_role(principal, *WRITER_ROLES)
    now = now or utcnow()
    today = today_shanghai(now)
    # Locked (PostgreSQL; SQLite's write transaction is exclusive already): concurrent
    # reviews of one complaint take turns, and the later ones find the review.
    c = session.get(Complaint, complaint_id, with_for_update=True)
    if c is None:
        raise ComplaintNotFound(f"no complaint {complaint_id}")
    if session.get(ComplaintReview, complaint_id) is not None:
        raise ComplaintAlreadyReviewed(f"complaint {complaint_id} has already been reviewed")
    on = data.decided_on or today
    submitted = today_shanghai(aware(c.submitted_at))
    if not submitted <= on <= today:
        raise RowInvalid(
            f"decided_on {on} must lie between the complaint ({submitted}) and today ({today})",
            field="decided_on",
        )
    summary = text_field(data.summary, "summary", 500, multiline=True)
    rec = None
    if data.outcome == "verified":
        checker = checker_for(session, [c.uscc], today, now=now)
        prepared = prepare(
            checker,
            ComplaintVerifiedInput(
                kind="complaint_verified", uscc=c.uscc, complaint_id=c.id, verified_on=on,
                summary=summary,
            )
        )
        (rec,), _ = write_prepared(session, [(p, prepared)], now=now, versions=checker.versions)
    review = ComplaintReview(
        complaint_id=c.id,
        outcome=data.outcome,
        decided_on=on,
        summary=summary,
        at=now,
        account_id=p.account_id,
        record_id=rec.record_id if rec else None,
    )
    session.add(review)
    try:
        session.flush()
    except IntegrityError:
        # A concurrent review of the same complaint committed first (its key exists):
        # nothing of this one is written, the record appended above included.
        session.rollback()
        raise ComplaintAlreadyReviewed(
            f"complaint {complaint_id} has already been reviewed"
        ) from None
    session.commit()
    private = _complaint_private(c, review)
    return ComplaintReviewed(
        **private.model_dump(),
        record_id=rec.record_id if rec else None,
        leaf_index=rec.leaf_index if rec else None,
        anchor_status=anchor_status(session, rec.leaf_index) if rec else None,
    )


