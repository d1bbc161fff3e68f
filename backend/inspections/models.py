"""Inspection directories and verifiable draws (双随机、一公开): tables and API models.

- ``inspector`` / ``inspection_item`` are the current state of the directory
  (执法检查人员名录库) and the item list (随机抽查事项清单): projections of the
  ``inspection.*`` records (``backend/inspections/records.py``), as of the newest
  version (``record_id``), so the history is the log. An inspector's ``name`` (and
  the salt of its digest) is private: it never leaves this table in clear.
- ``inspector_conflict`` is the projection of ``inspection.conflict`` records; a
  withdrawal is a record of its own that the row points at (``withdrawn_record_id``).
- ``draw`` and ``draw_assignment`` are projections of the ``draw.*`` records
  (``backend/inspections/draws/records.py``, which says what the ``draw`` row keeps
  beside them: the seed until the reveal, the chain's answers before it).
  ``draw.seed`` is secret until the reveal (see ``docs/draws.md``).
- ``draw_snapshot_entry``, ``draw_inspector`` and ``draw_recusal`` hold a draw's
  committed inputs, which are in no record: the ``draw.committed`` record commits to
  their Merkle roots. Inserted once and never changed; ``honest-metering verify
  --draw`` re-derives every root from what the API serves from them, and audit checks
  the rows against the roots (``backend/inspections/draws/inputs.py``).

Table models never reach a client: routers return the ``*Public`` models.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PField
from sqlalchemy import JSON, BigInteger, Column, Index, String, Text
from sqlmodel import Field, SQLModel

from backend.db import INT_KEY_MAX
from backend.inputs import WholeNumber
from backend.ledger.status import AnchorStatus

DrawStatus = Literal["committing", "committed", "revealed", "failed", "expired"]
ResultStatus = Literal["pending", "recorded", "overdue"]

UNIT_MAX = 200
NAME_MAX = 50
TITLE_MAX = 200
LEGAL_BASIS_MAX = 1000
METHOD_MAX = 500
REASON_MAX = 500
INSPECTOR_ID_MAX = 64


# --- directories ----------------------------------------------------------------------


class Inspector(SQLModel, table=True):
    """One inspector as of its newest ``inspection.inspector`` record."""

    __tablename__ = "inspector"

    id: str = Field(sa_column=Column(String(INSPECTOR_ID_MAX), primary_key=True))
    unit: str = Field(max_length=UNIT_MAX)
    region_code: str = Field(max_length=6)
    active: bool = True
    name: str = Field(max_length=NAME_MAX, description="private")
    name_salt: str = Field(max_length=32, description="salt of the record's name_digest")
    created_at: datetime
    updated_at: datetime
    record_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))


class InspectorConflict(SQLModel, table=True):
    """A declared conflict of interest (回避): the inspector never checks the merchant."""

    __tablename__ = "inspector_conflict"
    __table_args__ = (Index("ix_inspector_conflict_inspector_uscc", "inspector_id", "uscc"),)

    id: int | None = Field(default=None, primary_key=True)
    inspector_id: str = Field(foreign_key="inspector.id", max_length=INSPECTOR_ID_MAX)
    uscc: str = Field(max_length=18)
    declared_on: date
    reason: str | None = Field(
        default=None, sa_column=Column(Text, nullable=True), description="private"
    )
    at: datetime
    account_id: int | None = Field(default=None, foreign_key="account.id")
    record_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    withdrawn_on: date | None = None
    withdrawn_record_id: str | None = Field(
        default=None, sa_column=Column(String(64), nullable=True, unique=True)
    )


class InspectionItem(SQLModel, table=True):
    """One entry of the inspection-item list as of its newest ``inspection.item`` record."""

    __tablename__ = "inspection_item"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=TITLE_MAX)
    legal_basis: str = Field(sa_column=Column(Text, nullable=False))
    sectors: list[str] = Field(sa_column=Column(JSON, nullable=False))
    method: str = Field(sa_column=Column(Text, nullable=False))
    active: bool = True
    created_at: datetime
    updated_at: datetime
    record_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))


# --- draws ---------------------------------------------------------------------------------


class Draw(SQLModel, table=True):
    """A draw. ``id`` is the on-chain ``drawId``: the record id of ``draw.committed``."""

    __tablename__ = "draw"
    __table_args__ = (Index("ix_draw_status", "status"),)

    id: str = Field(sa_column=Column(String(64), primary_key=True))
    number: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    status: str = Field(max_length=16)
    item_id: int = Field(foreign_key="inspection_item.id")
    body: dict[str, Any] = Field(
        sa_column=Column(JSON, nullable=False), description="the draw.committed record body"
    )
    commit_leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    seed: str = Field(max_length=64, description="private until the reveal (hex)")
    planned_end: date
    results_due: date
    created_at: datetime
    account_id: int | None = Field(default=None, foreign_key="account.id")
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    contract_address: str = Field(max_length=42)
    created_block: int = Field(
        sa_column=Column(BigInteger, nullable=False),
        description="chain head when the draw was recorded (where to look for its commit)",
    )
    commit_tx: str | None = Field(default=None, max_length=66)
    commit_block: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    target_block: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    committed_at: datetime | None = None
    reveal_tx: str | None = Field(default=None, max_length=66)
    reveal_block: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    randomness: str | None = Field(default=None, max_length=64)
    revealed_at: datetime | None = None
    revealed_record_id: str | None = Field(
        default=None, sa_column=Column(String(64), nullable=True, unique=True)
    )
    outcome_record_id: str | None = Field(
        default=None,
        sa_column=Column(String(64), nullable=True, unique=True),
        description="the draw.plan, draw.failed or draw.expired record",
    )
    plan_digest: str | None = Field(default=None, max_length=64)
    failure: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    last_error: str | None = Field(
        default=None,
        sa_column=Column(Text, nullable=True),
        description="why the last ledger step failed (committing draws), for the operator",
    )


class DrawSnapshotEntry(SQLModel, table=True):
    """One eligible merchant in a draw's committed snapshot."""

    __tablename__ = "draw_snapshot_entry"

    draw_id: str = Field(foreign_key="draw.id", primary_key=True, max_length=64)
    uscc: str = Field(primary_key=True, max_length=18)
    tier: str = Field(max_length=1)
    region_code: str = Field(max_length=6)
    sector: str = Field(max_length=32)


