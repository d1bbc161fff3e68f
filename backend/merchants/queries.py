"""Registrations and verifications as the ``merchant`` tables hold them, for pages.

A page must show what the table says, so that the browser's 验证, which compares
the page with the record from the log, notices a table that no longer matches
its record. Only public columns are read (never the contact data), the log
never, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlmodel import Session, col

from backend.db import in_chunks
from backend.ledger.records import format_time
from backend.merchants.models import Merchant, MerchantVerification, MerchantWallet
from backend.timeutil import aware

REGISTERED = "merchant.registered"
VERIFIED = "merchant.verified"


def records_as_held(session: Session, wanted: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``record_id`` → the record as its row holds it: ``type``, ``at``, ``body``
    (public fields only), ``refs``, for ``wanted`` (``record_id`` → the record's
    type). Ids without a row are left out. One query for both kinds."""
    out: dict[str, dict[str, Any]] = {}
    registrations = {rid for rid, t in wanted.items() if t == REGISTERED}
    verifications = {rid for rid, t in wanted.items() if t == VERIFIED}
    if not registrations and not verifications:
        return out
    m, v = Merchant, MerchantVerification
    rows = session.execute(
        select(
            col(m.uscc), col(m.name), col(m.sector), col(m.region_code), col(m.sub_area),
            col(m.address), col(m.registered_at), col(m.record_id),
            col(v.verified_on), col(v.at), col(v.record_id),
        )
        .outerjoin(v, col(v.uscc) == col(m.uscc))
        .where(
            or_(
                col(m.record_id).in_(sorted(registrations)),
                col(v.record_id).in_(sorted(verifications)),
            )
        )
    )
    for uscc, name, sector, region, sub_area, address, at, rid, on, v_at, v_rid in rows:
        if rid in registrations:
            out[rid] = {
                "type": REGISTERED,
                "at": format_time(aware(at)),
                "body": {
                    "uscc": uscc,
                    "name": name,
                    "sector": sector,
                    "region_code": region,
                    "sub_area": sub_area,
                    "address": address,
                },
                "refs": [],
            }
        if v_rid is not None and v_rid in verifications:
            out[v_rid] = {
                "type": VERIFIED,
                "at": format_time(aware(v_at)),
                "body": {"verified_on": on.isoformat()},
                "refs": [{"rel": "verifies", "record": rid}],
            }
    return out


# --- for the packages above: they call these instead of querying the tables ------------------


def count_registered(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(Merchant)).scalar_one())


def count_verified(session: Session) -> int:
    return int(
        session.execute(select(func.count()).select_from(MerchantVerification)).scalar_one()
    )


def registered_usccs() -> Select[str]:
    """The credit code of every registered merchant (a statement, for ``IN`` and
    ``EXISTS`` clauses)."""
    return select(col(Merchant.uscc))


def all_usccs(session: Session) -> list[str]:
    return [str(u) for u in session.execute(registered_usccs()).scalars()]


def count_not_rejected(session: Session) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(Merchant).where(col(Merchant.rejected_by).is_(None))
        ).scalar_one()
    )


def verified_places() -> Select[str, str, str]:
    """(uscc, region_code, sector) of every verified merchant."""
    return select(col(Merchant.uscc), col(Merchant.region_code), col(Merchant.sector)).join(
        MerchantVerification, col(MerchantVerification.uscc) == col(Merchant.uscc)
    )


def count_in_sectors(session: Session, sectors: Sequence[str]) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(Merchant).where(col(Merchant.sector).in_(list(sectors)))
        ).scalar_one()
    )


def verified_in_scope(
    *, sectors: Sequence[str], regions: Sequence[str] | None, sector_index: bool = True
) -> Select[str, str, str]:
    """(uscc, region_code, sector) of the verified merchants in these sectors (and
    regions, if given), in USCC order: the statement a draw's snapshot extends.

    ``sector_index=False`` keeps SQLite off the sector index: it has no statistics and
    would find the scope through that index and then sort 10^6 rows by USCC; for a
    scope covering most merchants, walking the USCC index is about twice as fast
    (``sector || ''`` is not indexed)."""
    sector: Any = col(Merchant.sector)
    if not sector_index:
        sector = sector + ""
    query = (
        select(col(Merchant.uscc), col(Merchant.region_code), col(Merchant.sector))
        .join(MerchantVerification, col(MerchantVerification.uscc) == col(Merchant.uscc))
        .where(sector.in_(list(sectors)))
        .order_by(col(Merchant.uscc))
    )
    if regions:
        query = query.where(col(Merchant.region_code).in_(list(regions)))
    return query


def waiting_for_verification(session: Session, *, limit: int) -> tuple[int, list[Merchant]]:
    """How many registrations wait for a regulator's verification, and the oldest
    ``limit`` of them (a rejected registration waits for nothing: issue 15 M5)."""
    waiting = ~col(Merchant.uscc).in_(select(col(MerchantVerification.uscc))) & col(
        Merchant.rejected_by
    ).is_(None)
    total = int(
        session.execute(select(func.count()).select_from(Merchant).where(waiting)).scalar_one()
    )
    rows = (
        session.execute(
            select(Merchant).where(waiting).order_by(col(Merchant.registered_at)).limit(limit)
        )
        .scalars()
        .all()
    )
    return total, list(rows)


def names_of(session: Session, usccs: Iterable[str]) -> dict[str, str]:
    """uscc -> registered name, for those registered."""
    out: dict[str, str] = {}
    for chunk in in_chunks(usccs):
        rows = session.execute(
            select(col(Merchant.uscc), col(Merchant.name)).where(col(Merchant.uscc).in_(chunk))
        )
        out.update((str(u), str(n)) for u, n in rows)
    return out


