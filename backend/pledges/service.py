"""Pledge lifecycle and demonstration units: the rules.

- Only the merchant's own account pledges or withdraws (403 for anyone else).
- A pledge accepts a published template version of the merchant's sector
  with every required item; it is valid from the day it is made (Asia/Shanghai)
  until ``valid_until`` (exclusive; default one year later).
- A merchant has at most one current pledge: a new pledge *renews* the newest
  pledge that is neither withdrawn nor already renewed (active or expired),
  with a ``renews`` ref in its record. Withdrawal is a ``pledge.withdrawn``
  record with a ``revokes`` ref. Expiry needs no record: it follows from the
  ``valid_until`` inside the pledge's own record.
- An optional EIP-712 signature (backend/pledges/eip712.py) must recover to the
  merchant's bound wallet; the record keeps signer and signature.
- Every write re-rates the merchant in its own transaction
  (``backend.credit.service.rerate_merchant``), so a rating is never older
  than the newest record about the merchant.
- Regulators award and withdraw 示范单位 status (``supervision.demonstration``);
  an award needs a verified merchant with an active pledge and lasts three
  years by default.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from backend.accounts import idempotency
from backend.accounts.service import (
    NotOwnMerchant,
    Principal,
    require_merchant_self,
    require_role,
)
from backend.config import Settings
from backend.errors import Conflict, NotFound, ValidationFailed
from backend.inputs import validate_horizon
from backend.ledger.records import RecordDraft, Ref
from backend.ledger.status import written
from backend.ledger.write import write
from backend.merchants import queries as merchant_queries
from backend.merchants import reference
from backend.merchants import service as merchants
from backend.merchants.models import Merchant
from backend.merchants.text import clean_optional_text, clean_text
from backend.pledges import eip712, queries
from backend.pledges.models import (
    EXTRA_MAX,
    REASON_MAX,
    DemonstrationAction,
    DemonstrationAward,
    DemonstrationUnitItem,
    DemonstrationUnitList,
    DemonstrationWritten,
    OverviewStats,
    Pledge,
    PledgeCreate,
    PledgeDraft,
    PledgeItemPublic,
    PledgeList,
    PledgePublic,
    PledgeTemplatePublic,
    PledgeWritten,
    Target,
    TypedDataResponse,
)
from backend.pledges.records import (
    DEMONSTRATION,
    PLEDGE_MADE,
    PLEDGE_WITHDRAWN,
    award_id_of,
    withdrawal_body,
)
from backend.pledges.signs import SignData
from backend.pledges.templates import (
    TEMPLATES,
    InvalidPledgeAcceptance,
    PledgeTemplate,
    PledgeTemplateNotFound,
    current_template,
    get_template,
    template_digest,
    validate_acceptance,
)

# Local defaults (domain.md): pledges one year, awards three years.
PLEDGE_VALIDITY_MONTHS = 12
PLEDGE_MAX_MONTHS = 60
DEMONSTRATION_VALIDITY_MONTHS = 36
DEMONSTRATION_TARGETS = ((2025, 200), (2035, 700))


class PledgeNotFound(NotFound):
    pass


class UnknownPledgeTemplate(ValidationFailed):
    pass


class PledgeItemsInvalid(ValidationFailed):
    """Accepted items do not cover the template's required items (or name others)."""


class InvalidValidity(ValidationFailed):
    pass


class InvalidPledgeSignature(ValidationFailed):
    pass


class NoWalletBound(ValidationFailed):
    pass


class SignerMismatch(ValidationFailed):
    pass


class SignatureAlreadyUsed(Conflict):
    pass


class PledgeNotActive(Conflict):
    pass


class PledgeConflict(Conflict):
    """Another pledge was made for the merchant at the same moment; retry."""


class InvalidDemonstrationAction(ValidationFailed):
    pass


class NoActivePledge(Conflict):
    pass


class AlreadyDemonstrationUnit(Conflict):
    pass


class NotDemonstrationUnit(Conflict):
    pass


