"""Credit tables and API models: policy versions, the rating cache and its
history, credit repair.

- ``credit_policy`` is the domain row of each ``credit.policy`` record
  (inserted, never updated); the record is the authority.
- ``merchant_rating`` is a cache with one owner, ``backend/credit/service.py``,
  which recomputes a merchant's row whenever a record about it arrives and when
  a date ends an effect (``next_change_on``). Everything in it can be recomputed
  from the log; ``rating_change`` is its append-only history.
- ``credit_repair`` / ``credit_repair_decision`` mirror the repair records.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PField
from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from backend.credit.policy import CreditPolicy
from backend.ledger.status import AnchorStatus

RatingCause = Literal["record", "time", "policy", "initial"]


class CreditPolicyVersion(SQLModel, table=True):
    __tablename__ = "credit_policy"

    version: int = Field(primary_key=True)
    effective_from: date
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    record_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    at: datetime
    account_id: int | None = Field(default=None, foreign_key="account.id")


class MerchantRating(SQLModel, table=True):
    """The current rating of a merchant (a cache; see the module docstring)."""

    __tablename__ = "merchant_rating"
    __table_args__ = (Index("ix_merchant_rating_tier", "tier"),)

    uscc: str = Field(sa_column=Column(String(18), primary_key=True))
    tier: str = Field(max_length=1)
    score: int
    score_tier: str = Field(max_length=1)
    policy_version: int
    as_of: date
    computed_at: datetime
    next_change_on: date | None = Field(default=None, index=True)
    on_abnormal_list: bool = False
    on_serious_list: bool = False
    due_for_serious_list: bool = False
    due_for_serious_list_removal: bool = False
    factors: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))


class RatingChange(SQLModel, table=True):
    """One change of a merchant's displayed rating (append-only)."""

    __tablename__ = "rating_change"
    __table_args__ = (Index("ix_rating_change_uscc_id", "uscc", "id"),)

    # INTEGER on SQLite, where only that type is the auto-incrementing rowid.
    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    uscc: str = Field(max_length=18)
    tier: str = Field(max_length=1)
    score: int
    policy_version: int
    from_date: date
    cause: str = Field(max_length=16)
    cause_record_id: str | None = Field(default=None, max_length=64)
    at: datetime
    basis_size: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    """The rating was computed from the log's first ``basis_size`` records (the writer
    held the append lock, so every earlier record was committed). Several writers seal
    records before they take the lock, so a record's ``at`` does not order it against
    this row: audit replays by leaf index. ``None`` on rows written before 0013."""


class CreditRepair(SQLModel, table=True):
    """A merchant's application for credit repair of one penalty record."""

    __tablename__ = "credit_repair"
    __table_args__ = (Index("ix_credit_repair_uscc_applied_on", "uscc", "applied_on"),)

    id: str = Field(primary_key=True, max_length=32)
    uscc: str = Field(foreign_key="merchant.uscc", max_length=18)
    penalty_record_id: str = Field(max_length=64, index=True)
    applied_on: date
    statement: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime
    account_id: int = Field(foreign_key="account.id")
    record_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))


class CreditRepairDecision(SQLModel, table=True):
    __tablename__ = "credit_repair_decision"

    repair_id: str = Field(foreign_key="credit_repair.id", primary_key=True, max_length=32)
    decision: str = Field(max_length=16)
    decided_on: date
    reason: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime
    account_id: int = Field(foreign_key="account.id")
    record_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))


# --- API models -------------------------------------------------------------------------


class PolicyPublic(BaseModel):
    version: int
    effective_from: date
    in_force: bool = PField(description="the version in force today (Asia/Shanghai)")
    record_id: str = PField(description="the credit.policy record: fetch its proof bundle")
    leaf_index: int
    supersedes: str | None = PField(description="record id of the previous version")
    document: CreditPolicy
    anchor_status: AnchorStatus


class PolicyList(BaseModel):
    in_force: int | None = PField(description="the version in force today")
    items: list[PolicyPublic]


class FactorPublic(BaseModel):
    record_id: str
    kind: str
    points: int
    reason_zh: str
    applies_until: date | None = PField(description="first date it no longer counts")


