"""Supervision outcomes and complaints: tables and API models.

``supervision_record`` is the domain row of every ``supervision.*`` record this
package writes (one table: ``kind`` + the record ``body`` + the columns queried
by). Rows are inserted, never updated: a correction or revocation is a new row
whose ``refs`` name the old one, exactly as in its record. Demonstration-unit
awards are not here: they belong to ``backend/pledges`` (``demonstration_award``).

``complaint`` holds what the public submitted, including the complainant's
contact, which never leaves this table: the record of a verified complaint
carries only the regulator's summary. Table models never reach a client.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic import Field as PField
from sqlalchemy import JSON, BigInteger, Column, Index, String, Text
from sqlmodel import Field, SQLModel

from backend.inputs import WholeNumber
from backend.ledger.status import AnchorStatus
from backend.merchants.reference import SPOT_CHECK_RESULTS

Kind = Literal[  # each declared in kinds.py
    "spot_check",
    "penalty",
    "complaint_verified",
    "abnormal_list",
    "serious_list",
    "instrument",
    "demonstration",
    "revocation",
]
RECORD_TYPE_PREFIX = "supervision."
RecordStatus = Literal["current", "superseded", "revoked", "ended"]

TEXT_MAX = 200
REASON_MAX = 500
SUMMARY_MAX = 500
COMPLAINT_MAX = 2000
CONTACT_MAX = 100


class SupervisionRecord(SQLModel, table=True):
    """The domain row of one ``supervision.*`` record."""

    __tablename__ = "supervision_record"
    __table_args__ = (
        Index("ix_supervision_record_uscc_kind", "uscc", "kind"),
        Index("ix_supervision_record_kind_effective_on", "kind", "effective_on"),
    )

    record_id: str = Field(sa_column=Column(String(64), primary_key=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    uscc: str = Field(foreign_key="merchant.uscc", max_length=18)
    kind: str = Field(max_length=32)
    effective_on: date = Field(description="the date of legal effect (Asia/Shanghai)")
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    refs: list[dict[str, str]] = Field(sa_column=Column(JSON, nullable=False))
    target_record_id: str | None = Field(
        default=None,
        sa_column=Column(String(64), nullable=True, index=True),
        description="the first record ``refs`` names (superseded, revoked or closed)",
    )
    draw_id: str | None = Field(default=None, max_length=64, index=True)
    at: datetime
    account_id: int = Field(foreign_key="account.id")


class Complaint(SQLModel, table=True):
    """A complaint from the public. Private: only staff read it."""

    __tablename__ = "complaint"
    __table_args__ = (Index("ix_complaint_uscc_submitted_at", "uscc", "submitted_at"),)

    id: str = Field(primary_key=True, max_length=32)
    uscc: str = Field(foreign_key="merchant.uscc", max_length=18)
    content: str = Field(sa_column=Column(Text, nullable=False))
    contact: str | None = Field(default=None, max_length=CONTACT_MAX, description="private")
    submitted_at: datetime
    account_id: int | None = Field(default=None, foreign_key="account.id")


class ComplaintReview(SQLModel, table=True):
    """A regulator's finding on a complaint (one per complaint, never changed)."""

    __tablename__ = "complaint_review"

    complaint_id: str = Field(foreign_key="complaint.id", primary_key=True, max_length=32)
    outcome: str = Field(max_length=16)
    decided_on: date
    summary: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime
    account_id: int = Field(foreign_key="account.id")
    record_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


# --- API input ----------------------------------------------------------------------

_SHA256 = re.compile(r"[0-9a-f]{64}")
_RECORD_ID = re.compile(r"[0-9a-f]{64}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TRUE = {"true", "1", "yes", "y", "t", "是", "对"}
_FALSE = {"false", "0", "no", "n", "f", "否"}


def _iso_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value.strip()):
        return value.strip()
    raise ValueError(f"must be a date YYYY-MM-DD, got {value!r}")


def _sha256(value: str) -> str:
    v = value.strip().lower()
    if not _SHA256.fullmatch(v):
        raise ValueError("must be a SHA-256 digest: 64 hex digits")
    return v


def _record_id(value: str) -> str:
    v = value.strip().lower().removeprefix("0x")
    if not _RECORD_ID.fullmatch(v):
        raise ValueError("must be a record id: 64 hex digits")
    return v


_DRAW_NUMBER = re.compile(r"[1-9][0-9]{0,17}")


def parse_draw_ref(value: str) -> str:
    """A draw's id (64 hex digits), or its number as people read it off the draw's page
    (no. 12): the checks look the number up, and the record names the id."""
    v = value.strip().lower().removeprefix("0x")
    if v.startswith("no."):
        v = v[3:].strip()
    if not (_RECORD_ID.fullmatch(v) or _DRAW_NUMBER.fullmatch(v)):
        raise ValueError(
            "must name a draw: its number (e.g. 12) or its id (64 hex digits, on the draw's page)"
        )
    return v


