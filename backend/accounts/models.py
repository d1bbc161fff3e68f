"""Accounts, staff actions on them, rate-limit counters, revoked tokens and idempotency keys.

Table models here never reach a client: routers return ``AccountPublic``.
``account`` is private and *not* a projection: it holds what no record may carry
(password hashes, the token version). What staff do to an account (create, disable,
enable, reset its password, set its role) is recorded (``backend/accounts/records.py``)
and projected into ``account_action``; the service changes the private row in the same
transaction.
``rate_limit`` is the rate limiter's memory and ``revoked_token`` the list of
tokens ended by a logout; both live in the database (not in process memory) so
that several uvicorn workers or hosts share them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from pydantic import Field as PField
from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, Integer, String, false
from sqlmodel import Field, SQLModel

from backend.accounts.passwords import PASSWORD_MAX, PASSWORD_RULE_EN
from backend.ledger.status import AnchorStatus

Role = Literal["merchant", "regulator", "admin"]
ROLES: tuple[Role, ...] = ("merchant", "regulator", "admin")
STAFF_ROLES: tuple[Role, ...] = ("regulator", "admin")

USERNAME_MAX = 64


class Account(SQLModel, table=True):
    """A login. A merchant account is bound to exactly one merchant (its USCC is
    its username); staff accounts (regulator, admin) are bound to none."""

    __tablename__ = "account"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(sa_column=Column(String(USERNAME_MAX), nullable=False, unique=True))
    role: str = Field(max_length=16)
    merchant_uscc: str | None = Field(
        default=None, foreign_key="merchant.uscc", max_length=18, unique=True
    )
    password_hash: str = Field(max_length=255)
    created_at: datetime
    disabled: bool = False
    # Every token names the version it was issued under; "log out everywhere" adds one,
    # which ends all of the account's tokens and sessions at once.
    token_version: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    # Set by a password reset or a transfer (a one-time password that staff handed over):
    # the browser login sends the account to change it first; cleared by a change.
    must_change_password: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )


AccountActionKind = Literal["created", "disabled", "enabled", "password_reset", "role_set"]


class AccountAction(SQLModel, table=True):
    """One staff action on an account (``account.*`` records): who (``account_id``, the
    actor), on which account (``target_id``), what, when. Never a password or a hash."""

    __tablename__ = "account_action"
    __table_args__ = (Index("ix_account_action_target_id", "target_id"),)

    record_id: str = Field(sa_column=Column(String(64), primary_key=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    at: datetime
    account_id: int | None = Field(default=None, foreign_key="account.id")
    target_id: int = Field(foreign_key="account.id")
    action: str = Field(max_length=16)
    role: str | None = Field(default=None, max_length=16)


class RateLimit(SQLModel, table=True):
    """One rate limiter bucket (``backend/accounts/ratelimit.py``): the key (e.g.
    ``login:pair:<address>:<name>``) and its theoretical arrival time in epoch
    milliseconds. A row whose time has passed is the same as no row."""

    __tablename__ = "rate_limit"

    key: str = Field(primary_key=True, max_length=200)
    tat_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class RevokedToken(SQLModel, table=True):
    """A token or browser session ended by a logout, until it would have expired anyway."""

    __tablename__ = "revoked_token"
    __table_args__ = (Index("ix_revoked_token_expires_at", "expires_at"),)

    jti: str = Field(primary_key=True, max_length=32)
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class IdempotencyRecord(SQLModel, table=True):
    """The first result of a write made with an ``Idempotency-Key`` header.

    Scoped per account and per operation, so two merchants (or two kinds of
    write) can never collide on a key. ``result`` holds the identifiers of
    what the first request created; a retry rebuilds its response from them.
    """

    __tablename__ = "idempotency_record"

    account_id: int = Field(foreign_key="account.id", primary_key=True)
    scope: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=200)
    request_sha256: str = Field(max_length=64)
    result: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime


class AccountPublic(BaseModel):
    id: int
    username: str
    role: Role
    merchant_uscc: str | None


class AccountStatus(AccountPublic):
    """An account as staff see it in the account list."""

    disabled: bool
    created_at: datetime


class AccountList(BaseModel):
    total: int
    items: list[AccountStatus]


class RoleSet(BaseModel):
    role: Literal["regulator", "admin"]


class AccountActionWritten(BaseModel):
    """A recorded staff action on an account, with the record it appended."""

    account: AccountStatus
    action: AccountActionKind
    record_id: str
    leaf_index: int
    anchor_status: AnchorStatus
    one_time_password: str | None = PField(
        default=None,
        description="password_reset only: the new password, shown this once (never "
        "recorded); hand it to the account's owner, who should change it at once",
    )


class StaffAccountCreate(BaseModel):
    username: str = PField(min_length=1, max_length=USERNAME_MAX)
    password: str = PField(max_length=PASSWORD_MAX, description=PASSWORD_RULE_EN)
    role: Literal["regulator", "admin"]


class PasswordChange(BaseModel):
    current_password: str = PField(max_length=PASSWORD_MAX)
    new_password: str = PField(max_length=PASSWORD_MAX, description=PASSWORD_RULE_EN)


class TokenResponse(BaseModel):
    """OAuth2 token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    account: AccountPublic


class CsrfTokenResponse(BaseModel):
    csrf_token: str
