"""Pledges, withdrawals and demonstration-unit awards.

Rows are inserted, never updated: a withdrawal is a row of its own, a renewal
is a new pledge naming the one it supersedes (``renews_pledge_id``, unique,
so a pledge is renewed at most once), and a pledge's status is derived from
these rows and the date, exactly as from the records they mirror. Each row
keeps the id and leaf index of its record.

``valid_until`` is exclusive everywhere (as in ``backend/credit/rating.py``):
the first day on which the pledge or award no longer applies.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PField
from sqlalchemy import JSON, BigInteger, Column, Index, String, Text
from sqlmodel import Field, SQLModel

from backend.inputs import WholeNumber
from backend.ledger.status import AnchorStatus, WrittenRecord

PledgeStatus = Literal["active", "withdrawn", "expired", "renewed"]
DemonstrationStatus = Literal["active", "withdrawn", "expired"]

EXTRA_MAX = 1000
REASON_MAX = 500
ITEMS_MAX = 64
SIGNATURE_MAX = 140


class Pledge(SQLModel, table=True):
    __tablename__ = "pledge"
    __table_args__ = (
        Index("ix_pledge_uscc_made_at", "uscc", "made_at"),
        Index("ix_pledge_valid_until", "valid_until"),
    )

    id: str = Field(primary_key=True, max_length=32)
    uscc: str = Field(foreign_key="merchant.uscc", max_length=18)
    template_sector: str = Field(max_length=16)
    template_version: int
    template_digest: str = Field(max_length=64)
    items: list[str] = Field(sa_column=Column(JSON, nullable=False))
    extra_commitments: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    valid_from: date
    valid_until: date
    made_at: datetime
    account_id: int = Field(foreign_key="account.id")
    record_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    renews_pledge_id: str | None = Field(
        default=None, foreign_key="pledge.id", max_length=32, unique=True
    )
    signer: str | None = Field(default=None, max_length=42)
    signature: str | None = Field(default=None, max_length=SIGNATURE_MAX)


class PledgeWithdrawal(SQLModel, table=True):
    __tablename__ = "pledge_withdrawal"

    pledge_id: str = Field(foreign_key="pledge.id", primary_key=True, max_length=32)
    withdrawn_on: date
    reason: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime
    account_id: int = Field(foreign_key="account.id")
    record_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))


class DemonstrationAward(SQLModel, table=True):
    """A 示范单位 award; ``valid_until`` exclusive."""

    __tablename__ = "demonstration_award"
    __table_args__ = (Index("ix_demonstration_award_uscc_on", "uscc", "awarded_on"),)

    id: str = Field(primary_key=True, max_length=32)
    uscc: str = Field(foreign_key="merchant.uscc", max_length=18)
    awarded_on: date
    valid_until: date = Field(index=True)
    at: datetime
    account_id: int = Field(foreign_key="account.id")
    record_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))


class DemonstrationWithdrawal(SQLModel, table=True):
    __tablename__ = "demonstration_withdrawal"

    award_id: str = Field(foreign_key="demonstration_award.id", primary_key=True, max_length=32)
    withdrawn_on: date
    reason: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime
    account_id: int = Field(foreign_key="account.id")
    record_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))


# --- API models ---------------------------------------------------------------


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PledgeItemPublic(BaseModel):
    code: str
    text: str
    required: bool


class PledgeTemplatePublic(BaseModel):
    sector: str
    sector_name: str
    version: int
    title: str
    digest: str = PField(description="SHA-256 of the RFC 8785 form of the template")
    current: bool = PField(description="the newest version for the sector")
    items: list[PledgeItemPublic]


class PledgeCreate(_Input):
    uscc: str | None = PField(
        default=None,
        max_length=64,
        description="optional; if given it must be the logged-in merchant's own code",
    )
    template_version: WholeNumber = PField(ge=1, le=10_000)
    items: list[str] = PField(max_length=ITEMS_MAX, description="accepted item codes")
    extra_commitments: str | None = PField(default=None, max_length=EXTRA_MAX)
    valid_from: date | None = PField(default=None, description="must be today (Asia/Shanghai)")
    valid_until: date | None = PField(
        default=None,
        description="exclusive; default one year after valid_from",
    )
    signature: str | None = PField(
        default=None,
        max_length=SIGNATURE_MAX,
        description="EIP-712 signature (0x…) by the merchant's bound wallet; "
        "see docs/eip712-pledge.md",
    )


class PledgeDraft(_Input):
    """What a merchant's wallet signs: the same fields as :class:`PledgeCreate`."""

    template_version: WholeNumber = PField(ge=1, le=10_000)
    items: list[str] = PField(max_length=ITEMS_MAX)
    extra_commitments: str | None = PField(default=None, max_length=EXTRA_MAX)
    valid_from: date | None = None
    valid_until: date | None = None