# --- templates ----------------------------------------------------------------------


def template_public(template: PledgeTemplate) -> PledgeTemplatePublic:
    return PledgeTemplatePublic(
        sector=template.sector,
        sector_name=reference.SECTORS[template.sector],
        version=template.version,
        title=template.title,
        digest=template_digest(template),
        current=current_template(template.sector).version == template.version,
        items=[
            PledgeItemPublic(code=i.code, text=i.text, required=i.required) for i in template.items
        ],
    )


def list_templates(*, sector: str | None) -> list[PledgeTemplatePublic]:
    wanted = merchants.parse_sector(sector) if sector else None
    return [
        template_public(t)
        for (s, _), t in sorted(TEMPLATES.items())
        if wanted is None or s == wanted
    ]


def _template(sector: str, version: int) -> PledgeTemplate:
    try:
        return get_template(sector, version)
    except PledgeTemplateNotFound as exc:
        raise UnknownPledgeTemplate(str(exc)) from None


def get_template_public(*, sector: str, version: int) -> PledgeTemplatePublic:
    return template_public(_template(merchants.parse_sector(sector), version))


# --- pledges ------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedPledge:
    uscc: str
    template: PledgeTemplate
    digest: str
    items: list[str]
    extra_commitments: str | None
    valid_from: date
    valid_until: date

    def typed_data(self) -> dict[str, Any]:
        return eip712.pledge_typed_data(
            uscc=self.uscc,
            template_sector=self.template.sector,
            template_version=self.template.version,
            template_digest=self.digest,
            items=self.items,
            extra_commitments=self.extra_commitments,
            valid_from=self.valid_from.isoformat(),
            valid_until=self.valid_until.isoformat(),
        )


def prepare(
    *, merchant: Merchant, draft: PledgeDraft | PledgeCreate, today: date
) -> PreparedPledge:
    """Check a draft against the template and dates; pure apart from its inputs."""
    template = _template(merchant.sector, draft.template_version)
    for code in draft.items:
        if not isinstance(code, str) or len(code) > 32:
            raise PledgeItemsInvalid(f"item codes are short strings, got {code!r}")
    try:
        validate_acceptance(template, draft.items)
    except InvalidPledgeAcceptance as exc:
        raise PledgeItemsInvalid(
            str(exc), missing=list(exc.missing), unknown=list(exc.unknown)
        ) from None
    accepted = set(draft.items)
    items = [code for code in template.codes if code in accepted]
    extra = clean_optional_text(
        draft.extra_commitments, field="extra_commitments", max_len=EXTRA_MAX, multiline=True
    )
    valid_from = draft.valid_from or today
    if valid_from != today:
        raise InvalidValidity(
            f"valid_from must be today ({today}, Asia/Shanghai); got {valid_from}"
        )
    latest = queries.add_months(valid_from, PLEDGE_MAX_MONTHS)
    valid_until = draft.valid_until or queries.add_months(valid_from, PLEDGE_VALIDITY_MONTHS)
    if not valid_from < valid_until <= latest:
        raise InvalidValidity(
            f"valid_until (exclusive) must be after {valid_from} and at most {latest}; "
            f"got {valid_until}"
        )
    return PreparedPledge(
        uscc=merchant.uscc,
        template=template,
        digest=template_digest(template),
        items=items,
        extra_commitments=extra,
        valid_from=valid_from,
        valid_until=valid_until,
    )


def pledge_made_body(
    *, pledge_id: str, prepared: PreparedPledge, signer: str | None, signature: str | None
) -> dict[str, Any]:
    return {
        "pledge_id": pledge_id,
        "template": {
            "sector": prepared.template.sector,
            "version": prepared.template.version,
            "digest": prepared.digest,
        },
        "items": prepared.items,
        "extra_commitments": prepared.extra_commitments,
        "valid_from": prepared.valid_from.isoformat(),
        "valid_until": prepared.valid_until.isoformat(),
        "signature": (
            {"scheme": "eip712", "signer": signer, "signature": signature}
            if signer and signature
            else None
        ),
    }


