"""Graded spot-check frequencies (分级抽查比例): propose, approve, publish.

A staff account proposes the yearly spot-check rate of each tier (basis points),
optionally a minimum interval per tier (whole months between two checks of one
merchant; a merchant checked more recently is not drawn, ``docs/draws.md`` §8.4), and a
date they take effect; the proposal is a ``credit.rates_proposed`` record. Who may
publish is the setting ``HM_RATE_PUBLISH``:

- ``two_person`` (the default): every proposal waits for a second staff account (not
  the proposer) to approve it;
- ``admin``: an admin's proposal is published at once; a regulator's waits for an
  admin's approval;
- ``regulator``: any staff account's proposal is published at once.

An approval (``credit.rates_decided``) publishes the next ``credit.policy`` version
through :func:`backend.credit.service.put_policy`, the one path of policy versions:
the policy in force with ``spot_check_rate_bp`` and ``spot_check_min_interval_months``
replaced (a proposal states both; no interval, or every interval 0, is no minimum).
Draws read the rates and intervals of the policy in force, so the next draw uses them.
A rejection only records the decision. The proposal, the decision and the policy
commit together or not at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlmodel import Session, col

from backend.accounts.models import Role
from backend.accounts.service import Principal, RoleNotPermitted, require_role
from backend.credit import service as credit
from backend.credit.frequency_records import DECIDED, PROPOSED
from backend.credit.models import RateProposal
from backend.credit.policy import SpotCheckIntervals, SpotCheckRates
from backend.errors import Conflict, Forbidden, NotFound, ValidationFailed
from backend.inputs import validate_horizon
from backend.ledger.records import RecordDraft, Ref
from backend.ledger.write import write
from backend.merchants.text import clean_text
from backend.timeutil import today_shanghai, utcnow

TIERS = ("A", "B", "C", "D")
STAFF: tuple[Role, ...] = ("regulator", "admin")
PublishRule = Literal["two_person", "admin", "regulator"]


class ProposalNotFound(NotFound):
    pass


class ProposalDecided(Conflict):
    pass


class SelfApproval(Forbidden):
    pass


class PublishNotPermitted(RoleNotPermitted):
    pass


class NothingProposed(ValidationFailed):
    pass


@dataclass(frozen=True)
class Decided:
    proposal: RateProposal
    policy_version: int | None


def intervals_of(months: dict[str, int] | None) -> dict[str, int] | None:
    """Minimum intervals as a proposal and a policy hold them: validated
    (:class:`SpotCheckIntervals`), and ``None`` when there is no minimum at all."""
    if months is None:
        return None
    valid = SpotCheckIntervals.model_validate(months).model_dump()
    return valid if any(valid.values()) else None


def publishes_at_once(rule: PublishRule, role: str) -> bool:
    """Whether a proposal by ``role`` is published without a second account."""
    return rule == "regulator" or (rule == "admin" and role == "admin")


def may_approve(rule: PublishRule, role: str) -> bool:
    return role == "admin" if rule == "admin" else role in STAFF


def propose(
    session: Session,
    *,
    principal: Principal | None,
    rule: PublishRule,
    rates_bp: dict[str, int],
    effective_from: date,
    note: str = "",
    min_interval_months: dict[str, int] | None = None,
    now: datetime | None = None,
) -> Decided:
    """Record a proposal (and, where the rule allows, publish it at once)."""
    p = require_role(principal, *STAFF)
    now = now or utcnow()
    today = today_shanghai(now)
    rates = SpotCheckRates.model_validate(rates_bp).model_dump()
    intervals = intervals_of(min_interval_months)
    validate_horizon(effective_from, field="effective_from", today=today)
    if effective_from < today:
        raise credit.PolicyBackdated(
            f"effective_from {effective_from} is in the past (today is {today}); rates can "
            "only take effect today or later",
            field="effective_from",
        )
    versions = credit.ensure_policy(session, now=now)
    current = credit.in_force(versions, today)
    in_force_intervals = intervals_of(
        current.policy.spot_check_min_interval_months.model_dump()
        if current.policy.spot_check_min_interval_months is not None
        else None
    )
    if (
        rates == current.policy.spot_check_rate_bp.model_dump()
        and intervals == in_force_intervals
        and effective_from == today
    ):
        raise NothingProposed("the proposed rates and intervals are the ones in force")
    text = clean_text(note, field="note", max_len=500, multiline=True, required=False).strip()
    proposal_id = uuid.uuid4().hex
    write(
        session,
        RecordDraft(
            type=PROPOSED,
            subject=None,
            actor=p.actor,
            body={
                "proposal_id": proposal_id,
                "rates_bp": rates,
                "min_interval_months": intervals,
                "effective_from": effective_from.isoformat(),
                "note": text,
                "base_version": versions[-1].version,
            },
            refs=(Ref("policy", current.record_id),),
        ),
        now=now,
    )
    if publishes_at_once(rule, p.role):
        return _decide(session, p, proposal_id, approve=True, reason="", now=now, alone=True)
    session.commit()
    row = session.get(RateProposal, proposal_id)
    assert row is not None  # projected by backend/credit/frequency_records.py
    return Decided(row, None)


def decide(
    session: Session,
    *,
    principal: Principal | None,
    rule: PublishRule,
    proposal_id: str,
    approve: bool,
    reason: str = "",
    now: datetime | None = None,
) -> Decided:
    """Approve (publish) or reject a pending proposal, by a second account."""
    p = require_role(principal, *STAFF)
    if not may_approve(rule, p.role):
        raise PublishNotPermitted(
            f"with HM_RATE_PUBLISH={rule} a {p.role} may not decide rate proposals"
        )
    return _decide(
        session, p, proposal_id, approve=approve, reason=reason, now=now, alone=False
    )


def _decide(
    session: Session,
    p: Principal,
    proposal_id: str,
    *,
    approve: bool,
    reason: str,
    now: datetime | None,
    alone: bool,
) -> Decided:
    """``alone``: the proposer publishes its own proposal, as the rule allows it."""
    now = now or utcnow()
    row = session.get(RateProposal, proposal_id, with_for_update=True)
    if row is None:
        raise ProposalNotFound(f"no rate proposal {proposal_id}")
    if row.status != "pending":
        raise ProposalDecided(f"proposal {proposal_id} is {row.status} already")
    if row.account_id == p.account_id and not alone:
        raise SelfApproval("a proposal needs a second account's approval, not its proposer's")
    text = clean_text(reason, field="reason", max_len=500, multiline=True, required=False).strip()
    write(
        session,
        RecordDraft(
            type=DECIDED,
            subject=None,
            actor=p.actor,
            body={
                "proposal_id": proposal_id,
                "decision": "approved" if approve else "rejected",
                "reason": text,
            },
            refs=(Ref("proposal", row.record_id),),
        ),
        now=now,
    )
    version = None
    if approve:
        today = today_shanghai(now)
        current = credit.in_force(credit.policy_versions(session), today)
        doc: dict[str, Any] = current.policy.model_dump(mode="json")
        doc.pop("version", None)
        doc["spot_check_rate_bp"] = dict(row.rates_bp)
        doc["spot_check_min_interval_months"] = (
            dict(row.min_interval_months) if row.min_interval_months else None
        )
        doc["effective_from"] = max(row.effective_from, today).isoformat()
        public, _ = credit.put_policy(session, principal=p, document=doc, now=now)  # commits
        version = public.version
    else:
        session.commit()
    session.refresh(row)
    return Decided(row, version)


def list_proposals(session: Session, *, limit: int = 20) -> list[RateProposal]:
    """The newest proposals first (pending and decided)."""
    return list(
        session.execute(
            select(RateProposal).order_by(col(RateProposal.at).desc()).limit(limit)
        ).scalars()
    )
