"""The merchant registry: merchants, their verification and wallet bindings.

``merchant`` holds the registration as given (with the private contact data
that never leaves this table in clear). Verification and wallet bindings are
rows of their own, inserted and never updated, so that "verified since when,
by whom" and "which wallet, since when" keep their history.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PField
from sqlalchemy import BigInteger, Column, ForeignKey, Index, String, Text
from sqlmodel import Field, SQLModel

from backend.accounts.models import AccountPublic
from backend.accounts.passwords import PASSWORD_MAX, PASSWORD_RULE_EN
from backend.ledger.status import AnchorStatus, WrittenRecord

NAME_MAX = 100
ADDRESS_MAX = 200
CONTACT_PERSON_MAX = 50
CONTACT_PHONE_MAX = 32
QUERY_MAX = 100


class Merchant(SQLModel, table=True):
    __tablename__ = "merchant"
    __table_args__ = (
        Index("ix_merchant_sector", "sector"),
        Index("ix_merchant_region_code", "region_code"),
    )

    # The primary key's B-tree also serves credit-code prefix search.
    uscc: str = Field(sa_column=Column(String(18), primary_key=True))
    name: str = Field(max_length=NAME_MAX)
    sector: str = Field(max_length=16)
    region_code: str = Field(max_length=6)
    sub_area: str | None = Field(default=None, max_length=16)
    address: str = Field(max_length=ADDRESS_MAX)
    contact_person: str = Field(max_length=CONTACT_PERSON_MAX)
    contact_phone: str = Field(max_length=CONTACT_PHONE_MAX)
    contact_salt: str = Field(max_length=32, description="salt of the record's contact_digest")
    registered_at: datetime
    record_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The ``merchant.rejected`` record that ended this registration (then the row is shown
    # as no merchant, and the code is free to be registered again by its owner).
    rejected_by: str | None = Field(
        default=None, sa_column=Column(String(64), nullable=True)
    )


class MerchantRegistrationAction(SQLModel, table=True):
    """A regulator's rejection or transfer of a registration (``merchant.rejected``,
    ``merchant.transferred``): one row per record, never changed."""

    __tablename__ = "merchant_registration_action"
    __table_args__ = (Index("ix_merchant_registration_action_uscc", "uscc"),)

    record_id: str = Field(sa_column=Column(String(64), primary_key=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    uscc: str = Field(max_length=18)
    action: str = Field(max_length=16)
    registration_record_id: str = Field(max_length=64)
    reason: str = Field(max_length=200)
    at: datetime
    account_id: int | None = Field(default=None, foreign_key="account.id")


class MerchantVerification(SQLModel, table=True):
    """A regulator's verification of a registration (one per merchant)."""

    __tablename__ = "merchant_verification"

    uscc: str = Field(foreign_key="merchant.uscc", primary_key=True, max_length=18)
    verified_on: date
    at: datetime
    account_id: int = Field(foreign_key="account.id")
    record_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))


class MerchantWallet(SQLModel, table=True):
    """A wallet binding (``merchant.wallet_bound``); the newest row per merchant is the
    current wallet."""

    __tablename__ = "merchant_wallet"
    __table_args__ = (Index("ix_merchant_wallet_uscc_id", "uscc", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    uscc: str = Field(foreign_key="merchant.uscc", max_length=18)
    address: str = Field(max_length=42)
    bound_at: datetime
    account_id: int | None = Field(default=None, foreign_key="account.id")
    # NULL only on bindings made before wallet bindings were records (migration 0006).
    record_id: str | None = Field(
        default=None, sa_column=Column(String(64), nullable=True, unique=True)
    )
    leaf_index: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class MerchantSearch(SQLModel, table=True):
    """A merchant's search keys (``backend/merchants/search.py``), a projection of its
    registration. ``id`` is the row id SQLite's FTS5 index refers to; the trigram
    indexes over ``keys`` are created by migration 0008 (pg_trgm GIN on PostgreSQL,
    an FTS5 table with triggers on SQLite)."""

    __tablename__ = "merchant_search"

    id: int | None = Field(default=None, primary_key=True)
    uscc: str = Field(
        sa_column=Column(String(18), ForeignKey("merchant.uscc"), nullable=False, unique=True)
    )
    folded: str = Field(sa_column=Column(Text, nullable=False))
    keys: str = Field(sa_column=Column(Text, nullable=False))


# --- API models ---------------------------------------------------------------


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MerchantCreate(_Input):
    """A self-registration: the merchant and the password of its account."""

    uscc: str = PField(
        max_length=64, description="统一社会信用代码; lower case and spaces are fine"
    )
    name: str = PField(max_length=NAME_MAX)
    sector: str = PField(max_length=32, description="a sector code, e.g. `fuel`")
    region_code: str = PField(max_length=16, description="a Bazhong GB/T 2260 code, e.g. 511902")
    sub_area: str | None = PField(default=None, max_length=32, description="`jingkai` or `wenlv`")
    address: str = PField(max_length=ADDRESS_MAX)
    contact_person: str = PField(max_length=CONTACT_PERSON_MAX, description="private")
    contact_phone: str = PField(max_length=CONTACT_PHONE_MAX, description="private")
    password: str = PField(max_length=PASSWORD_MAX, description=PASSWORD_RULE_EN)
    wallet_address: str | None = PField(
        default=None,
        max_length=64,
        description="optional Ethereum address whose EIP-712 signatures the merchant's "
        "pledges may carry",
    )


class VerificationCreate(_Input):
    verified_on: date | None = PField(default=None, description="default today (Asia/Shanghai)")


REASON_MAX = 200


class RegistrationDecision(_Input):
    reason: str = PField(
        max_length=REASON_MAX,
        description="why (public, in the record): e.g. 该统一社会信用代码不属于登记人",
    )


class RegistrationActionWritten(BaseModel):
    """A rejection or transfer, with the record it appended."""

    uscc: str
    action: Literal["rejected", "transferred"]
    registration_record_id: str
    record_id: str
    leaf_index: int
    anchor_status: AnchorStatus
    one_time_password: str | None = PField(
        default=None,
        description="transferred only: the merchant account's new password, shown this "
        "once (never recorded), for the rightful owner; the previous registrant's "
        "password, tokens and sessions no longer work",
    )


class WalletBind(_Input):
    address: str = PField(max_length=64)


class VerificationPublic(BaseModel):
    status: Literal["verified", "unverified"]
    label: Literal["已核验", "未核验"]
    verified_on: date | None = None
    record: WrittenRecord | None = None


class MerchantRegistration(BaseModel):
    """A registration as written: the merchant, its record and its account (the public
    view composed from it is ``backend.shops``'s)."""

    uscc: str
    record: WrittenRecord
    account: AccountPublic


class VerificationWritten(BaseModel):
    uscc: str
    verification: VerificationPublic
    record_id: str
    leaf_index: int
    anchor_status: AnchorStatus


class MerchantSuggestion(BaseModel):
    uscc: str
    name: str
    region_name: str


class MerchantSuggestions(BaseModel):
    items: list[MerchantSuggestion]
