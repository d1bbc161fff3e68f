"""Accounts: creation, login (rate-limited), tokens, and who is asking.

A merchant account is created together with its merchant by
``backend.merchants.service.register_merchant`` (:func:`new_account` adds the
row in that transaction); staff accounts come from the ``create-user``
command or an admin. Services elsewhere receive a :class:`Principal` and
decide with it; nothing outside this package reads a token.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from backend.accounts import ratelimit, records, security
from backend.accounts.models import (
    ROLES,
    STAFF_ROLES,
    USERNAME_MAX,
    Account,
    AccountActionKind,
    AccountActionWritten,
    AccountList,
    AccountPublic,
    AccountStatus,
    RevokedToken,
    Role,
)

# Re-exported: the one password rule (backend/accounts/passwords.py).
from backend.accounts.passwords import WeakPassword as WeakPassword
from backend.accounts.passwords import password_problem
from backend.accounts.passwords import validate_password as validate_password
from backend.config import Settings
from backend.db import Database, upsert
from backend.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from backend.ledger.records import SYSTEM, Actor, RecordDraft
from backend.ledger.status import written
from backend.ledger.write import write
from backend.uscc import is_valid_uscc, normalize_uscc


class NotAuthenticated(Unauthorized):
    """No credentials were given where they are needed."""

    headers = {"WWW-Authenticate": "Bearer"}


class InvalidCredentials(Unauthorized):
    headers = {"WWW-Authenticate": "Bearer"}


class InvalidToken(Unauthorized):
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class RoleNotPermitted(Forbidden):
    pass


class NotOwnMerchant(Forbidden):
    """A merchant account acting on another merchant."""


class CsrfFailed(Forbidden):
    pass


class UsernameTaken(Conflict):
    pass


class InvalidUsername(ValidationFailed):
    pass


class AccountNotFound(NotFound):
    pass


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as every service sees it."""

    account_id: int
    username: str
    role: Role
    merchant_uscc: str | None
    via_cookie: bool = False
    session_jti: str | None = None
    # The token this request came with (for logout): its id and expiry (epoch seconds).
    token_jti: str | None = None
    token_expires_at: int | None = None

    @property
    def actor(self) -> Actor:
        return Actor(self.role, str(self.account_id))

    def public(self) -> AccountPublic:
        return AccountPublic(
            id=self.account_id,
            username=self.username,
            role=self.role,
            merchant_uscc=self.merchant_uscc,
        )


def utcnow() -> datetime:
    return datetime.now(UTC)


_STAFF_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def normalize_username(raw: str) -> str:
    """Merchants log in with their credit code (any case, spaces trimmed);
    staff user names are lower case."""
    text = raw.strip()
    code = normalize_uscc(text)
    return code if is_valid_uscc(code) else text.lower()


def validate_staff_username(raw: str) -> str:
    name = normalize_username(raw)
    if is_valid_uscc(name):
        raise InvalidUsername(
            f"user name {name!r} is a credit code; those are reserved for merchant accounts"
        )
    if not (1 <= len(name) <= USERNAME_MAX) or not _STAFF_NAME.fullmatch(name):
        raise InvalidUsername(
            f"user name must be 1-{USERNAME_MAX} characters a-z, 0-9, '.', '_' or '-', "
            f"starting with a letter or digit; got {raw!r}"
        )
    return name


def new_account(
    session: Session,
    *,
    username: str,
    role: Role,
    password_hash: str,
    merchant_uscc: str | None,
    now: datetime,
) -> Account:
    """Add an account row in the caller's transaction (the caller commits)."""
    if role not in ROLES:
        raise ValidationFailed(f"unknown role {role!r}; allowed: {', '.join(ROLES)}")
    if (role == "merchant") != (merchant_uscc is not None):
        raise ValidationFailed("a merchant account needs exactly one merchant; staff none")
    taken = session.execute(
        select(col(Account.id)).where(col(Account.username) == username)
    ).scalar_one_or_none()
    if taken is not None:
        raise UsernameTaken(f"user name {username!r} is already taken")
    account = Account(
        username=username,
        role=role,
        merchant_uscc=merchant_uscc,
        password_hash=password_hash,
        created_at=now,
    )
    session.add(account)
    session.flush()
    return account


