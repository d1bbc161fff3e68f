"""The public face of a merchant, composed: its public view (registry, verification,
wallet, current pledge and demonstration award) and public search with the credit-tier
filter. The registry (``backend.merchants``) knows nothing of pledges or credit; this
package sits above them and puts the pieces together for the public.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import ARRAY, Date, String, any_, bindparam, literal, union_all
from sqlmodel import Session

from backend.config import Settings
from backend.credit import queries as credit_queries
from backend.credit.policy import TIERS
from backend.db import Database
from backend.errors import ValidationFailed
from backend.ledger.status import WrittenRecord, anchor_statuses
from backend.merchants import queries as merchant_queries
from backend.merchants import reference
from backend.merchants import service as registry
from backend.merchants.models import (
    QUERY_MAX,
    Merchant,
    MerchantRegistration,
    VerificationPublic,
)
from backend.merchants.text import clean_text
from backend.pledges import queries
from backend.shops.models import MerchantPage, MerchantPublic, MerchantRegistered, MerchantSummary


class InvalidTier(ValidationFailed):
    pass


def public_view(
    session: Session, merchant: Merchant, *, settings: Settings, today: date
) -> MerchantPublic:
    return public_views(session, [merchant.uscc], settings=settings, today=today)[merchant.uscc]


def public_views(
    session: Session, usccs: Iterable[str], *, settings: Settings, today: date
) -> dict[str, MerchantPublic]:
    """The public views of the merchants ``usccs`` that exist, on ``today``: a handful
    of queries for any number of merchants (``backend.shops.views`` warms its
    cache with whole batches)."""
    out: dict[str, MerchantPublic] = {}
    wanted = sorted(set(usccs))
    for i in range(0, len(wanted), 500):
        out.update(_public_views(session, wanted[i : i + 500], settings=settings, today=today))
    return out


def _public_views(
    session: Session, usccs: list[str], *, settings: Settings, today: date
) -> dict[str, MerchantPublic]:
    merchants = merchant_queries.registered_not_rejected(session, usccs)
    verified = merchant_queries.verifications_of(session, usccs)
    wallets = registry.current_wallets(session, usccs)
    # The current pledge and award: active today, the newest if ever more than one.
    pledges = queries.current_pledges(session, usccs, today)
    awards = queries.current_awards(session, usccs, today)
    status = anchor_statuses(
        session,
        [m.leaf_index for m in merchants]
        + [v.leaf_index for v in verified.values()]
        + [a.leaf_index for a in awards.values()],
    )

    def written_at(record_id: str, leaf_index: int) -> WrittenRecord:
        return WrittenRecord(
            record_id=record_id, leaf_index=leaf_index, anchor_status=status[leaf_index]
        )

    out = {}
    for m in merchants:
        sub = reference.SUB_AREAS.get(m.sub_area) if m.sub_area else None
        verification = verified.get(m.uscc)
        pledge = pledges.get(m.uscc)
        award = awards.get(m.uscc)
        out[m.uscc] = MerchantPublic(
            uscc=m.uscc,
            name=m.name,
            sector=m.sector,
            sector_name=reference.SECTORS[m.sector],
            region_code=m.region_code,
            region_name=reference.DIVISIONS[m.region_code],
            sub_area=m.sub_area,
            sub_area_name=sub.name if sub else None,
            address=m.address,
            registered_at=m.registered_at,
            registration_record=written_at(m.record_id, m.leaf_index),
            verification=(
                registry.verification_of(verification, status[verification.leaf_index])
                if verification is not None
                else VerificationPublic(status="unverified", label="未核验")
            ),
            wallet_address=wallets.get(m.uscc),
            # Active today, so neither withdrawn nor renewed (nor, for the award, withdrawn).
            current_pledge=(
                queries.summary_of(pledge, status="active") if pledge is not None else None
            ),
            demonstration=(
                queries.award_of(
                    award, None, status="active", written=written_at(award.record_id,
                                                                     award.leaf_index)
                )
                if award is not None
                else None
            ),
            public_url=registry.public_url(settings, m.uscc),
        )
    return out


def get_public(session: Session, *, settings: Settings, uscc: str, today: date) -> MerchantPublic:
    return public_view(
        session, registry.get_merchant(session, registry.parse_uscc(uscc)),
        settings=settings, today=today,
    )


def search(
    session: Session,
    *,
    q: str | None,
    region: str | None,
    sector: str | None,
    sub_area: str | None,
    tier: str | None,
    limit: int,
    offset: int,
    today: date,
) -> MerchantPage:
    """Public search by name or credit code, with filters, best matches first.

    The text is looked up in the trigram index over the search keys
    (``backend/merchants/search.py``): a name is found with characters left out or one
    typed wrong, a credit code by any fragment (and, when the fragment finds nothing,
    with one character wrong). Without text, results are ordered by credit code.
    Each lookup is one query: the page's merchants, how many match, and the page's
    flags (verified, pledged, demonstration unit today).
    """
    text, conditions = _criteria(q, region, sector, sub_area, tier)
    sqlite = session.get_bind().dialect.name == "sqlite"
    for step in registry.find_steps(text, conditions, sqlite=sqlite):
        rows = session.execute(_statement(step, limit, offset)).all()
        if rows or step.last:
            total = registry.found_total(rows, count=True, offset=offset)
            if total is None:
                total = int(session.execute(step.count()).scalar_one())
            flags = session.execute(_flags_statement(sqlite), _flags_params(rows, today)).all()
            return _page(rows, flags, total, limit, offset)
    return MerchantPage(total=0, limit=limit, offset=offset, items=[])


async def search_async(
    db: Database,
    *,
    q: str | None,
    region: str | None,
    sector: str | None,
    sub_area: str | None,
    tier: str | None,
    limit: int,
    offset: int,
    today: date,
) -> MerchantPage:
    """:func:`search` for the API, awaited on the event loop: on PostgreSQL each lookup
    is one read on the asynchronous connections (``Database.quick_read_async``), no
    thread hop and no session."""
    text, conditions = _criteria(q, region, sector, sub_area, tier)
    for step in registry.find_steps(text, conditions, sqlite=db.is_sqlite):
        rows = await db.quick_read_async(
            _statement(step, limit, offset), {}, keep_compiled=False
        )
        if rows or step.last:
            total = registry.found_total(rows, count=True, offset=offset)
            if total is None:
                (row,) = await db.quick_read_async(step.count(), {}, keep_compiled=False)
                total = int(row[0])
            flags: Sequence[Any] = []
            if rows:
                flags = await db.quick_read_async(
                    _flags_statement(db.is_sqlite), _flags_params(rows, today)
                )
            return _page(rows, flags, total, limit, offset)
    return MerchantPage(total=0, limit=limit, offset=offset, items=[])


def _criteria(
    q: str | None, region: str | None, sector: str | None, sub_area: str | None,
    tier: str | None,
) -> tuple[str, list[Any]]:
    """The search text (cleaned) and the filters as SQL conditions."""
    conditions: list[Any] = []
    text = ""
    if q is not None and q.strip():  # an empty search box means "everything"
        text = clean_text(q, field="q", max_len=QUERY_MAX).strip()
    if region:
        conditions.append(merchant_queries.in_region(registry.parse_region(region)))
    if sector:
        conditions.append(merchant_queries.in_sector(registry.parse_sector(sector)))
    if sub_area:
        conditions.append(merchant_queries.in_sub_area(registry.parse_sub_area(sub_area)))
    if tier:
        wanted = tier.strip().upper()
        if wanted not in TIERS:
            raise InvalidTier(f"unknown tier {tier!r}; allowed: {', '.join(TIERS)}")
        # The displayed tier, from the rating cache owned by backend/credit (a correlated
        # EXISTS on the merchant row).
        conditions.append(
            credit_queries.has_tier_clause(merchant_queries.merchant_uscc_column(), wanted)
        )
        # An unverified registration shows the public no tier, so no tier filter finds it.
        conditions.append(merchant_queries.is_verified_clause())
    # A rejected registration is shown as no merchant.
    conditions.append(merchant_queries.not_rejected())
    return text, conditions


def _statement(step: registry.FindStep, limit: int, offset: int) -> Any:
    """One page of ``step``'s matches and how many match."""
    return registry.paged(step, registry.FOUND_COLUMNS, limit=limit, offset=offset, count=True)