def is_registered(session: Session, uscc: str) -> bool:
    return session.get(Merchant, uscc) is not None


def registered_among(session: Session, usccs: Iterable[str]) -> set[str]:
    """Those of these credit codes that are registered (one query per chunk)."""
    known: set[str] = set()
    for chunk in in_chunks(usccs):
        known.update(
            session.execute(select(col(Merchant.uscc)).where(col(Merchant.uscc).in_(chunk)))
            .scalars()
        )
    return known


def is_verified(session: Session, uscc: str) -> bool:
    return session.get(MerchantVerification, uscc) is not None


def merchants_by_uscc(session: Session, usccs: Iterable[str]) -> dict[str, Merchant]:
    """The merchant rows of these credit codes (those registered)."""
    out: dict[str, Merchant] = {}
    for chunk in in_chunks(usccs):
        rows = session.execute(select(Merchant).where(col(Merchant.uscc).in_(chunk))).scalars()
        out.update((m.uscc, m) for m in rows)
    return out


def registered_not_rejected(session: Session, usccs: Sequence[str]) -> list[Merchant]:
    """The merchant rows of these credit codes, leaving out rejected registrations
    (one query; give at most one ``IN`` chunk)."""
    return list(
        session.execute(
            select(Merchant).where(
                col(Merchant.uscc).in_(usccs), col(Merchant.rejected_by).is_(None)
            )
        ).scalars()
    )


def verifications_of(session: Session, usccs: Sequence[str]) -> dict[str, MerchantVerification]:
    """uscc -> verification row, for those verified (one query; one ``IN`` chunk)."""
    rows = session.execute(
        select(MerchantVerification).where(col(MerchantVerification.uscc).in_(usccs))
    ).scalars()
    return {v.uscc: v for v in rows}


def verified_among(among: Callable[[Any], Any]) -> Select[str]:
    """The verified codes that are ``among`` the caller's (a condition built on the code
    column, e.g. ``lambda c: c.in_(codes)``): a statement, for a caller's ``UNION``."""
    return select(col(MerchantVerification.uscc)).where(among(col(MerchantVerification.uscc)))


# Search conditions on the merchant row, for ``backend.merchants.service.find``.


def in_region(code: str) -> Any:
    return col(Merchant.region_code) == code


def in_sector(code: str) -> Any:
    return col(Merchant.sector) == code


def in_sub_area(code: str | None) -> Any:
    return col(Merchant.sub_area) == code


def not_rejected() -> Any:
    return col(Merchant.rejected_by).is_(None)


def is_verified_clause() -> Any:
    """A correlated ``EXISTS``: the merchant row has a verification."""
    return (
        select(col(MerchantVerification.uscc))
        .where(col(MerchantVerification.uscc) == col(Merchant.uscc))
        .exists()
    )


def merchant_uscc_column() -> Any:
    """The ``merchant.uscc`` column, for a correlated clause an owner above builds
    (e.g. a rating's tier)."""
    return col(Merchant.uscc)


def last_wallet_of(uscc: Any) -> Any:
    """A scalar subquery: the newest wallet binding id of merchant ``uscc`` (a column or
    a parameter), NULL if none."""
    w = MerchantWallet.__table__.c  # type: ignore[attr-defined]
    return select(func.max(w.id)).where(w.uscc == uscc).scalar_subquery()


def lock_merchant(session: Session, uscc: str) -> Merchant | None:
    """The merchant row, locked for this transaction's update (``None`` if none)."""
    return session.get(Merchant, uscc, with_for_update=True)


def name_or_code_clause(text: str, code: str | None) -> Any:
    """A name containing ``text`` (ILIKE: case-insensitive for Latin letters on both
    databases), or, with ``code``, a credit code starting with it."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    by_name = col(Merchant.name).ilike(f"%{escaped}%", escape="\\")
    if code is None:
        return by_name
    return or_(and_(col(Merchant.uscc) >= code, col(Merchant.uscc) < code + "~"), by_name)


STAFF_SORTS: dict[str, Any] = {
    "oldest": (col(Merchant.registered_at), col(Merchant.uscc)),
    "newest": (col(Merchant.registered_at).desc(), col(Merchant.uscc)),
    "name": (col(Merchant.name), col(Merchant.uscc)),
    "code": (col(Merchant.uscc),),
}


def staff_page(
    session: Session,
    conditions: Sequence[Any],
    *,
    verified: bool | None,
    sort: str,
    limit: int,
    offset: int,
) -> tuple[int, list[tuple[Merchant, bool]]]:
    """How many merchants match ``conditions`` (and, unless ``verified`` is None, are or
    are not verified), and one page of them with whether each is verified, in the
    :data:`STAFF_SORTS` order ``sort`` (default: oldest first)."""
    is_verified = select(col(MerchantVerification.uscc)).where(
        col(MerchantVerification.uscc) == col(Merchant.uscc)
    )
    where = list(conditions)
    if verified is False:
        where.append(~is_verified.exists())
    elif verified is True:
        where.append(is_verified.exists())
    total = int(
        session.execute(select(func.count()).select_from(Merchant).where(*where)).scalar_one()
    )
    rows = session.execute(
        select(Merchant, is_verified.exists().label("verified"))
        .where(*where)
        .order_by(*STAFF_SORTS.get(sort, STAFF_SORTS["oldest"]))
        .limit(limit)
        .offset(offset)
    ).all()
    return total, [(m, bool(v)) for m, v in rows]


def usccs_matching(session: Session, conditions: Sequence[Any], *, limit: int) -> list[str]:
    """The first ``limit`` credit codes, in order, of the merchants matching ``conditions``."""
    rows = session.execute(
        select(col(Merchant.uscc)).where(*conditions).order_by(col(Merchant.uscc)).limit(limit)
    )
    return [u for (u,) in rows]