def _boolean(value: Any) -> Any:
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
        raise ValueError(f"must be true or false (是/否), got {value!r}")
    return value


def _spot_check_result(value: str) -> str:
    if value not in SPOT_CHECK_RESULTS:
        raise ValueError(f"must be one of the published results: {'、'.join(SPOT_CHECK_RESULTS)}")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Sha256 = Annotated[str, AfterValidator(_sha256)]
RecordId = Annotated[str, AfterValidator(_record_id)]
DrawId = Annotated[str, AfterValidator(parse_draw_ref)]
Bool = Annotated[bool, BeforeValidator(_boolean)]
Text200 = Annotated[str, PField(min_length=1, max_length=TEXT_MAX)]
Reason = Annotated[str, PField(min_length=1, max_length=REASON_MAX)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uscc: str = PField(max_length=64, description="统一社会信用代码 of a registered merchant")


class _Correctable(_Input):
    supersedes: RecordId | None = PField(
        default=None,
        description="the record this one corrects (its newest version); the body is the full "
        "corrected body",
    )
    correction_reason: Reason | None = PField(
        default=None, description="required with `supersedes`: why the record is corrected"
    )


class SpotCheckInput(_Correctable):
    """抽查检查结果."""

    kind: Literal["spot_check"]
    result: Annotated[str, AfterValidator(_spot_check_result)] = PField(
        description="one of the seven result values published on the national system"
    )
    checked_on: IsoDate
    authority: Text200
    draw_id: DrawId | None = PField(
        default=None,
        description="the random-inspection draw (双随机) this check came from: a revealed draw "
        "that selected this merchant",
    )
    evidence_sha256: Sha256 | None = None


class PenaltyInput(_Correctable):
    """行政处罚."""

    kind: Literal["penalty"]
    decision_no: Text200 = PField(description="决定书文号")
    decided_on: IsoDate
    authority: Text200
    amount_fen: WholeNumber = PField(ge=0, le=10**13, description="fine in fen (0 if none)")
    lower_amount: Bool | None = PField(
        default=None,
        description="较低数额罚款; default: from amount_fen and the policy in force (a person = "
        "an individual business, 个体工商户)",
    )
    circulated_criticism: Bool = PField(default=False, description="通报批评")
    special_sector: Bool = PField(default=False, description="food, drug or special equipment")
    performed: Bool = PField(default=False, description="the penalty has been performed (履行)")
    evidence_sha256: Sha256 = PField(description="SHA-256 of the decision document")


class ComplaintVerifiedInput(_Correctable):
    """A complaint verified by a regulator (received through any channel, e.g. 12315)."""

    kind: Literal["complaint_verified"]
    complaint_id: Annotated[str, PField(min_length=1, max_length=64)]
    verified_on: IsoDate
    summary: Annotated[str, PField(min_length=1, max_length=SUMMARY_MAX)] = PField(
        description="public summary; never the complainant's personal data"
    )


class ListInput(_Correctable):
    action: Literal["in", "out"]
    on: IsoDate
    reason: Reason | None = PField(
        default=None,
        description="abnormal list `in`: a reason code; `out`: what cured it (default: the "
        "cure of the listing reason); serious list: free text, required",
    )
    closes: RecordId | None = PField(
        default=None, description="`out` only: the listing it ends (default: every open one)"
    )


class AbnormalListInput(ListInput):
    """经营异常名录 列入/移出."""

    kind: Literal["abnormal_list"]


class SeriousListInput(ListInput):
    """严重违法失信名单 列入/移出."""

    kind: Literal["serious_list"]


class InstrumentInput(_Correctable):
    """强制检定 of a measuring instrument; overdue is derived from the dates."""

    kind: Literal["instrument"]
    instrument_type: Text200
    serial: Annotated[str, PField(min_length=1, max_length=100)]
    certificate_no: Annotated[str, PField(min_length=1, max_length=100)]
    verified_on: IsoDate
    valid_until: IsoDate = PField(
        description="the last day of validity printed on the certificate (inclusive)"
    )


class DemonstrationInput(_Input):
    """示范单位 award or withdrawal (handled by the demonstration-unit service)."""

    kind: Literal["demonstration"]
    action: Literal["award", "withdraw"]
    on: IsoDate | None = None
    valid_until: IsoDate | None = PField(default=None, description="award only; exclusive")
    reason: Reason | None = PField(default=None, description="withdraw only")


class RevocationInput(_Input):
    """Revoke an outcome (e.g. a decision annulled); the revoked record stays in the log."""

    kind: Literal["revocation"]
    revokes: RecordId = PField(description="the newest version of the outcome to revoke")
    reason: Reason


SupervisionInput = Annotated[
    SpotCheckInput
    | PenaltyInput
    | ComplaintVerifiedInput
    | AbnormalListInput
    | SeriousListInput
    | InstrumentInput
    | DemonstrationInput
    | RevocationInput,
    PField(discriminator="kind"),
]

class ComplaintCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uscc: str = PField(max_length=64, description="the merchant complained about")
    content: str = PField(min_length=1, max_length=COMPLAINT_MAX, description="what happened")
    contact: str | None = PField(
        default=None,
        max_length=CONTACT_MAX,
        description="optional, private: how a regulator may reach you; never published",
    )


class ComplaintReviewCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["verified", "rejected"]
    summary: str = PField(
        min_length=1,
        max_length=SUMMARY_MAX,
        description="verified: the public summary that goes into the record (no personal "
        "data); rejected: why (kept private)",
    )
    decided_on: IsoDate | None = PField(default=None, description="default today (Asia/Shanghai)")


# --- API output ---------------------------------------------------------------------


class RatingBrief(BaseModel):
    tier: str
    score: int
    policy_version: int
    as_of: date


class SupervisionRecordPublic(BaseModel):
    record_id: str
    leaf_index: int
    uscc: str
    kind: str
    type: str
    effective_on: date
    body: dict[str, Any]
    refs: list[dict[str, str]]
    at: datetime
    status: RecordStatus = PField(
        description="current; superseded (a correction replaced it); revoked; ended (a list "
        "`in` closed by an `out`)"
    )
    replaced_by: str | None = PField(
        default=None, description="the record that superseded, revoked or ended this one"
    )


class SupervisionRecordWritten(SupervisionRecordPublic):
    anchor_status: AnchorStatus
    credit: RatingBrief | None = PField(
        default=None, description="the merchant's rating right after this record"
    )


class SupervisionRecordPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[SupervisionRecordPublic]


class BulkRowWritten(BaseModel):
    row: int
    record_id: str
    leaf_index: int
    kind: str = ""
    uscc: str = ""


class BulkWritten(BaseModel):
    count: int
    merchants: int = PField(description="merchants re-rated")
    anchor_status: AnchorStatus = PField(description="of the last record of the batch")
    records: list[BulkRowWritten]


class BulkRowPreview(BaseModel):
    row: int
    kind: str
    uscc: str
    body: dict[str, Any] = PField(description="the record's body, as it would be written")
    effective_on: date | None = PField(description="its date of legal effect (None: today)")


class BulkPreview(BaseModel):
    """A dry run: what the file would record. Nothing is written."""

    dry_run: Literal[True] = True
    count: int
    merchants: int = PField(description="distinct merchants the rows name")
    kinds: dict[str, int] = PField(description="rows per kind")
    rows: list[BulkRowPreview]


class RowError(BaseModel):
    row: int = PField(description="1 = the first data row (after the header); 0 = the header")
    field: str | None
    problem: str
    column: str | None = PField(
        default=None, description="the column as the file names it (e.g. 检查日期)"
    )
    problem_zh: str = PField(default="", description="the problem in Chinese, naming the column")


class ComplaintStatusQuery(BaseModel):
    """The 受理编号 and check code of a complaint's receipt."""

    model_config = ConfigDict(extra="forbid")

    ticket: str = PField(min_length=1, max_length=40, description="受理编号, e.g. TS-2026-000123")
    code: str = PField(min_length=1, max_length=40, description="the check code on the receipt")


class ComplaintStatusPublic(BaseModel):
    """How a complaint stands, as its complainant may see it."""

    ticket: str
    uscc: str
    submitted_at: datetime
    status: Literal["pending", "verified", "rejected"]
    decided_on: date | None = None
    summary: str | None = PField(
        default=None, description="the public summary, or the reason it was not verified"
    )


class ComplaintReceived(BaseModel):
    complaint_id: str
    uscc: str
    submitted_at: datetime
    ticket: str | None = PField(
        default=None, description="受理编号, e.g. TS-2026-000123: short, for people"
    )
    check_code: str | None = PField(
        default=None,
        description="shown once: with the ticket it opens the status page /complaint/status",
    )
    status: Literal["received"] = "received"
    note: str = (
        "A regulator will review the complaint. It is published (as a summary, without your "
        "contact) and counts in the merchant's rating only once verified."
    )


class ComplaintReviewPublic(BaseModel):
    outcome: Literal["verified", "rejected"]
    decided_on: date
    summary: str
    record_id: str | None


class ComplaintPrivate(BaseModel):
    """A complaint as staff see it (with the complainant's contact)."""

    complaint_id: str
    uscc: str
    content: str
    contact: str | None
    submitted_at: datetime
    status: Literal["pending", "verified", "rejected"]
    review: ComplaintReviewPublic | None


class ComplaintReviewed(ComplaintPrivate):
    record_id: str | None
    leaf_index: int | None
    anchor_status: AnchorStatus | None


class ComplaintPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[ComplaintPrivate]