def _flags_of(among: Callable[[Any], Any], today: Any) -> Any:
    """Which merchants are verified, pledged and demonstration units ``today``, of those
    whose code is ``among`` the page's (a condition on a code column): each owner's
    statement, tagged, in one query."""
    return union_all(
        merchant_queries.verified_among(among).add_columns(literal("verified").label("flag")),
        queries.pledged_among(among, today).add_columns(literal("pledged")),
        queries.awarded_among(among, today).add_columns(literal("awarded")),
    )


_TODAY = bindparam("today", type_=Date)
FLAGS_SQLITE = _flags_of(lambda c: c.in_(bindparam("usccs", expanding=True)), _TODAY)
FLAGS_POSTGRES = _flags_of(lambda c: c == any_(bindparam("usccs", type_=ARRAY(String))), _TODAY)
"""The flags of a page of results: one statement whatever the page's size, so that its
text (and on PostgreSQL its prepared plan) is the same for every search."""


def _flags_statement(sqlite: bool) -> Any:
    return FLAGS_SQLITE if sqlite else FLAGS_POSTGRES


def _flags_params(rows: Sequence[Any], today: date) -> dict[str, Any]:
    return {"usccs": [r.uscc for r in rows], "today": today}


def _page(
    rows: Sequence[Any], flags: Sequence[Any], total: int, limit: int, offset: int
) -> MerchantPage:
    found: dict[str, set[str]] = {"verified": set(), "pledged": set(), "awarded": set()}
    for uscc, flag in flags:
        found[flag].add(uscc)
    verified, pledged, awarded = found["verified"], found["pledged"], found["awarded"]
    items = []
    for m in rows:
        sub = reference.SUB_AREAS.get(m.sub_area) if m.sub_area else None
        items.append(
            MerchantSummary(
                uscc=m.uscc,
                name=m.name,
                sector=m.sector,
                sector_name=reference.SECTORS[m.sector],
                region_code=m.region_code,
                region_name=reference.DIVISIONS[m.region_code],
                sub_area=m.sub_area,
                sub_area_name=sub.name if sub else None,
                verified=m.uscc in verified,
                verification_label="已核验" if m.uscc in verified else "未核验",
                active_pledge=m.uscc in pledged,
                demonstration_unit=m.uscc in awarded,
            )
        )
    return MerchantPage(total=total, limit=limit, offset=offset, items=items)


def registered(
    session: Session, registration: MerchantRegistration, *, settings: Settings, today: date
) -> MerchantRegistered:
    """The answer to a registration: the new merchant's public view, its record, its account."""
    view = public_view(
        session, registry.get_merchant(session, registration.uscc), settings=settings,
        today=today,
    )
    return MerchantRegistered(
        **view.model_dump(),
        record_id=registration.record.record_id,
        leaf_index=registration.record.leaf_index,
        anchor_status=registration.record.anchor_status,
        account=registration.account,
    )