class PledgeWithdraw(_Input):
    reason: str = PField(min_length=1, max_length=REASON_MAX)


class TemplateRef(BaseModel):
    sector: str
    version: int
    digest: str


class SignaturePublic(BaseModel):
    scheme: Literal["eip712"] = "eip712"
    signer: str
    signature: str


class WithdrawalPublic(BaseModel):
    withdrawn_on: date
    reason: str
    record: WrittenRecord


class PledgePublic(BaseModel):
    pledge_id: str
    uscc: str
    status: PledgeStatus
    template: TemplateRef
    title: str
    items: list[str]
    item_texts: list[str]
    extra_commitments: str | None
    valid_from: date
    valid_until: date = PField(description="exclusive: the first day the pledge no longer applies")
    made_at: datetime
    made_record: WrittenRecord
    renews: str | None = PField(description="the pledge this one superseded")
    renewed_by: str | None = PField(description="the pledge that superseded this one")
    withdrawal: WithdrawalPublic | None
    signature: SignaturePublic | None
    merchant_verified: bool = PField(
        description="false while a regulator has not verified the merchant (未核验)"
    )


class PledgeWritten(PledgePublic):
    """A pledge write: the pledge plus the record this request appended."""

    record_id: str
    leaf_index: int
    anchor_status: AnchorStatus


class PledgeSummary(BaseModel):
    pledge_id: str
    status: PledgeStatus
    valid_from: date
    valid_until: date
    record_id: str


class PledgeList(BaseModel):
    uscc: str
    items: list[PledgePublic]


class TypedDataResponse(BaseModel):
    typed_data: dict[str, Any]
    signer_must_be: str | None = PField(
        description="the merchant's bound wallet address, or null if none is bound yet"
    )


class DemonstrationAction(_Input):
    action: Literal["award", "withdraw"]
    on: date | None = PField(default=None, description="default today (Asia/Shanghai)")
    valid_until: date | None = PField(
        default=None, description="award only; exclusive; default three years after `on`"
    )
    reason: str | None = PField(default=None, max_length=REASON_MAX, description="withdraw only")


class DemonstrationPublic(BaseModel):
    award_id: str
    uscc: str
    status: DemonstrationStatus
    awarded_on: date
    valid_until: date
    award_record: WrittenRecord
    withdrawn_on: date | None
    withdrawal_reason: str | None
    withdrawal_record: WrittenRecord | None


class DemonstrationWritten(DemonstrationPublic):
    record_id: str
    leaf_index: int
    anchor_status: AnchorStatus


class DemonstrationUnitList(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[DemonstrationUnitItem]


class DemonstrationUnitItem(BaseModel):
    uscc: str
    name: str
    sector: str
    region_code: str
    awarded_on: date
    valid_until: date


class Target(BaseModel):
    by_year: int
    target: int
    reached: bool = PField(
        description="met: by the end of by_year if that has passed, otherwise today"
    )
    past: bool = PField(description="by_year has ended (Asia/Shanghai): a past target")
    units: int = PField(
        description="demonstration units counted: on the last day of by_year if past, else today"
    )


class OverviewStats(BaseModel):
    as_of: date
    merchants: int
    verified_merchants: int
    active_pledges: int
    demonstration_units: int
    demonstration_targets: list[Target]


DemonstrationUnitList.model_rebuild()
