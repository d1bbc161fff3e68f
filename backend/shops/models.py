"""The public face of a merchant: what anyone may see about a shop, composed from the
registry, its pledges and awards and its credit (the layers below), and kept.

- :class:`MerchantPublic`: the public view (``GET /api/merchants/{uscc}``), kept in
  ``merchant_view`` by ``backend/shops/views.py``;
- :class:`MerchantSummary` / :class:`MerchantPage`: a search result.

Never the contact data.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel
from pydantic import Field as PField
from sqlalchemy import BigInteger, Column, Text
from sqlmodel import Field, SQLModel

from backend.accounts.models import AccountPublic
from backend.ledger.status import AnchorStatus, WrittenRecord
from backend.merchants.models import VerificationPublic
from backend.pledges.models import DemonstrationPublic, PledgeSummary


class MerchantView(SQLModel, table=True):
    """A merchant's public view as ``GET /api/merchants/{uscc}`` serves it, with the
    version stamp it was built at: a cache, never the truth, rebuilt whenever the
    stamp no longer matches (backend/shops/views.py). Dropping every row is safe."""

    __tablename__ = "merchant_view"

    uscc: str = Field(primary_key=True, max_length=18)
    body: str = Field(sa_column=Column(Text, nullable=False))
    last_leaf: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_wallet: int | None = None
    built_on: date
    valid_until: date | None = None
    pending_from: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    built_at: datetime


class MerchantSummary(BaseModel):
    uscc: str
    name: str
    sector: str
    sector_name: str
    region_code: str
    region_name: str
    sub_area: str | None
    sub_area_name: str | None
    verified: bool
    verification_label: Literal["已核验", "未核验"]
    active_pledge: bool
    demonstration_unit: bool


class MerchantPublic(BaseModel):
    """What anyone may see about a merchant (never the contact data)."""

    uscc: str
    name: str
    sector: str
    sector_name: str
    region_code: str
    region_name: str
    sub_area: str | None
    sub_area_name: str | None
    address: str
    registered_at: datetime
    registration_record: WrittenRecord
    verification: VerificationPublic
    wallet_address: str | None
    current_pledge: PledgeSummary | None
    demonstration: DemonstrationPublic | None = PField(
        description="the current demonstration-unit award, if any"
    )
    public_url: str


class MerchantRegistered(MerchantPublic):
    record_id: str
    leaf_index: int
    anchor_status: AnchorStatus
    account: AccountPublic


class MerchantPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[MerchantSummary]
