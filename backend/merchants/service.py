"""The merchant registry's rules: registration, verification, wallet, search.

Registration creates the merchant, its ``merchant.registered`` record and its
merchant account in one transaction. The record carries the public fields and
only a salted digest of the contact data:
``contact_digest = SHA-256(salt || RFC8785({"contact_person": p, "contact_phone": t}))``
with the 16-byte salt kept (hex) in the private ``merchant.contact_salt``, so
that the registry can later show which contact data was registered without
the log ever disclosing it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from eth_utils import is_address, is_checksum_address, to_checksum_address
from sqlalchemy import false, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from backend.accounts import ratelimit, security
from backend.accounts import service as accounts
from backend.accounts.service import (
    NotOwnMerchant,
    Principal,
    RoleNotPermitted,
    apply_new_password,
    new_account,
    require_merchant_self,
    require_role,
    to_public,
    validate_password,
)
from backend.config import Settings
from backend.errors import Conflict, NotFound, ValidationFailed
from backend.ledger import log
from backend.ledger.records import Actor, RecordDraft, Ref
from backend.ledger.status import (
    AnchorStatus,
    WrittenRecord,
    anchor_status,
    written,
)
from backend.ledger.write import write
from backend.merchants import reference
from backend.merchants import search as search_index
from backend.merchants.models import (
    ADDRESS_MAX,
    CONTACT_PERSON_MAX,
    NAME_MAX,
    QUERY_MAX,
    Merchant,
    MerchantCreate,
    MerchantRegistration,
    MerchantSuggestion,
    MerchantSuggestions,
    MerchantVerification,
    MerchantWallet,
    VerificationPublic,
    VerificationWritten,
)
from backend.merchants.records import (
    AFTER_REJECTION,
    REGISTERED,
    VERIFIED,
    WALLET_BOUND,
    contact_digest,
)
from backend.merchants.text import clean_text
from backend.timeutil import shanghai_date, utcnow
from backend.uscc import InvalidUSCC, validate_uscc

SEARCH_LIMIT_MAX = 100
_PHONE = re.compile(r"\+?[0-9][0-9 ()\-]{4,30}")


class InvalidCreditCode(ValidationFailed):
    """Not a well-formed 统一社会信用代码; ``rule`` names the check that failed."""


class UnknownSector(ValidationFailed):
    pass


class UnknownRegion(ValidationFailed):
    pass


class UnknownSubArea(ValidationFailed):
    pass


class InvalidPhone(ValidationFailed):
    pass


class InvalidWalletAddress(ValidationFailed):
    pass


class InvalidDate(ValidationFailed):
    pass


class MerchantAlreadyRegistered(Conflict):
    pass


class MerchantAlreadyVerified(Conflict):
    pass


class MerchantNotFound(NotFound):
    pass


class MerchantNotVerified(Conflict):
    """The registration has not been verified by a regulator: no tier, no sign yet."""


class RegistrationAlreadyRejected(Conflict):
    pass


UNVERIFIED_ZH = "待核验：登记信息尚未经监管部门核验"
UNVERIFIED_DETAIL_ZH = (
    UNVERIFIED_ZH
    + "。核验前不显示计量信用等级，也不提供承诺牌；如果您是该经营者，请联系监管部门核验。"
)


# --- validation -----------------------------------------------------------------


def parse_uscc(raw: str) -> str:
    """The normalised credit code, or :class:`InvalidCreditCode` naming the rule."""
    try:
        return validate_uscc(raw)
    except InvalidUSCC as exc:
        extra = {"rule": exc.rule}
        if exc.position is not None:
            extra["position"] = exc.position  # type: ignore[assignment]
        if exc.expected is not None:
            extra["expected"] = exc.expected
        raise InvalidCreditCode(f"credit code rule '{exc.rule}' failed: {exc}", **extra) from None


def parse_sector(code: str) -> str:
    try:
        return reference.validate_sector(code)
    except ValueError as exc:
        raise UnknownSector(str(exc)) from None


def parse_region(code: str) -> str:
    try:
        return reference.validate_region(code)
    except ValueError as exc:
        raise UnknownRegion(str(exc)) from None


def parse_sub_area(code: str | None) -> str | None:
    try:
        return reference.validate_sub_area(code or None)
    except ValueError as exc:
        raise UnknownSubArea(str(exc)) from None


def parse_wallet(raw: str | None) -> str | None:
    """A checksummed address; all-lower/upper-case input is accepted, a
    mixed-case one must carry a correct EIP-55 checksum (a typo guard)."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if not is_address(text):
        raise InvalidWalletAddress(f"{text!r} is not an Ethereum address (0x + 40 hex digits)")
    body = text[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(text):
        raise InvalidWalletAddress(f"{text!r} has a wrong EIP-55 checksum; check for a typo")
    return str(to_checksum_address(text))


def parse_phone(raw: str) -> str:
    text = clean_text(raw, field="contact_phone", max_len=32).strip()
    if not _PHONE.fullmatch(text):
        raise InvalidPhone(
            f"contact_phone {raw!r} is not a phone number (digits, spaces, + - ( ) allowed)"
        )
    return text


def registration_body(merchant: Merchant) -> dict[str, object]:
    return {
        "uscc": merchant.uscc,
        "name": merchant.name,
        "sector": merchant.sector,
        "region_code": merchant.region_code,
        "sub_area": merchant.sub_area,
        "address": merchant.address,
        "contact_digest": contact_digest(
            merchant.contact_salt, person=merchant.contact_person, phone=merchant.contact_phone
        ),
    }


def verification_body(verified_on: date) -> dict[str, object]:
    return {"verified_on": verified_on.isoformat()}


def wallet_draft(uscc: str, address: str, actor: Actor) -> RecordDraft:
    """``merchant.wallet_bound``: the wallet whose signatures the pledges may carry."""
    return RecordDraft(type=WALLET_BOUND, subject=uscc, actor=actor, body={"address": address})


# --- reads ------------------------------------------------------------------------


def get_merchant(session: Session, uscc: str, *, lock: bool = False) -> Merchant:
    """The merchant row; with ``lock``, locked until commit (PostgreSQL; SQLite's
    write transactions are serialised already), so that writes about one merchant
    that read its current state (pledges, awards) take turns."""
    merchant = session.get(Merchant, uscc, with_for_update=lock or None)
    if merchant is None or merchant.rejected_by is not None:
        raise MerchantNotFound(f"no merchant with credit code {uscc}")
    return merchant


def is_verified(session: Session, uscc: str) -> bool:
    return session.get(MerchantVerification, uscc) is not None


def require_verified(session: Session, uscc: str) -> None:
    """Refuse (409 :class:`MerchantNotVerified`) what only a verified registration gets:
    its tier and its printable pledge sign. Until a regulator verifies it (the
    ``merchant.verified`` record), anyone could have registered someone else's code."""
    if not is_verified(session, uscc):
        raise MerchantNotVerified(
            f"the registration of {uscc} has not been verified by a regulator yet; its tier "
            "and pledge sign are withheld until it is",
            verification="unverified",
            tier=None,
            detail_zh=UNVERIFIED_DETAIL_ZH,
        )


def current_wallet(session: Session, uscc: str) -> str | None:
    return current_wallets(session, [uscc]).get(uscc)


def current_wallets(session: Session, usccs: Sequence[str]) -> dict[str, str]:
    """The bound wallet of each merchant that has one (its newest binding)."""
    newest = (
        select(func.max(col(MerchantWallet.id)))
        .where(col(MerchantWallet.uscc).in_(usccs))
        .group_by(col(MerchantWallet.uscc))
    )
    rows = session.execute(
        select(col(MerchantWallet.uscc), col(MerchantWallet.address)).where(
            col(MerchantWallet.id).in_(newest)
        )
    )
    return {u: a for u, a in rows}


def verification_public(session: Session, row: MerchantVerification | None) -> VerificationPublic:
    if row is None:
        return VerificationPublic(status="unverified", label="未核验")
    return verification_of(row, anchor_status(session, row.leaf_index))


def public_url(settings: Settings, uscc: str) -> str:
    return f"{settings.base_url}/merchants/{uscc}"


def verification_of(row: MerchantVerification, status: AnchorStatus) -> VerificationPublic:
    return VerificationPublic(
        status="verified",
        label="已核验",
        verified_on=row.verified_on,
        record=WrittenRecord(
            record_id=row.record_id, leaf_index=row.leaf_index, anchor_status=status
        ),
    )


FOUND_COLUMNS = (
    col(Merchant.uscc), col(Merchant.name), col(Merchant.sector), col(Merchant.region_code),
    col(Merchant.sub_area),
)
"""What a search result shows of a merchant (``find``'s rows have these attributes)."""


def find(
    session: Session, text: str, conditions: list[Any], *, limit: int, offset: int,
    count: bool = True,
) -> tuple[Sequence[Any], int]:
    """One page of the merchants matching ``text`` and ``conditions`` (rows of
    :data:`FOUND_COLUMNS`, best first), and how many match (with ``count``; otherwise
    how many are on the page). One query: the page and, with ``count``, the number of
    matches as a window over them. A credit-code start that some code has is answered
    from the primary key alone; anything else from the trigram index, first exactly,
    then (for a code fragment) with one character wrong (:func:`find_steps`)."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    for step in find_steps(text, conditions, sqlite=sqlite):
        statement = paged(step, FOUND_COLUMNS, limit=limit, offset=offset, count=count)
        rows = session.execute(statement).all()
        if rows or step.last:
            total = found_total(rows, count=count, offset=offset)
            if total is None:  # past the last page: the window had no row to ride on
                total = int(session.execute(step.count()).scalar_one())
            return rows, total
    return [], 0


@dataclass(frozen=True)
class FindStep:
    """One lookup :func:`find` tries: the matching merchants (``where``, over
    ``merchant`` joined to what ``source`` names) in the order ``order``."""

    source: Any
    where: list[Any]
    order: list[Any]
    last: bool
    """Answer with this step even when it finds nothing (no later step would)."""

    def count(self) -> Any:
        return select(func.count()).select_from(self.source).where(*self.where)


def find_steps(text: str, conditions: list[Any], *, sqlite: bool) -> Iterator[FindStep]:
    """The lookups for ``text`` in the order they are tried; the first that finds
    anything answers."""
    merchant = Merchant.__table__  # type: ignore[attr-defined]
    if not text:
        yield FindStep(merchant, conditions, [col(Merchant.uscc)], last=True)
        return
    code = search_index.code_of(text)
    if code is not None:
        # The start of a credit code: a range of the primary key's B-tree, in code order
        # (every code character sorts below '~'). Codes that start so come first anyway.
        yield FindStep(
            merchant,
            [col(Merchant.uscc) >= code, col(Merchant.uscc) < code + "~", *conditions],
            [col(Merchant.uscc)],
            last=False,
        )
    plans = [search_index.plan(text), search_index.plan(text, fuzzy_code=True)]
    steps = [p for p in plans if p is not None]
    for i, how in enumerate(steps):
        source, where = search_index.found_from(how, sqlite=sqlite)
        yield FindStep(
            source, [*where, *conditions], [*how.rank, col(Merchant.uscc)],
            last=i == len(steps) - 1,
        )
    if not steps:
        yield FindStep(merchant, [false()], [col(Merchant.uscc)], last=True)


def paged(
    step: FindStep, columns: Sequence[Any], *, limit: int, offset: int, count: bool
) -> Any:
    """The statement of one page of ``step``'s matches: ``columns`` and, with ``count``,
    ``total`` (the number of matches, a window over them), best first."""
    totals = [func.count().over().label("total")] if count else []
    found = select(*columns, *totals).select_from(step.source).where(*step.where)
    return found.order_by(*step.order).limit(limit).offset(offset)


def found_total(rows: Sequence[Any], *, count: bool, offset: int) -> int | None:
    """How many match, from a page's rows; ``None`` when it takes a count (a page past
    the last one, which has no row to carry the window)."""
    if not count:
        return len(rows)
    if rows:
        return int(rows[0].total)
    return 0 if offset == 0 else None


SUGGESTIONS = 8


def suggest(session: Session, *, q: str | None) -> MerchantSuggestions:
    """The few best matches for what has been typed so far (:func:`search`'s lookup)."""
    if q is None or not q.strip():
        return MerchantSuggestions(items=[])
    text = clean_text(q, field="q", max_len=QUERY_MAX).strip()
    # A rejected registration is shown as no merchant.
    rows, _ = find(
        session, text, [col(Merchant.rejected_by).is_(None)], limit=SUGGESTIONS, offset=0,
        count=False,
    )
    return MerchantSuggestions(
        items=[
            MerchantSuggestion(
                uscc=m.uscc, name=m.name, region_name=reference.DIVISIONS[m.region_code]
            )
            for m in rows
        ]
    )


# --- writes -----------------------------------------------------------------------


def _registration_actor(principal: Principal | None) -> None:
    """Who may register: the public (self-registration) and regulators (assisted)."""
    if principal is None or principal.role == "regulator":
        return
    if principal.role == "merchant":
        raise NotOwnMerchant(
            f"account {principal.username} already belongs to merchant "
            f"{principal.merchant_uscc} and cannot register another merchant"
        )
    raise RoleNotPermitted("admins manage accounts; a merchant registers itself or via a regulator")


def register_merchant(
    session: Session,
    *,
    settings: Settings,
    data: MerchantCreate,
    principal: Principal | None,
    address: str | None,
    now: datetime | None = None,
) -> MerchantRegistration:
    """Register an unverified merchant with its merchant account."""
    _registration_actor(principal)
    now = now or utcnow()
    uscc = parse_uscc(data.uscc)
    name = clean_text(data.name, field="name", max_len=NAME_MAX)
    sector = parse_sector(data.sector)
    region = parse_region(data.region_code)
    sub_area = parse_sub_area(data.sub_area)
    addr = clean_text(data.address, field="address", max_len=ADDRESS_MAX)
    person = clean_text(data.contact_person, field="contact_person", max_len=CONTACT_PERSON_MAX)
    phone = parse_phone(data.contact_phone)
    wallet = parse_wallet(data.wallet_address)
    validate_password(data.password, username=uscc)

    if principal is None:
        # Taken and committed before the hash: a concurrent burst cannot outrun it.
        ratelimit.take(
            session,
            key=ratelimit.registration_key(address),
            limit=ratelimit.ADDRESS_REGISTRATION,
            now=now,
            what="registrations from this address",
        )
        session.commit()
    _rejected_before(session, uscc)
    # Hash outside the write transaction: Argon2 takes a while, the lock should not.
    session.rollback()
    password_hash = security.hash_password(data.password, env=settings.env)

    try:
        earlier = _rejected_before(session, uscc)
        merchant = Merchant(
            uscc=uscc,
            name=name,
            sector=sector,
            region_code=region,
            sub_area=sub_area,
            address=addr,
            contact_person=person,
            contact_phone=phone,
            contact_salt=secrets.token_hex(16),
            registered_at=now,
            record_id="",
            leaf_index=-1,
        )
        # Self-registration is an act of the public: the account only exists after it.
        actor = principal.actor if principal is not None else Actor("public", None)
        registration = log.seal(
            RecordDraft(
                type=REGISTERED,
                subject=uscc,
                actor=actor,
                body=registration_body(merchant),
                refs=(
                    (Ref(AFTER_REJECTION, earlier.rejected_by),)
                    if earlier is not None and earlier.rejected_by
                    else ()
                ),
            ),
            at=now,
        )
        drafts = [registration]
        if wallet is not None:
            drafts.append(log.seal(wallet_draft(uscc, wallet, actor), at=now))
        # The merchant row is the registration's projection, rated from the start by
        # the write path's re-rating; the contact is private, beside the record.
        private = {
            registration.record_id: {
                "contact_person": person,
                "contact_phone": phone,
                "contact_salt": merchant.contact_salt,
            }
        }
        rec = write(session, drafts, now=now, private=private).records[0]
        account = accounts.get_account_of_merchant(session, uscc) if earlier is not None else None
        if account is not None:
            # The code's account, disabled with the rejected registration, is the owner's now.
            apply_new_password(account, password_hash, one_time=False)
            account.disabled = False
        else:
            account = new_account(
                session,
                username=uscc,
                role="merchant",
                password_hash=password_hash,
                merchant_uscc=uscc,
                now=now,
            )
        session.commit()
    except IntegrityError:
        session.rollback()
        raise MerchantAlreadyRegistered(
            f"a merchant with credit code {uscc} is already registered"
        ) from None
    return MerchantRegistration(
        uscc=uscc, record=written(session, rec), account=to_public(account)
    )


def _rejected_before(session: Session, uscc: str) -> Merchant | None:
    """The code's earlier, rejected registration (``None`` if there is none); refuses a
    code that is registered now."""
    row = session.get(Merchant, uscc)
    if row is not None and row.rejected_by is None:
        raise MerchantAlreadyRegistered(f"a merchant with credit code {uscc} is already registered")
    return row


def verify_merchant(
    session: Session,
    *,
    principal: Principal | None,
    uscc: str,
    verified_on: date | None,
    now: datetime | None = None,
) -> VerificationWritten:
    """A regulator confirms a registration (once); appends ``merchant.verified``."""
    p = require_role(principal, "regulator")
    now = now or utcnow()
    today = shanghai_date(now)
    merchant = get_merchant(session, parse_uscc(uscc))
    on = verified_on or today
    registered_on = shanghai_date(merchant.registered_at)
    if not registered_on <= on <= today:
        raise InvalidDate(
            f"verified_on {on} must lie between the registration ({registered_on}) and today "
            f"({today})"
        )
    if session.get(MerchantVerification, merchant.uscc) is not None:
        raise MerchantAlreadyVerified(f"merchant {merchant.uscc} is already verified")
    rec = write(
        session,
        RecordDraft(
            type=VERIFIED,
            subject=merchant.uscc,
            actor=p.actor,
            body=verification_body(on),
            refs=(Ref("verifies", merchant.record_id),),
        ),
        now=now,
    ).one
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise MerchantAlreadyVerified(f"merchant {merchant.uscc} is already verified") from None
    row = session.get(MerchantVerification, merchant.uscc)
    assert row is not None  # projected by backend/merchants/records.py
    w = written(session, rec)
    return VerificationWritten(
        uscc=merchant.uscc,
        verification=verification_public(session, row),
        record_id=w.record_id,
        leaf_index=w.leaf_index,
        anchor_status=w.anchor_status,
    )


def bind_wallet(
    session: Session,
    *,
    principal: Principal | None,
    uscc: str,
    address: str,
    now: datetime | None = None,
) -> str:
    """The merchant binds (or changes) the wallet its pledge signatures come
    from. Earlier signed pledges keep their signer, recorded in their record.
    Returns the merchant's credit code."""
    code = parse_uscc(uscc)
    p = require_merchant_self(principal, code)
    get_merchant(session, code)
    wallet = parse_wallet(address)
    if wallet is None:
        raise InvalidWalletAddress("address must not be empty")
    now = now or utcnow()
    if current_wallet(session, code) != wallet:
        write(session, wallet_draft(code, wallet, p.actor), now=now)
        session.commit()
    return code
