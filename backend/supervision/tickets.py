"""Complaint receipts a person can read: the 受理编号 and a code to check the status with.

Each complaint gets a short number (``TS-2026-000123``: the year it was received and a
sequence) and a random check code that only the complainant is shown, once, on the
receipt. The number alone tells nothing; with the code, :func:`status_of` answers how
the complaint stands (received, verified with its public summary, or not verified).
Only a salted SHA-256 of the code is kept. The ticket table is private, like the
complaint itself (no record carries it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Column, Integer, String
from sqlmodel import Field, Session, SQLModel, select

from backend.accounts import ratelimit
from backend.errors import NotFound
from backend.supervision.models import Complaint, ComplaintReview
from backend.timeutil import shanghai_date

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud, typed again
CODE_LENGTH = 8  # 40 bits
TICKET = re.compile(r"TS-(\d{4})-(\d{6,})")


class ComplaintTicket(SQLModel, table=True):
    """Private: the receipt number of a complaint and the digest of its check code."""

    __tablename__ = "complaint_ticket"

    seq: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    complaint_id: str = Field(foreign_key="complaint.id", max_length=32, unique=True)
    year: int
    salt: str = Field(sa_column=Column(String(32), nullable=False))
    code_sha256: str = Field(sa_column=Column(String(64), nullable=False))


class ComplaintTicketNotFound(NotFound):
    """No complaint has this number, or the code is not its code (never said which)."""


@dataclass(frozen=True)
class Issued:
    ticket: str
    code: str


@dataclass(frozen=True)
class TicketStatus:
    ticket: str
    uscc: str
    submitted_at: datetime
    status: str  # pending, verified, rejected
    decided_on: date | None
    summary: str | None


def ticket_number(year: int, seq: int) -> str:
    return f"TS-{year}-{seq:06d}"


def _digest(salt: str, code: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + code.encode()).hexdigest()


def issue(session: Session, *, complaint_id: str, now: datetime) -> Issued:
    """A number and a check code for a complaint, in the caller's transaction."""
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    salt = secrets.token_hex(16)
    row = ComplaintTicket(
        complaint_id=complaint_id,
        year=shanghai_date(now).year,
        salt=salt,
        code_sha256=_digest(salt, code),
    )
    session.add(row)
    session.flush()  # the sequence number
    assert row.seq is not None
    return Issued(ticket_number(row.year, row.seq), code)


def find(session: Session, *, ticket: str, code: str) -> ComplaintTicket:
    """The ticket with this number whose code is ``code``, else ComplaintTicketNotFound."""
    found = TICKET.fullmatch(ticket.strip().upper())
    row = None
    if found:
        row = session.execute(
            select(ComplaintTicket).where(
                ComplaintTicket.seq == int(found.group(2)),
                ComplaintTicket.year == int(found.group(1)),
            )
        ).scalar_one_or_none()
    given = code.strip().upper().replace(" ", "").replace("-", "")
    if row is None or not hmac.compare_digest(row.code_sha256, _digest(row.salt, given)):
        raise ComplaintTicketNotFound(
            f"no complaint {ticket!r} with that check code; check both on your receipt"
        )
    return row


def numbers(session: Session, complaint_ids: list[str]) -> dict[str, str]:
    """The 受理编号 of these complaints (those received before numbers have none)."""
    if not complaint_ids:
        return {}
    rows = session.execute(
        select(ComplaintTicket).where(
            ComplaintTicket.complaint_id.in_(complaint_ids)  # type: ignore[attr-defined]
        )
    ).scalars()
    return {r.complaint_id: ticket_number(r.year, r.seq or 0) for r in rows}


def lookup(
    session: Session, *, ticket: str, code: str, address: str | None, now: datetime
) -> TicketStatus:
    """:func:`status_of` for the public, limited against guessing: a failed lookup takes
    a slot per client address and per ticket number (``backend/accounts/ratelimit.py``);
    past either limit, ``TooManyAttempts`` (429, ``Retry-After``) before anything is
    looked up. A lookup that succeeds gives its slots back (only failures count)."""
    taken: list[tuple[str, ratelimit.Limit]] = []
    for key, limit, what in (
        (ratelimit.ticket_address_key(address), ratelimit.ADDRESS_TICKET_LOOKUP,
         "failed complaint status lookups from this address"),
        (ratelimit.ticket_key(ticket), ratelimit.TICKET_LOOKUP,
         "failed status lookups of this complaint number"),
    ):
        ratelimit.take(session, key=key, limit=limit, now=now, what=what)
        taken.append((key, limit))
    session.commit()
    found = status_of(session, ticket=ticket, code=code)
    for key, limit in taken:
        ratelimit.give_back(session, key=key, limit=limit)
    session.commit()
    return found


def status_of(session: Session, *, ticket: str, code: str) -> TicketStatus:
    """How the complaint with this number and code stands (what its complainant may see)."""
    row = find(session, ticket=ticket, code=code)
    complaint = session.get(Complaint, row.complaint_id)
    assert complaint is not None  # the foreign key
    review = session.get(ComplaintReview, row.complaint_id)
    return TicketStatus(
        ticket=ticket_number(row.year, row.seq or 0),
        uscc=complaint.uscc,
        submitted_at=complaint.submitted_at,
        status="pending" if review is None else review.outcome,
        decided_on=review.decided_on if review is not None else None,
        # A verified complaint's summary is public; a rejection's reason is shown only here.
        summary=review.summary if review is not None else None,
    )
