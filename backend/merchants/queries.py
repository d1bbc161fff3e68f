"""Registrations and verifications as the ``merchant`` tables hold them, for pages.

A page must show what the table says, so that the browser's 验证, which compares
the page with the record from the log, notices a table that no longer matches
its record. Only public columns are read (never the contact data), the log
never, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, or_, select
from sqlmodel import Session, col

from backend.db import in_chunks
from backend.ledger.records import format_time
from backend.merchants.models import Merchant, MerchantVerification
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


def is_verified(session: Session, uscc: str) -> bool:
    return session.get(MerchantVerification, uscc) is not None


def merchants_by_uscc(session: Session, usccs: Iterable[str]) -> dict[str, Merchant]:
    """The merchant rows of these credit codes (those registered)."""
    out: dict[str, Merchant] = {}
    for chunk in in_chunks(usccs):
        rows = session.execute(select(Merchant).where(col(Merchant.uscc).in_(chunk))).scalars()
        out.update((m.uscc, m) for m in rows)
    return out