def to_public(account: Account) -> AccountPublic:
    assert account.id is not None
    return AccountPublic(
        id=account.id,
        username=account.username,
        role=account.role,  # type: ignore[arg-type]
        merchant_uscc=account.merchant_uscc,
    )


class InvalidRole(ValidationFailed):
    pass


def create_staff_account(
    session: Session,
    *,
    settings: Settings,
    username: str,
    password: str,
    role: str,
    principal: Principal | None = None,
    now: datetime | None = None,
) -> AccountPublic:
    """A regulator or admin account, recorded as ``account.created``. ``principal``: the
    admin who creates it (``None``: the ``create-user`` command on the server)."""
    if principal is not None:
        require_role(principal, "admin")
    if role not in STAFF_ROLES:
        raise InvalidRole(f"staff role must be one of {', '.join(STAFF_ROLES)}, got {role!r}")
    name = validate_staff_username(username)
    validate_password(password, username=name)
    password_hash = security.hash_password(password, env=settings.env)
    now = now or utcnow()
    try:
        account = new_account(
            session,
            username=name,
            role=role,  # type: ignore[arg-type]
            password_hash=password_hash,
            merchant_uscc=None,
            now=now,
        )
        assert account.id is not None
        actor = principal.actor if principal is not None else SYSTEM
        _record(session, "created", actor=actor, account_id=account.id, role=role, now=now)
        session.commit()
    except IntegrityError:
        session.rollback()
        raise UsernameTaken(f"user name {name!r} is already taken") from None
    return to_public(account)


def authenticate(
    session: Session,
    *,
    settings: Settings,
    username: str,
    password: str,
    address: str | None,
    now: datetime | None = None,
) -> Account:
    """The account for these credentials, or :class:`InvalidCredentials`.

    A failed-login slot is taken (per address, account and the pair of them;
    ``backend/accounts/ratelimit.py``) and committed before the password is
    checked, so concurrent attempts cannot outrun the limit; a success gives it back.
    """
    now = now or utcnow()
    name = normalize_username(username)
    slot = ratelimit.take_login_slot(session, username=name, address=address, now=now)
    row = session.execute(select(Account).where(col(Account.username) == name)).scalars().first()
    account_id = row.id if row is not None else None
    stored = row.password_hash if row is not None else security.dummy_hash(settings.env)
    disabled = row.disabled if row is not None else True
    # Commit the slot, and end the (write) transaction while Argon2 runs, so logins
    # do not queue on the lock.
    session.commit()
    ok = security.verify_password(stored, password, env=settings.env)
    ok = ok and account_id is not None and not disabled
    if not ok:
        raise InvalidCredentials("user name or password is wrong")
    ratelimit.login_succeeded(session, slot)
    account = session.get(Account, account_id)
    if account is None:  # deleted meanwhile
        session.commit()
        raise InvalidCredentials("user name or password is wrong")
    if security.needs_rehash(account.password_hash, env=settings.env):
        account.password_hash = security.hash_password(password, env=settings.env)
    session.commit()
    return account


def issue_token(
    settings: Settings, account: Account, *, kind: security.TokenKind, now: datetime | None = None
) -> tuple[str, security.TokenClaims]:
    assert account.id is not None
    return security.issue_token(
        security.load_secret(settings),
        account_id=account.id,
        role=account.role,
        password_hash=account.password_hash,
        kind=kind,
        now=now or utcnow(),
        ttl_s=settings.token_ttl_s,
        version=account.token_version,
    )


# The account as it is now and whether this token was revoked: one query (by two
# primary keys), since it runs on every authenticated request.
_ACCOUNT_NOW = select(
    col(Account.username),
    col(Account.role),
    col(Account.merchant_uscc),
    col(Account.password_hash),
    col(Account.disabled),
    col(Account.token_version),
    exists()
    .where(col(RevokedToken.jti) == bindparam("jti"))
    .label("revoked"),
).where(col(Account.id) == bindparam("id"))


