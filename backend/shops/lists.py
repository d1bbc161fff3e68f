"""The staff's list of merchants: search, filters, verification status, sorting, paging.

The same search as the public's (:func:`search_conditions`:
a name fragment or a code prefix, region, sector, sub-area, tier), plus what staff
work by: verified or not, and an order (registration time, name, code). Reads only;
verifying is :func:`backend.merchants.service.verify_merchant`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlmodel import Session

from backend.credit import queries as credit_queries
from backend.credit.policy import TIERS
from backend.merchants import queries as merchant_queries
from backend.merchants import reference
from backend.merchants.models import QUERY_MAX
from backend.merchants.service import parse_region, parse_sector, parse_sub_area
from backend.merchants.text import clean_text
from backend.shops.service import InvalidTier
from backend.uscc import ALPHABET, LENGTH, normalize_uscc

Status = Literal["unverified", "verified", "all"]
SORTS = merchant_queries.STAFF_SORTS


def search_conditions(
    *,
    q: str | None,
    region: str | None,
    sector: str | None,
    sub_area: str | None,
    tier: str | None,
    public: bool = True,
) -> list[Any]:
    """The WHERE conditions of a merchant search (see :func:`search`); the staff lists
    (``backend/merchants/lists.py``) add their own to these."""
    conditions = []
    if q is not None and q.strip():  # an empty search box means "everything"
        text = clean_text(q, field="q", max_len=QUERY_MAX).strip()
        code = normalize_uscc(text)
        as_code = 0 < len(code) <= 18 and all(c in ALPHABET for c in code)
        conditions.append(merchant_queries.name_or_code_clause(text, code if as_code else None))
    if region:
        conditions.append(merchant_queries.in_region(parse_region(region)))
    if sector:
        conditions.append(merchant_queries.in_sector(parse_sector(sector)))
    if sub_area:
        conditions.append(merchant_queries.in_sub_area(parse_sub_area(sub_area)))
    if tier:
        wanted = tier.strip().upper()
        if wanted not in TIERS:
            raise InvalidTier(f"unknown tier {tier!r}; allowed: {', '.join(TIERS)}")
        # The displayed tier, from the rating cache owned by backend/credit.
        conditions.append(
            credit_queries.has_tier_clause(merchant_queries.merchant_uscc_column(), wanted)
        )
    if tier and public:
        # An unverified registration shows the public no tier, so no tier filter finds it.
        conditions.append(merchant_queries.is_verified_clause())
    # Last, so that a row the other conditions refuse is never read that far (a rejected
    # registration is shown as no merchant).
    conditions.append(merchant_queries.not_rejected())
    return conditions


@dataclass(frozen=True)
class StaffMerchant:
    uscc: str
    name: str
    sector_name: str
    region_name: str
    address: str
    registered_at: datetime
    verified: bool


@dataclass(frozen=True)
class StaffMerchantPage:
    total: int
    limit: int
    offset: int
    items: list[StaffMerchant]


def staff_merchants(
    session: Session,
    *,
    q: str | None = None,
    region: str | None = None,
    sector: str | None = None,
    tier: str | None = None,
    status: Status = "unverified",
    sort: str = "oldest",
    limit: int = 50,
    offset: int = 0,
) -> StaffMerchantPage:
    """One page of merchants as staff look for them, and how many match in all."""
    conditions = search_conditions(
        q=q, region=region, sector=sector, sub_area=None, tier=tier, public=False
    )
    total, rows = merchant_queries.staff_page(
        session,
        conditions,
        verified={"unverified": False, "verified": True}.get(status),
        sort=sort,
        limit=limit,
        offset=offset,
    )
    items = [
        StaffMerchant(
            uscc=m.uscc,
            name=m.name,
            sector_name=reference.SECTORS.get(m.sector, m.sector),
            region_name=reference.DIVISIONS.get(m.region_code, m.region_code),
            address=m.address,
            registered_at=m.registered_at,
            verified=v,
        )
        for m, v in rows
    ]
    return StaffMerchantPage(total=total, limit=limit, offset=offset, items=items)


def names(session: Session, usccs: list[str]) -> dict[str, str]:
    """The names of these merchants (for staff lists of other domains' rows)."""
    return merchant_queries.names_of(session, usccs)


NAME_MATCHES_MAX = 1000


def who(session: Session, q: str) -> tuple[str | None, list[str] | None]:
    """What a staff search box names: ``(code, None)`` for a whole credit code (the list's
    service checks it, so a mistyped one is named), ``(None, codes)`` for a name fragment
    or a code prefix (the first :data:`NAME_MATCHES_MAX` merchants it matches), and
    ``(None, None)`` for an empty box."""
    text = q.strip()
    if not text:
        return None, None
    code = normalize_uscc(text)
    if len(code) == LENGTH and code.isascii() and code.isalnum():
        return code, None
    conditions = search_conditions(q=text, region=None, sector=None, sub_area=None, tier=None)
    return None, merchant_queries.usccs_matching(session, conditions, limit=NAME_MATCHES_MAX)
