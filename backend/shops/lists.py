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

from sqlalchemy import and_, func, or_, select
from sqlmodel import Session, col

from backend.credit.models import MerchantRating
from backend.credit.policy import TIERS
from backend.merchants import reference
from backend.merchants.models import QUERY_MAX, Merchant, MerchantVerification
from backend.merchants.service import parse_region, parse_sector, parse_sub_area
from backend.merchants.text import clean_text
from backend.shops.service import InvalidTier
from backend.uscc import ALPHABET, LENGTH, normalize_uscc

Status = Literal["unverified", "verified", "all"]
SORTS: dict[str, Any] = {
    "oldest": (col(Merchant.registered_at), col(Merchant.uscc)),
    "newest": (col(Merchant.registered_at).desc(), col(Merchant.uscc)),
    "name": (col(Merchant.name), col(Merchant.uscc)),
    "code": (col(Merchant.uscc),),
}


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
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        # ILIKE: case-insensitive for Latin letters in names on both databases.
        by_name = col(Merchant.name).ilike(f"%{escaped}%", escape="\\")
        code = normalize_uscc(text)
        if 0 < len(code) <= 18 and all(c in ALPHABET for c in code):
            by_code = and_(col(Merchant.uscc) >= code, col(Merchant.uscc) < code + "~")
            conditions.append(or_(by_code, by_name))
        else:
            conditions.append(by_name)
    if region:
        conditions.append(col(Merchant.region_code) == parse_region(region))
    if sector:
        conditions.append(col(Merchant.sector) == parse_sector(sector))
    if sub_area:
        conditions.append(col(Merchant.sub_area) == parse_sub_area(sub_area))
    if tier:
        wanted = tier.strip().upper()
        if wanted not in TIERS:
            raise InvalidTier(f"unknown tier {tier!r}; allowed: {', '.join(TIERS)}")
        # The displayed tier, from the rating cache owned by backend/credit. A correlated
        # EXISTS, not IN (subquery): SQLite builds the IN list (half the city) on every query,
        # 5x slower at 10^5 merchants (scripts/bench.py site).
        conditions.append(
            select(col(MerchantRating.uscc))
            .where(
                col(MerchantRating.uscc) == col(Merchant.uscc),
                col(MerchantRating.tier) == wanted,
            )
            .exists()
        )
    if tier and public:
        # An unverified registration shows the public no tier, so no tier filter finds it.
        conditions.append(
            select(col(MerchantVerification.uscc))
            .where(col(MerchantVerification.uscc) == col(Merchant.uscc))
            .exists()
        )
    # Last, so that a row the other conditions refuse is never read that far (a rejected
    # registration is shown as no merchant).
    conditions.append(col(Merchant.rejected_by).is_(None))
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
    verified = select(col(MerchantVerification.uscc)).where(
        col(MerchantVerification.uscc) == col(Merchant.uscc)
    )
    if status == "unverified":
        conditions.append(~verified.exists())
    elif status == "verified":
        conditions.append(verified.exists())
    total = int(
        session.execute(select(func.count()).select_from(Merchant).where(*conditions)).scalar_one()
    )
    rows = session.execute(
        select(Merchant, verified.exists().label("verified"))
        .where(*conditions)
        .order_by(*SORTS.get(sort, SORTS["oldest"]))
        .limit(limit)
        .offset(offset)
    ).all()
    items = [
        StaffMerchant(
            uscc=m.uscc,
            name=m.name,
            sector_name=reference.SECTORS.get(m.sector, m.sector),
            region_name=reference.DIVISIONS.get(m.region_code, m.region_code),
            address=m.address,
            registered_at=m.registered_at,
            verified=bool(v),
        )
        for m, v in rows
    ]
    return StaffMerchantPage(total=total, limit=limit, offset=offset, items=items)


def names(session: Session, usccs: list[str]) -> dict[str, str]:
    """The names of these merchants (for staff lists of other domains' rows)."""
    if not usccs:
        return {}
    rows = session.execute(
        select(col(Merchant.uscc), col(Merchant.name)).where(col(Merchant.uscc).in_(usccs))
    )
    return {u: n for u, n in rows}


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
    rows = session.execute(
        select(col(Merchant.uscc)).where(*conditions).order_by(col(Merchant.uscc))
        .limit(NAME_MATCHES_MAX)
    )
    return None, [u for (u,) in rows]