async def principal_from_token_async(
    db: Database,
    *,
    settings: Settings,
    token: str,
    kind: security.TokenKind,
    now: datetime | None = None,
) -> Principal:
    """The caller a token names: its MAC, kind and expiry checked, and its account still
    as it was when the token was issued (enabled, same role, same password). Runs on
    every authenticated request, so the account is read with one quick query, awaited
    on the event loop (``Database.quick_read_async``)."""
    claims = _claims(settings, token, kind, now)
    rows = await db.quick_read_async(_ACCOUNT_NOW, {"id": claims.account_id, "jti": claims.jti})
    return _principal(claims, kind, rows)


def _claims(
    settings: Settings, token: str, kind: security.TokenKind, now: datetime | None
) -> security.TokenClaims:
    try:
        return security.decode_token(
            security.load_secret(settings), token, kind=kind, now=now or utcnow()
        )
    except security.TokenInvalid as exc:
        raise InvalidToken(str(exc)) from None


def _principal(
    claims: security.TokenClaims, kind: security.TokenKind, rows: Sequence[Any]
) -> Principal:
    account = rows[0] if rows else None
    if account is not None and account.disabled:
        raise InvalidToken("this account has been disabled by the staff; it cannot be used")
    if account is not None and (account.revoked or account.token_version != claims.version):
        raise InvalidToken("this token or session was ended by a logout; log in again")
    if (
        account is None
        or account.disabled
        or account.role != claims.role
        or security.password_fingerprint(account.password_hash) != claims.password_fp
    ):
        raise InvalidToken("token is no longer valid (account changed); log in again")
    return Principal(
        account_id=claims.account_id,
        username=account.username,
        role=account.role,
        merchant_uscc=account.merchant_uscc,
        via_cookie=kind == "session",
        session_jti=claims.jti if kind == "session" else None,
        token_jti=claims.jti,
        token_expires_at=claims.expires_at,
    )


def logout(
    session: Session, *, principal: Principal, everywhere: bool = False, now: datetime | None = None
) -> None:
    """End the token or browser session this request came with; with ``everywhere``,
    every token and session of the account (its token version goes up by one).

    Revoked ids are kept until their token would have expired anyway; expired ones
    are dropped here, so the list stays as short as the logouts of one token lifetime.
    """
    now_s = int((now or utcnow()).timestamp())
    if everywhere:
        session.execute(
            update(Account)
            .where(col(Account.id) == principal.account_id)
            .values(token_version=col(Account.token_version) + 1)
        )
    elif principal.token_jti is not None and principal.token_expires_at is not None:
        upsert(
            session,
            RevokedToken.__table__,  # type: ignore[attr-defined]
            [{"jti": principal.token_jti, "expires_at": principal.token_expires_at}],
            key=["jti"],
            update=["expires_at"],
        )
    session.execute(delete(RevokedToken).where(col(RevokedToken.expires_at) < now_s))
    session.commit()


def change_password(
    session: Session,
    *,
    settings: Settings,
    principal: Principal,
    current_password: str,
    new_password: str,
    address: str | None,
    now: datetime | None = None,
) -> AccountPublic:
    """Set a new password; every token issued before stops working.

    Checking the current password is a login attempt: it takes the same rate-limit
    slots, so a stolen session cannot be used to guess the password without limit."""
    now = now or utcnow()
    # The rule first: a new password that cannot be used costs no login attempt.
    validate_password(new_password, username=principal.username)
    slot = ratelimit.take_login_slot(
        session, username=principal.username, address=address, now=now
    )
    account = session.get(Account, principal.account_id)
    if account is None:
        raise AccountNotFound(f"no account {principal.account_id}")
    stored = account.password_hash
    session.commit()
    if not security.verify_password(stored, current_password, env=settings.env):
        raise InvalidCredentials("current password is wrong")
    ratelimit.login_succeeded(session, slot)
    session.commit()
    new_hash = security.hash_password(new_password, env=settings.env)
    account = session.get(Account, principal.account_id)
    assert account is not None
    account.password_hash = new_hash
    account.must_change_password = False
    session.commit()
    return to_public(account)