def award_body(*, on: date, valid_until: date) -> dict[str, Any]:
    return {"action": "award", "on": on.isoformat(), "valid_until": valid_until.isoformat()}


def award_withdrawal_body(*, on: date, reason: str) -> dict[str, Any]:
    return {"action": "withdraw", "on": on.isoformat(), "reason": reason}


def _own_merchant(
    session: Session, principal: Principal | None, uscc: str | None, *, lock: bool = False
) -> Merchant:
    p = require_role(principal, "merchant")
    assert p.merchant_uscc is not None
    if uscc is not None:
        wanted = merchants.parse_uscc(uscc)
        if wanted != p.merchant_uscc:
            raise NotOwnMerchant(
                f"account {p.username} belongs to merchant {p.merchant_uscc}, not {wanted}"
            )
    return merchants.get_merchant(session, p.merchant_uscc, lock=lock)


def typed_data_for(
    session: Session,
    *,
    principal: Principal | None,
    draft: PledgeDraft,
    now: datetime | None = None,
) -> TypedDataResponse:
    """The EIP-712 message the merchant's wallet signs for this draft."""
    merchant = _own_merchant(session, principal, None)
    today = queries.shanghai_date(now or queries.utcnow())
    prepared = prepare(merchant=merchant, draft=draft, today=today)
    return TypedDataResponse(
        typed_data=prepared.typed_data(),
        signer_must_be=merchants.current_wallet(session, merchant.uscc),
    )


def _check_signature(session: Session, prepared: PreparedPledge, signature: str) -> str:
    wallet = merchants.current_wallet(session, prepared.uscc)
    if wallet is None:
        raise NoWalletBound(
            f"merchant {prepared.uscc} has no wallet bound; bind one with "
            f"PUT /api/merchants/{prepared.uscc}/wallet before signing"
        )
    try:
        signer = eip712.recover_signer(prepared.typed_data(), signature)
    except eip712.InvalidSignature as exc:
        raise InvalidPledgeSignature(str(exc)) from None
    if signer != wallet:
        raise SignerMismatch(
            f"the signature is by {signer}, but the merchant's wallet is {wallet} "
            "(or the signed message differs from this pledge: see POST /api/pledges/typed-data)",
            recovered=signer,
            expected=wallet,
        )
    used = session.execute(
        select(col(Pledge.id)).where(col(Pledge.signature) == signature.strip().lower())
    ).first()
    if used is not None:
        raise SignatureAlreadyUsed(f"this signature already made pledge {used[0]}")
    return signer


def _pledge_written(
    session: Session, pledge: Pledge, *, record_id: str, leaf_index: int, today: date
) -> PledgeWritten:
    public = queries.to_public(
        session, pledge, today=today, merchant_verified=merchants.is_verified(session, pledge.uscc)
    )
    w = queries.written_record(session, record_id, leaf_index)
    return PledgeWritten(
        **public.model_dump(),
        record_id=w.record_id,
        leaf_index=w.leaf_index,
        anchor_status=w.anchor_status,
    )


def _replay(session: Session, prior: Mapping[str, Any], today: date) -> PledgeWritten:
    pledge = session.get(Pledge, prior["pledge_id"])
    assert pledge is not None  # a remembered result refers to a committed pledge
    return _pledge_written(
        session,
        pledge,
        record_id=prior["record_id"],
        leaf_index=int(prior["leaf_index"]),
        today=today,
    )


