"""The staff's list of merchants: search, filters, verification status, sorting, paging.

The same search as the public's (:func:`backend.merchants.service.search_conditions`:
a name fragment or a code prefix, region, sector, sub-area, tier), plus what staff
work by: verified or not, and an order (registration time, name, code). Reads only;
verifying is :func:`backend.merchants.service.verify_merchant`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlmodel import Session, col

from backend.merchants import reference
from backend.merchants.models import Merchant, MerchantVerification
from backend.merchants.service import search_conditions
from backend.uscc import LENGTH, normalize_uscc

Status = Literal["unverified", "verified", "all"]
SORTS: dict[str, Any] = {
    "oldest": (col(Merchant.registered_at), col(Merchant.uscc)),
    "newest": (col(Merchant.registered_at).desc(), col(Merchant.uscc)),
    "name": (col(Merchant.name), col(Merchant.uscc)),
    "code": (col(Merchant.uscc),),
}


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