HOMES: dict[str, str] = {"merchant": "/merchant", "regulator": "/regulator", "admin": "/admin"}


def home_path(role: str) -> str:
    """The page each role lands on after logging in."""
    return HOMES.get(role, "/")


def require_role(principal: Principal | None, *roles: Role) -> Principal:
    """The one access rule by role: anonymous → 401, wrong role → 403."""
    if principal is None:
        raise NotAuthenticated("log in first (Authorization: Bearer <token>)")
    if principal.role not in roles:
        raise RoleNotPermitted(
            f"this needs the role {' or '.join(roles)}; you are logged in as {principal.role}"
        )
    return principal


def require_merchant_self(principal: Principal | None, uscc: str) -> Principal:
    """Only the merchant's own account may act for it."""
    p = require_role(principal, "merchant")
    if p.merchant_uscc != uscc:
        raise NotOwnMerchant(
            f"account {p.username} belongs to merchant {p.merchant_uscc}, not {uscc}"
        )
    return p


def get_account(session: Session, account_id: int) -> Account | None:
    """For the packages above: an account by id (they never query the table)."""
    return session.get(Account, account_id)


def max_account_id(session: Session) -> int:
    """The highest account id so far (0 before any)."""
    return int(session.execute(select(func.max(col(Account.id)))).scalar_one_or_none() or 0)