class CreditPublic(BaseModel):
    uscc: str
    as_of: date
    tier: str
    score: int
    score_tier: str = PField(description="the tier from the score alone, before the list rules")
    base_score: int = PField(
        description="the policy's base score; base_score + sum of factor points, clamped to "
        "0–100, is the score"
    )
    policy_version: int
    policy_record_id: str
    on_abnormal_list: bool
    on_serious_list: bool
    due_for_serious_list: bool
    due_for_serious_list_removal: bool
    next_change_on: date | None = PField(
        description="the next date on which the rating may change by the passage of time"
    )
    factors: list[FactorPublic]
    spot_check_rate_bp: int = PField(
        description="yearly spot-check rate of the tier (basis points)"
    )
    source: Literal["current", "computed"] = PField(
        description="current: the merchant's maintained rating; computed: for another date"
    )


class RatingChangePublic(BaseModel):
    from_date: date
    tier: str
    score: int
    policy_version: int
    tier_changed: bool
    cause: RatingCause
    cause_record_id: str | None
    at: datetime


class CreditHistory(BaseModel):
    uscc: str
    items: list[RatingChangePublic]


class TierCount(BaseModel):
    tier: str
    region_code: str
    sector: str
    count: int


class TierStats(BaseModel):
    as_of: date
    total: int
    unrated: int
    by_tier: dict[str, int]
    by_region: dict[str, dict[str, int]]
    by_sector: dict[str, dict[str, int]]
    cells: list[TierCount] = PField(description="counts per (tier, region, sector)")


class DisclosedRecord(BaseModel):
    record_id: str
    leaf_index: int
    type: str
    anchored: bool = PField(description="covered by an anchored checkpoint (a proof exists)")
    record: dict[str, Any] = PField(description="the record envelope")


class MerchantRecords(BaseModel):
    uscc: str
    as_of: date
    items: list[DisclosedRecord]
    withheld: int = PField(
        description="records no longer shown (停止公示): penalties past their publicity period "
        "or repaired, revoked outcomes and what refers only to them; by construction they do "
        "not change the rating on as_of"
    )


class RepairCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    penalty_record_id: str = PField(max_length=66)
    statement: str = PField(
        min_length=1,
        max_length=2000,
        description="how the penalty was performed and the harm removed (public, in the record)",
    )


class RepairDecisionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approved", "rejected"]
    reason: str = PField(min_length=1, max_length=1000)


class RepairDecisionPublic(BaseModel):
    decision: Literal["approved", "rejected"]
    decided_on: date
    reason: str
    record_id: str


class RepairPublic(BaseModel):
    repair_id: str
    uscc: str
    penalty_record_id: str
    applied_on: date
    statement: str
    status: Literal["pending", "approved", "rejected"]
    application_record_id: str
    decision: RepairDecisionPublic | None


class RepairWritten(RepairPublic):
    record_id: str
    leaf_index: int
    anchor_status: AnchorStatus
    credit: dict[str, Any] | None = None


class RepairPage(BaseModel):
    total: int
    items: list[RepairPublic]


class RateProposal(SQLModel, table=True):
    """A proposal of new yearly spot-check rates per tier (``credit.rates_proposed``) and,
    once decided, its decision (``credit.rates_decided``): both columns sets are written
    only by projecting those records (``backend/credit/frequency_records.py``)."""

    __tablename__ = "rate_proposal"

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    rates_bp: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    min_interval_months: dict[str, Any] | None = Field(
        default=None,
        sa_column=Column(JSON, nullable=True),
        description="minimum interval per tier, months (None: no minimum)",
    )
    effective_from: date
    note: str = Field(sa_column=Column(Text, nullable=False))
    base_version: int
    at: datetime
    account_id: int | None = Field(default=None, foreign_key="account.id")
    record_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(default="pending", max_length=16)
    decided_at: datetime | None = None
    decided_by: int | None = Field(default=None, foreign_key="account.id")
    decision_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    decision_record_id: str | None = Field(
        default=None, sa_column=Column(String(64), nullable=True)
    )