class DrawInspector(SQLModel, table=True):
    """One inspector of a draw's committed directory."""

    __tablename__ = "draw_inspector"

    draw_id: str = Field(foreign_key="draw.id", primary_key=True, max_length=64)
    inspector_id: str = Field(primary_key=True, max_length=INSPECTOR_ID_MAX)
    unit: str = Field(max_length=UNIT_MAX)
    region_code: str = Field(max_length=6)


class DrawRecusal(SQLModel, table=True):
    """One committed recusal pair and why (a pair may have both sources)."""

    __tablename__ = "draw_recusal"

    draw_id: str = Field(foreign_key="draw.id", primary_key=True, max_length=64)
    uscc: str = Field(primary_key=True, max_length=18)
    inspector_id: str = Field(primary_key=True, max_length=INSPECTOR_ID_MAX)
    source: str = Field(primary_key=True, max_length=16, description="conflict or previous")
    source_draw_id: str | None = Field(
        default=None, max_length=64, description="previous: the draw whose plan it comes from"
    )


class DrawAssignment(SQLModel, table=True):
    """One planned check: a selected merchant and its inspectors, in plan order."""

    __tablename__ = "draw_assignment"
    __table_args__ = (Index("ix_draw_assignment_uscc", "uscc"),)

    draw_id: str = Field(foreign_key="draw.id", primary_key=True, max_length=64)
    uscc: str = Field(primary_key=True, max_length=18)
    position: int
    tier: str = Field(max_length=1)
    inspector_ids: list[str] = Field(sa_column=Column(JSON, nullable=False))
    due_on: date


# --- API input -----------------------------------------------------------------------------


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InspectorCreate(_Input):
    id: str | None = PField(
        default=None,
        max_length=INSPECTOR_ID_MAX,
        description="public id (A-Z a-z 0-9 _ -); default: the next insp-NNNN",
    )
    name: str = PField(max_length=NAME_MAX, description="private: never published")
    unit: str = PField(max_length=UNIT_MAX, description="e.g. 巴州区市场监督管理局")
    region_code: str = PField(max_length=16, description="GB/T 2260 code of the unit")
    active: bool = True


class InspectorUpdate(_Input):
    name: str | None = PField(default=None, max_length=NAME_MAX)
    unit: str | None = PField(default=None, max_length=UNIT_MAX)
    region_code: str | None = PField(default=None, max_length=16)
    active: bool | None = None


class ConflictCreate(_Input):
    uscc: str = PField(max_length=64, description="the merchant the inspector must never check")
    declared_on: date | None = PField(default=None, description="default today (Asia/Shanghai)")
    reason: str | None = PField(default=None, max_length=REASON_MAX, description="private")


class ItemCreate(_Input):
    title: str = PField(max_length=TITLE_MAX, description="抽查事项")
    legal_basis: str = PField(max_length=LEGAL_BASIS_MAX, description="抽查依据")
    sectors: list[str] = PField(
        min_length=1, max_length=32, description="sector codes the item applies to"
    )
    method: str = PField(max_length=METHOD_MAX, description="抽查方式, e.g. 现场检查")
    active: bool = True


class ItemUpdate(_Input):
    title: str | None = PField(default=None, max_length=TITLE_MAX)
    legal_basis: str | None = PField(default=None, max_length=LEGAL_BASIS_MAX)
    sectors: list[str] | None = PField(default=None, min_length=1, max_length=32)
    method: str | None = PField(default=None, max_length=METHOD_MAX)
    active: bool | None = None


class Rates(_Input):
    """Share of each tier to check, in basis points (300 = 3 %)."""

    A: WholeNumber = PField(ge=0, le=10_000)
    B: WholeNumber = PField(ge=0, le=10_000)
    C: WholeNumber = PField(ge=0, le=10_000)
    D: WholeNumber = PField(ge=0, le=10_000)