def insert_accounts(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bulk-insert account rows as given (the demo seeder: accounts have no record)."""
    session.execute(insert(Account), list(rows))


def get_account_by_username(session: Session, username: str) -> Account | None:
    return session.execute(
        select(Account).where(col(Account.username) == username)
    ).scalars().first()


def get_account_of_merchant(session: Session, uscc: str) -> Account | None:
    """The merchant account that holds ``uscc`` (``None`` if no account does)."""
    return session.execute(
        select(Account).where(col(Account.merchant_uscc) == uscc)
    ).scalars().first()
# --- staff actions on accounts (recorded) ---------------------------------------------------


class CannotActOnSelf(Conflict):
    """Staff may not disable their own account or change their own role."""


class AccountAlreadyInState(Conflict):
    """The account is already disabled (or enabled, or has that role)."""


def _record(
    session: Session,
    action: AccountActionKind,
    *,
    actor: Actor,
    account_id: int,
    now: datetime,
    role: str | None = None,
) -> Any:
    """Append the ``account.*`` record of one action (projected into ``account_action``)."""
    return write(
        session,
        RecordDraft(
            type=records.TYPE_OF[action],
            subject=None,
            actor=actor,
            body=records.action_body(account_id=account_id, role=role),
        ),
        now=now,
    ).one


def status_of(account: Account) -> AccountStatus:
    return AccountStatus(**to_public(account).model_dump(), disabled=account.disabled,
                         created_at=account.created_at)


def find_account(session: Session, username: str) -> Account:
    name = normalize_username(username)
    row = session.execute(select(Account).where(col(Account.username) == name)).scalars().first()
    if row is None:
        raise AccountNotFound(f"no account with user name {name!r}")
    return row


def _may_manage(p: Principal, account: Account) -> None:
    """Admins manage every account; regulators only merchant accounts."""
    if p.role == "admin":
        return
    if p.role == "regulator" and account.role == "merchant":
        return
    raise RoleNotPermitted(
        f"a {p.role} may not manage the {account.role} account {account.username!r}"
        + ("; only an admin manages staff accounts" if p.role == "regulator" else "")
    )


def _acted(
    session: Session, account: Account, action: AccountActionKind, rec: Any,
    one_time_password: str | None = None,
) -> AccountActionWritten:
    w = written(session, rec)
    return AccountActionWritten(
        account=status_of(account),
        action=action,
        record_id=w.record_id,
        leaf_index=w.leaf_index,
        anchor_status=w.anchor_status,
        one_time_password=one_time_password,
    )


def set_disabled(
    session: Session,
    *,
    principal: Principal | None,
    username: str,
    disabled: bool,
    now: datetime | None = None,
) -> AccountActionWritten:
    """Disable (or enable again) an account, recorded as ``account.disabled`` /
    ``account.enabled``. A disabled account cannot log in, and every token and session
    it has stops working at once (they are checked against the account on each request)."""
    p = require_role(principal, *STAFF_ROLES)
    account = find_account(session, username)
    _may_manage(p, account)
    assert account.id is not None
    if account.id == p.account_id:
        raise CannotActOnSelf("you cannot disable or enable your own account")
    if account.disabled == disabled:
        state = "disabled" if disabled else "enabled"
        raise AccountAlreadyInState(f"account {account.username!r} is already {state}")
    now = now or utcnow()
    action: AccountActionKind = "disabled" if disabled else "enabled"
    rec = _record(session, action, actor=p.actor, account_id=account.id, now=now)
    account.disabled = disabled
    account.token_version = account.token_version + 1
    session.commit()
    return _acted(session, account, action, rec)


def one_time_password() -> str:
    """A fresh random password that keeps the rule (about 80 bits)."""
    while True:
        candidate = secrets.token_urlsafe(12)
        if password_problem(candidate, username="") is None:
            return candidate


def reset_password(
    session: Session,
    *,
    settings: Settings,
    principal: Principal | None,
    username: str,
    now: datetime | None = None,
) -> AccountActionWritten:
    """Give an account a fresh one-time password (returned once, never recorded), recorded
    as ``account.password_reset``; every token and session of the account stops working."""
    p = require_role(principal, *STAFF_ROLES)
    account = find_account(session, username)
    _may_manage(p, account)
    assert account.id is not None
    password = one_time_password()
    new_hash = security.hash_password(password, env=settings.env)
    now = now or utcnow()
    rec = _record(session, "password_reset", actor=p.actor, account_id=account.id, now=now)
    apply_new_password(account, new_hash, one_time=True)
    session.commit()
    return _acted(session, account, "password_reset", rec, one_time_password=password)


def apply_new_password(account: Account, password_hash: str, *, one_time: bool) -> None:
    """The private row's side of a reset or a transfer (``one_time``: staff handed the
    password over, so the owner is asked to change it), or of a re-registration: the new
    hash, and every earlier token ended (they also name the old hash's fingerprint)."""
    account.password_hash = password_hash
    account.token_version = account.token_version + 1
    account.must_change_password = one_time


def set_role(
    session: Session,
    *,
    principal: Principal | None,
    username: str,
    role: str,
    now: datetime | None = None,
) -> AccountActionWritten:
    """Make a staff account a regulator or an admin (admins only), recorded as
    ``account.role_set``; the account's tokens (which name the old role) stop working."""
    p = require_role(principal, "admin")
    if role not in STAFF_ROLES:
        raise InvalidRole(f"role must be one of {', '.join(STAFF_ROLES)}, got {role!r}")
    account = find_account(session, username)
    if account.role not in STAFF_ROLES:
        raise InvalidRole(
            f"account {account.username!r} is a {account.role} account; only staff accounts "
            "change role"
        )
    assert account.id is not None
    if account.id == p.account_id:
        raise CannotActOnSelf("you cannot change your own role")
    if account.role == role:
        raise AccountAlreadyInState(f"account {account.username!r} is already a {role}")
    now = now or utcnow()
    rec = _record(session, "role_set", actor=p.actor, account_id=account.id, role=role, now=now)
    account.role = role
    session.commit()
    return _acted(session, account, "role_set", rec)


def list_accounts(
    session: Session, *, principal: Principal | None, staff_only: bool = True
) -> AccountList:
    """The staff accounts (admins), newest last."""
    require_role(principal, "admin")
    query = select(Account).order_by(col(Account.id))
    if staff_only:
        query = query.where(col(Account.role).in_(STAFF_ROLES))
    rows = session.execute(query).scalars().all()
    return AccountList(total=len(rows), items=[status_of(a) for a in rows])
