"""Rejecting or transferring a registration (issue 15 M5): a regulator's decision about a
registration of a code that is not the registrant's, recorded as ``merchant.rejected`` /
``merchant.transferred`` (never an edit). It sits above pledges because a rejection also
withdraws the registrant's active pledge in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from backend.accounts import security
from backend.accounts import service as accounts
from backend.accounts.service import (
    Principal,
    apply_new_password,
    one_time_password,
    require_role,
)
from backend.config import Settings
from backend.errors import ValidationFailed
from backend.ledger.records import RecordDraft, Ref
from backend.ledger.status import written
from backend.ledger.write import write
from backend.merchants import queries as merchant_queries
from backend.merchants.models import REASON_MAX, Merchant, RegistrationActionWritten
from backend.merchants.records import REF_OF, REJECTED, TRANSFERRED
from backend.merchants.service import (
    MerchantAlreadyVerified,
    MerchantNotFound,
    RegistrationAlreadyRejected,
    is_verified,
    parse_uscc,
)
from backend.merchants.text import clean_text
from backend.pledges import queries
from backend.pledges.records import PLEDGE_WITHDRAWN, withdrawal_body
from backend.timeutil import shanghai_date, utcnow


def _registration_action(
    session: Session,
    *,
    principal: Principal | None,
    uscc: str,
    reason: str,
) -> tuple[Principal, Merchant, str]:
    """The checks shared by reject and transfer: a regulator, a registration that is still
    in force, a reason."""
    p = require_role(principal, "regulator")
    code = parse_uscc(uscc)
    row = merchant_queries.lock_merchant(session, code)
    if row is None:
        raise MerchantNotFound(f"no merchant with credit code {code}")
    if row.rejected_by is not None:
        raise RegistrationAlreadyRejected(
            f"the registration of {code} was rejected already (record {row.rejected_by}); "
            "nothing to reject or transfer until the code is registered again"
        )
    if not reason.strip():
        raise ValidationFailed("reason must not be empty: say why", field="reason",
                               detail_zh="请填写理由。")
    return p, row, clean_text(reason, field="reason", max_len=REASON_MAX).strip()


def _decision_draft(
    record_type: str, merchant: Merchant, p: Principal, reason: str
) -> RecordDraft:
    """``merchant.rejected`` / ``merchant.transferred``: the reason, and a ref to the
    registration it is about."""
    return RecordDraft(
        type=record_type,
        subject=merchant.uscc,
        actor=p.actor,
        body={"reason": reason},
        refs=(Ref(REF_OF[record_type], merchant.record_id),),
    )


def _action_written(
    session: Session, merchant: Merchant, rec: Any, action: str, password: str | None = None
) -> RegistrationActionWritten:
    w = written(session, rec)
    return RegistrationActionWritten(
        uscc=merchant.uscc,
        action=action,  # type: ignore[arg-type]
        registration_record_id=merchant.record_id,
        record_id=w.record_id,
        leaf_index=w.leaf_index,
        anchor_status=w.anchor_status,
        one_time_password=password,
    )


def reject_registration(
    session: Session,
    *,
    principal: Principal | None,
    uscc: str,
    reason: str,
    now: datetime | None = None,
) -> RegistrationActionWritten:
    """A regulator rejects a registration of a code that is not the registrant's
    (``merchant.rejected``, referring to the registration). Only an unverified registration
    can be rejected (a verified one is transferred). With it: the registrant's active pledge
    is withdrawn (``pledge.withdrawn``, same transaction), its merchant account is
    disabled, and the code is free for its owner to register."""
    p, merchant, text = _registration_action(
        session, principal=principal, uscc=uscc, reason=reason
    )
    if is_verified(session, merchant.uscc):
        raise MerchantAlreadyVerified(
            f"merchant {merchant.uscc} is verified; a verified registration is not rejected: "
            "transfer it to the rightful owner instead"
        )
    now = now or utcnow()
    today = shanghai_date(now)
    drafts = [_decision_draft(REJECTED, merchant, p, text)]
    pledge = queries.current_pledge(session, merchant.uscc, today)
    if pledge is not None:
        drafts.append(
            RecordDraft(
                type=PLEDGE_WITHDRAWN,
                subject=merchant.uscc,
                actor=p.actor,
                body=withdrawal_body(
                    pledge_id=pledge.id, withdrawn_on=today, reason="登记被监管部门驳回：" + text
                ),
                refs=(Ref("revokes", pledge.record_id),),
            )
        )
    rec = write(session, drafts, now=now).records[0]
    account = accounts.get_account_of_merchant(session, merchant.uscc)
    if account is not None:
        account.disabled = True
        account.token_version = account.token_version + 1
    out = _action_written(session, merchant, rec, "rejected")
    session.commit()
    return out


def transfer_registration(
    session: Session,
    *,
    settings: Settings,
    principal: Principal | None,
    uscc: str,
    reason: str,
    now: datetime | None = None,
) -> RegistrationActionWritten:
    """A regulator hands a registration to the code's rightful owner (``merchant.transferred``,
    referring to the registration): the merchant account gets a fresh one-time password
    (in the answer, once; never recorded) for the regulator to give the owner, and the
    previous registrant's password, tokens and sessions stop working."""
    _registration_action(session, principal=principal, uscc=uscc, reason=reason)
    session.rollback()  # hash outside the write transaction: Argon2 takes a while
    password = one_time_password()
    password_hash = security.hash_password(password, env=settings.env)
    p, merchant, text = _registration_action(
        session, principal=principal, uscc=uscc, reason=reason
    )
    account = accounts.get_account_of_merchant(session, merchant.uscc)
    if account is None:  # (registrations always come with their account)
        raise MerchantNotFound(f"merchant {merchant.uscc} has no account to transfer")
    now = now or utcnow()
    rec = write(session, _decision_draft(TRANSFERRED, merchant, p, text), now=now).one
    apply_new_password(account, password_hash, one_time=True)
    account.disabled = False
    out = _action_written(session, merchant, rec, "transferred", password)
    session.commit()
    return out