def make_pledge(
    session: Session,
    *,
    principal: Principal | None,
    data: PledgeCreate,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> tuple[PledgeWritten, bool]:
    """Make (or renew) the merchant's pledge. Returns the result and whether it
    is the replay of an earlier request with the same ``Idempotency-Key``."""
    # Locked: a concurrent pledge (or a retry with the same key) waits for this one.
    merchant = _own_merchant(session, principal, data.uscc, lock=True)
    assert principal is not None
    now = now or queries.utcnow()
    today = queries.shanghai_date(now)
    key = idempotency.validate_key(idempotency_key)
    digest = idempotency.request_sha256(data.model_dump(mode="json"))
    if key is not None:
        prior = idempotency.lookup(
            session, account_id=principal.account_id, scope="pledge.make", key=key, digest=digest
        )
        if prior is not None:
            return _replay(session, prior, today), True

    prepared = prepare(merchant=merchant, draft=data, today=today)
    signer = signature = None
    if data.signature:
        signer = _check_signature(session, prepared, data.signature)
        signature = data.signature.strip().lower()
    try:
        previous = queries.renewable_pledge(session, merchant.uscc)
        pledge_id = uuid.uuid4().hex
        rec = write(
            session,
            RecordDraft(
                type=PLEDGE_MADE,
                subject=merchant.uscc,
                actor=principal.actor,
                body=pledge_made_body(
                    pledge_id=pledge_id, prepared=prepared, signer=signer, signature=signature
                ),
                refs=(Ref("renews", previous.record_id),) if previous else (),
            ),
            now=now,
        ).one
        if key is not None:
            idempotency.remember(
                session,
                account_id=principal.account_id,
                scope="pledge.make",
                key=key,
                digest=digest,
                result={
                    "pledge_id": pledge_id,
                    "record_id": rec.record_id,
                    "leaf_index": rec.leaf_index,
                },
                now=now,
            )
        session.commit()
    except IntegrityError:
        session.rollback()
        if key is not None:
            prior = idempotency.lookup(
                session,
                account_id=principal.account_id,
                scope="pledge.make",
                key=key,
                digest=digest,
            )
            if prior is not None:
                return _replay(session, prior, today), True
        raise PledgeConflict(
            f"another pledge for {merchant.uscc} was made at the same moment; reload and retry"
        ) from None
    pledge = get_pledge_row(session, pledge_id)
    w = written(session, rec)
    return _pledge_written(
        session, pledge, record_id=w.record_id, leaf_index=w.leaf_index, today=today
    ), False


def get_pledge_row(session: Session, pledge_id: str) -> Pledge:
    pledge = session.get(Pledge, pledge_id) if len(pledge_id) <= 32 else None
    if pledge is None:
        raise PledgeNotFound(f"no pledge with id {pledge_id!r}")
    return pledge


def withdraw_pledge(
    session: Session,
    *,
    principal: Principal | None,
    pledge_id: str,
    reason: str,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> tuple[PledgeWritten, bool]:
    """The merchant withdraws its active pledge (a ``pledge.withdrawn`` record)."""
    require_role(principal, "merchant")
    assert principal is not None
    pledge = get_pledge_row(session, pledge_id)
    require_merchant_self(principal, pledge.uscc)
    merchants.get_merchant(session, pledge.uscc, lock=True)
    now = now or queries.utcnow()
    today = queries.shanghai_date(now)
    key = idempotency.validate_key(idempotency_key)
    digest = idempotency.request_sha256({"pledge_id": pledge_id, "reason": reason})
    if key is not None:
        prior = idempotency.lookup(
            session,
            account_id=principal.account_id,
            scope="pledge.withdraw",
            key=key,
            digest=digest,
        )
        if prior is not None:
            return _replay(session, prior, today), True
    text = clean_text(reason, field="reason", max_len=REASON_MAX, multiline=True)
    status = queries.pledge_status(session, pledge, today)
    if status != "active":
        raise PledgeNotActive(
            f"pledge {pledge_id} is {status}; only an active pledge can be withdrawn", status=status
        )
    try:
        rec = write(
            session,
            RecordDraft(
                type=PLEDGE_WITHDRAWN,
                subject=pledge.uscc,
                actor=principal.actor,
                body=withdrawal_body(pledge_id=pledge.id, withdrawn_on=today, reason=text),
                refs=(Ref("revokes", pledge.record_id),),
            ),
            now=now,
        ).one
        if key is not None:
            idempotency.remember(
                session,
                account_id=principal.account_id,
                scope="pledge.withdraw",
                key=key,
                digest=digest,
                result={
                    "pledge_id": pledge.id,
                    "record_id": rec.record_id,
                    "leaf_index": rec.leaf_index,
                },
                now=now,
            )
        session.commit()
    except IntegrityError:
        session.rollback()
        raise PledgeNotActive(f"pledge {pledge_id} was withdrawn at the same moment") from None
    w = written(session, rec)
    return _pledge_written(
        session, pledge, record_id=w.record_id, leaf_index=w.leaf_index, today=today
    ), False


def get_pledge(session: Session, *, pledge_id: str, today: date) -> PledgePublic:
    pledge = get_pledge_row(session, pledge_id)
    return queries.to_public(
        session, pledge, today=today, merchant_verified=merchants.is_verified(session, pledge.uscc)
    )


def list_pledges(session: Session, *, uscc: str, today: date) -> PledgeList:
    merchant = merchants.get_merchant(session, merchants.parse_uscc(uscc))
    verified = merchants.is_verified(session, merchant.uscc)
    rows = (
        session.execute(
            select(Pledge)
            .where(col(Pledge.uscc) == merchant.uscc)
            .order_by(col(Pledge.made_at).desc(), col(Pledge.leaf_index).desc())
        )
        .scalars()
        .all()
    )
    return PledgeList(
        uscc=merchant.uscc,
        items=[
            queries.to_public(session, p, today=today, merchant_verified=verified) for p in rows
        ],
    )


# --- demonstration units ------------------------------------------------------------------


def demonstration(
    session: Session,
    *,
    principal: Principal | None,
    uscc: str,
    action: DemonstrationAction,
    now: datetime | None = None,
) -> DemonstrationWritten:
    """A regulator awards or withdraws 示范单位 status."""
    p = require_role(principal, "regulator")
    merchant = merchants.get_merchant(session, merchants.parse_uscc(uscc), lock=True)
    now = now or queries.utcnow()
    today = queries.shanghai_date(now)
    on = action.on or today
    registered_on = queries.shanghai_date(merchant.registered_at)
    if not registered_on <= on <= today:
        raise InvalidDemonstrationAction(
            f"`on` ({on}) must lie between the registration ({registered_on}) and today ({today})"
        )
    current = queries.current_award(session, merchant.uscc, today)
    try:
        if action.action == "award":
            if action.reason is not None:
                raise InvalidDemonstrationAction("`reason` is only for a withdrawal")
            valid_until = action.valid_until or queries.add_months(
                on, DEMONSTRATION_VALIDITY_MONTHS
            )
            if valid_until <= today:
                raise InvalidDemonstrationAction(
                    f"valid_until (exclusive) must be after today ({today}); got {valid_until}"
                )
            validate_horizon(valid_until, field="valid_until", today=today)
            merchants.require_verified(session, merchant.uscc)  # 未核验: verify it first
            if queries.current_pledge(session, merchant.uscc, today) is None:
                raise NoActivePledge(
                    f"merchant {merchant.uscc} has no active pledge; a demonstration unit is "
                    "chosen from pledged merchants"
                )
            if current is not None:
                raise AlreadyDemonstrationUnit(
                    f"merchant {merchant.uscc} is already a demonstration unit until "
                    f"{current.valid_until} (award {current.id})"
                )
            rec = write(
                session,
                RecordDraft(
                    type=DEMONSTRATION,
                    subject=merchant.uscc,
                    actor=p.actor,
                    body=award_body(on=on, valid_until=valid_until),
                ),
                now=now,
            ).one
            award = session.get(DemonstrationAward, award_id_of(rec.record_id))
        else:
            if action.valid_until is not None:
                raise InvalidDemonstrationAction("`valid_until` is only for an award")
            if current is None:
                raise NotDemonstrationUnit(f"merchant {merchant.uscc} is not a demonstration unit")
            if on < current.awarded_on:
                raise InvalidDemonstrationAction(
                    f"`on` ({on}) is before the award ({current.awarded_on})"
                )
            reason = clean_text(
                action.reason or "", field="reason", max_len=REASON_MAX, multiline=True
            )
            award = current
            rec = write(
                session,
                RecordDraft(
                    type=DEMONSTRATION,
                    subject=merchant.uscc,
                    actor=p.actor,
                    body=award_withdrawal_body(on=on, reason=reason),
                    refs=(Ref("revokes", award.record_id),),
                ),
                now=now,
            ).one
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("the demonstration status changed at the same moment; retry") from None
    assert award is not None
    session.refresh(award)
    public = queries.award_public(session, award, today)
    w = written(session, rec)
    return DemonstrationWritten(
        **public.model_dump(),
        record_id=w.record_id,
        leaf_index=w.leaf_index,
        anchor_status=w.anchor_status,
    )


def list_demonstration_units(
    session: Session, *, limit: int, offset: int, today: date
) -> DemonstrationUnitList:
    clause = queries.active_award_clause(today)
    total = int(
        session.execute(
            select(func.count()).select_from(DemonstrationAward).where(clause)
        ).scalar_one()
    )
    awards = list(
        session.execute(
            select(DemonstrationAward)
            .where(clause)
            .order_by(col(DemonstrationAward.awarded_on).desc(), col(DemonstrationAward.uscc))
            .limit(limit)
            .offset(offset)
        ).scalars()
    )
    shops = merchant_queries.merchants_by_uscc(session, (a.uscc for a in awards))
    rows = [(a, shops[a.uscc]) for a in awards if a.uscc in shops]
    return DemonstrationUnitList(
        total=total,
        limit=limit,
        offset=offset,
        items=[
            DemonstrationUnitItem(
                uscc=m.uscc,
                name=m.name,
                sector=m.sector,
                region_code=m.region_code,
                awarded_on=a.awarded_on,
                valid_until=a.valid_until,
            )
            for a, m in rows
        ],
    )


def overview(session: Session, *, today: date) -> OverviewStats:
    units = queries.count_active_awards(session, today)
    return OverviewStats(
        as_of=today,
        merchants=merchant_queries.count_registered(session),
        verified_merchants=merchant_queries.count_verified(session),
        active_pledges=queries.count_active_pledges(session, today),
        demonstration_units=units,
        demonstration_targets=[
            _target(session, year, target, today=today, units_today=units)
            for year, target in DEMONSTRATION_TARGETS
        ],
    )


def _target(session: Session, year: int, target: int, *, today: date, units_today: int) -> Target:
    """A target against ``today``: once its year has ended it is judged by the units
    active on that year's last day, not shown as a goal still ahead."""
    past = today.year > year
    units = queries.count_active_awards(session, date(year, 12, 31)) if past else units_today
    return Target(by_year=year, target=target, reached=units >= target, past=past, units=units)


# --- the counter sign ------------------------------------------------------------------


class SignNotAvailable(NotFound):
    """No active pledge, so there is nothing to print."""


def sign_data(session: Session, *, settings: Settings, uscc: str, today: date) -> SignData:
    merchant = merchants.get_merchant(session, merchants.parse_uscc(uscc))
    merchants.require_verified(session, merchant.uscc)  # no sign before verification
    pledge = queries.current_pledge(session, merchant.uscc, today)
    if pledge is None:
        raise SignNotAvailable(
            f"merchant {merchant.uscc} has no active pledge, so there is no pledge sign to print"
        )
    template = _template(pledge.template_sector, pledge.template_version)
    texts = {i.code: i.text for i in template.items}
    return SignData(
        uscc=merchant.uscc,
        name=merchant.name,
        verified=merchants.is_verified(session, merchant.uscc),
        title=template.title,
        items=[texts[code] for code in pledge.items],
        extra_commitments=pledge.extra_commitments,
        valid_from=pledge.valid_from,
        valid_until=pledge.valid_until,
        record_id=pledge.record_id,
        url=merchants.public_url(settings, merchant.uscc),
        demonstration_unit=queries.current_award(session, merchant.uscc, today) is not None,
    )