class DrawCreate(_Input):
    item_id: WholeNumber = PField(ge=1, le=INT_KEY_MAX)
    regions: list[str] | None = PField(
        default=None, max_length=16, description="region codes in scope; default: all"
    )
    sectors: list[str] | None = PField(
        default=None, max_length=32, description="sectors in scope; default: the item's sectors"
    )
    rates_bp: Rates | None = PField(
        default=None, description="default: the yearly rates of the credit policy in force"
    )
    per_check: WholeNumber = PField(
        default=2, ge=2, le=20, description="inspectors per check (>= 2)"
    )
    inspector_regions: list[str] | None = PField(
        default=None,
        max_length=16,
        description="draw inspectors only from units in these regions; default: every active "
        "inspector",
    )
    planned_start: date | None = PField(default=None, description="default: today")
    planned_end: date = PField(
        description="last day of the checks (results are due 20 working days later)"
    )


# --- API output ----------------------------------------------------------------------------


class WrittenMixin(BaseModel):
    record_id: str
    leaf_index: int
    anchor_status: AnchorStatus


class InspectorPublic(BaseModel):
    id: str
    unit: str
    region_code: str
    active: bool
    record_id: str = PField(description="the newest inspection.inspector record")
    name: str | None = PField(default=None, description="staff only")


class InspectorWritten(InspectorPublic, WrittenMixin):
    pass


class InspectorPage(BaseModel):
    total: int
    items: list[InspectorPublic]


class ConflictPublic(BaseModel):
    id: int
    inspector_id: str
    uscc: str
    declared_on: date
    active: bool
    declaration_record_id: str
    withdrawn_on: date | None
    withdrawn_record_id: str | None
    reason: str | None = PField(default=None, description="staff only")


class ConflictWritten(ConflictPublic, WrittenMixin):
    pass


class ItemPublic(BaseModel):
    id: int
    title: str
    legal_basis: str
    sectors: list[str]
    method: str
    active: bool
    record_id: str


class ItemWritten(ItemPublic, WrittenMixin):
    pass


class ItemPage(BaseModel):
    total: int
    items: list[ItemPublic]


class ChainInfo(BaseModel):
    chain_id: int
    contract_address: str
    ledger_url: str | None = PField(description="a JSON-RPC URL to read the chain from")
    commit_tx: str | None
    commit_block: int | None
    target_block: int | None
    reveal_tx: str | None
    reveal_block: int | None
    head_block: int | None = PField(default=None, description="when known (staff views)")


class DrawRecord(BaseModel):
    """A record of the draw, with its canonical bytes so anyone can hash it."""

    type: str
    record_id: str
    leaf_index: int
    canonical: str = PField(description="the record's canonical bytes (UTF-8 JSON)")
    anchor_status: AnchorStatus


class InspectorRef(BaseModel):
    id: str
    unit: str


class DrawInspectorPublic(InspectorRef):
    region_code: str


class SpotCheckResult(BaseModel):
    record_id: str
    result: str
    checked_on: date | None
    authority: str | None


class AssignmentPublic(BaseModel):
    uscc: str
    tier: str
    position: int
    inspectors: list[InspectorRef]
    due_on: date
    result_status: ResultStatus
    overdue: bool
    results: list[SpotCheckResult] = PField(
        description="current spot-check records with this draw_id (corrections replace, "
        "revocations remove)"
    )


class DrawSummary(BaseModel):
    id: str
    number: int
    status: DrawStatus
    item_id: int
    item_title: str
    regions: list[str]
    sectors: list[str]
    planned_start: date
    planned_end: date
    results_due: date
    snapshot_size: int
    selected: int | None
    results_recorded: int | None
    overdue: int | None
    created_at: datetime


class DrawPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[DrawSummary]


class DrawPublic(BaseModel):
    id: str = PField(description="the on-chain drawId: the record id of draw.committed")
    number: int
    status: DrawStatus
    item: dict[str, Any]
    regions: list[str]
    sectors: list[str]
    inspector_regions: list[str] | None
    planned_start: date
    planned_end: date
    results_due: date
    rates_bp: dict[str, int]
    per_check: int
    commitment: dict[str, Any] = PField(description="the draw.committed record body")
    seed: str | None = PField(description="public only once revealed")
    randomness: str | None
    block_hash: str | None
    chain: ChainInfo
    records: list[DrawRecord]
    inspectors: list[DrawInspectorPublic] = PField(
        description="the committed inspector directory (id, unit, region; never names)"
    )
    plan: dict[str, Any] | None = PField(description="the draw.plan record body")
    plan_digest: str | None
    assignments: list[AssignmentPublic]
    failure: str | None
    overdue: int
    created_at: datetime


class DrawWritten(DrawPublic):
    record_id: str
    leaf_index: int
    anchor_status: AnchorStatus


class RecusalPublic(BaseModel):
    uscc: str
    inspector_id: str
    sources: list[str] = PField(description="conflict, previous")
    previous_draw: str | None = PField(
        default=None, description="previous: the draw whose plan assigned that inspector"
    )


class RecusalList(BaseModel):
    draw_id: str
    recusal_root: str
    count: int
    items: list[RecusalPublic]
