"""Accounts, rate-limit counters, revoked tokens and idempotency keys.

Table models here never reach a client: routers return ``AccountPublic``.
``rate_limit`` is the rate limiter's memory and ``revoked_token`` the list of
tokens ended by a logout; both live in the database (not in process memory) so
that several uvicorn workers or hosts share them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from pydantic import Field as PField
from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String
from sqlmodel import Field, SQLModel

Role = Literal["merchant", "regulator", "admin"]
ROLES: tuple[Role, ...] = ("merchant", "regulator", "admin")
STAFF_ROLES: tuple[Role, ...] = ("regulator", "admin")

USERNAME_MAX = 64
PASSWORD_MIN = 8
PASSWORD_MAX = 128


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


class StaffAccountCreate(BaseModel):
    username: str = PField(min_length=1, max_length=USERNAME_MAX)
    password: str = PField(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)
    role: Literal["regulator", "admin"]


class PasswordChange(BaseModel):
    current_password: str = PField(max_length=PASSWORD_MAX)
    new_password: str = PField(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)


class TokenResponse(BaseModel):
    """OAuth2 token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    account: AccountPublic


class CsrfTokenResponse(BaseModel):
    csrf_token: str
