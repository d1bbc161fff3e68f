"""A shop's public page, assembled from the domain services.

Which records are shown is the credit service's disclosure rule; what they say
is read from the owning packages' tables (:func:`records_as_held`) and told by
each kind's declaration (``describe.py``), so that the browser's 验证 can tell a
table that no longer matches its record. Private fields (contact person and
phone, complainants, inspector names) are never read here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlmodel import Session

from backend.config import Settings
from backend.credit import queries as credit_queries
from backend.credit import service as credit_service
from backend.disclosure.charts import TIER_LABELS, TIER_MEANING, HistoryChart, history_chart
from backend.disclosure.describe import SECTION_OF, RecordView, describe, missing_view
from backend.disclosure.shown import BodyReader, Shown, lookup, plain_text
from backend.errors import DomainError
from backend.ledger import index_store
from backend.merchants import queries as merchant_queries
from backend.merchants import service as merchants
from backend.merchants.records import REGISTERED, VERIFIED
from backend.pledges import queries as pledge_queries
from backend.pledges import service as pledges
from backend.shops import service as shops
from backend.shops.models import MerchantPublic
from backend.supervision import queries as supervision_queries
from backend.supervision.kinds import DEMONSTRATION, INSTRUMENT, INSTRUMENT_LABELS

log = logging.getLogger("honest_metering.disclosure")



@dataclass
class Instrument:
    type: str
    serial: str
    certificate_no: str
    verified_on: str
    valid_until: str
    overdue: bool
    record_id: str
    shown: Shown | None = None


@dataclass
class MerchantPage:
    merchant: Any
    credit: Any
    history: list[Any]
    chart: HistoryChart | None
    pledge: Any
    sections: dict[str, list[RecordView]]
    instruments: list[Instrument]
    withheld: int
    tier: str | None
    tier_label: str
    tier_meaning: str
    positive: list[Any]
    negative: list[Any]
    lists: list[str]
    sign_available: bool
    credit_error: str | None = None
    unverified: str | None = None
    """The plain mark of a registration no regulator has verified yet (no tier, no sign)."""
    merchant_shown: Shown | None = None
    """The header's name, sector, region and address: the registration record's fields."""
    pledge_shown: Shown | None = None
    """The current pledge's dates, items and signer: its ``pledge.made`` record's fields."""
    not_shown: list[str] = field(default_factory=list)
    """The merchant's records the page does not list (past their publicity period, or of
    a kind the page does not show): 验证's 记录完整性 step accounts for every record the
    completeness proof names as shown or as one of these."""


def _instruments(
    records: Sequence[RecordView], held: Mapping[str, Mapping[str, Any]], today: date
) -> list[Instrument]:
    """The latest certificate per instrument (a correction replaces what it corrects)."""
    corrected = {r.corrects for r in records if r.corrects}
    label = INSTRUMENT_LABELS
    latest: dict[tuple[str, str], Instrument] = {}
    for r in records:
        if r.type != INSTRUMENT.type or r.record_id in corrected:
            continue
        env = held.get(r.record_id)
        if env is None:
            continue
        reader = BodyReader(Shown(r.record_id), env)
        key = (
            reader.text("instrument_type", label["instrument_type"]),
            reader.text("serial", label["serial"]),
        )
        # Noted as a date (the page shows it as one); kept as ISO text for the comparison.
        valid_until = plain_text(reader.value("valid_until", label["valid_until"], "date"))
        try:
            until = date.fromisoformat(valid_until)
        except ValueError:
            until = None
        inst = Instrument(
            type=key[0],
            serial=key[1],
            certificate_no=reader.text("certificate_no", label["certificate_no"]),
            verified_on=plain_text(lookup(env, "body.verified_on")),
            valid_until=valid_until,
            overdue=until is not None and until <= today,
            record_id=r.record_id,
            shown=reader.shown,
        )
        prev = latest.get(key)
        if prev is None or inst.verified_on >= prev.verified_on:
            latest[key] = inst
    return sorted(latest.values(), key=lambda i: (i.type, i.serial))


def records_as_held(session: Session, wanted: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``record_id`` → the record as its owner's table holds it, for ``wanted``
    (``record_id`` → record type). The page shows these, never the log's bytes: 验证
    then compares them with the log, and a table edited behind the service's back
    shows up as a difference instead of passing for the record."""

    owners: dict[Any, dict[str, str]] = {}
    for rid, rtype in wanted.items():
        if rtype.startswith("merchant."):
            owner: Any = merchant_queries
        elif rtype.startswith("pledge.") or rtype == DEMONSTRATION.type:
            # An outcome kind, but its projection (the awards) is the pledges' table.
            owner = pledge_queries
        elif rtype.startswith("credit."):
            owner = credit_queries
        elif rtype.startswith("supervision."):
            owner = supervision_queries
        else:
            continue
        owners.setdefault(owner, {})[rid] = rtype
    held: dict[str, dict[str, Any]] = {}
    for owner, ids in owners.items():
        for rid, env in owner.records_as_held(session, ids).items():
            # A row whose type is not the record's is not that record's projection.
            if env["type"] == wanted.get(rid):
                held[rid] = env
    return held


def _header_shown(merchant: MerchantPublic) -> Shown:
    s = Shown(merchant.registration_record.record_id)
    s.put("body.name", merchant.name, "名称")
    s.put("body.sector", merchant.sector, "行业")
    s.put("body.region_code", merchant.region_code, "地区")
    s.put("body.sub_area", merchant.sub_area, "园区")
    s.put("body.address", merchant.address, "地址")
    s.put("at", merchant.registered_at, "登记时间", "time")
    return s


def _pledge_shown(pledge: Any) -> Shown:
    s = Shown(pledge.made_record.record_id)
    s.put("body.items", list(pledge.items), "承诺事项", "json")
    s.put("body.extra_commitments", pledge.extra_commitments, "补充承诺")
    s.put("body.valid_from", pledge.valid_from, "有效期起", "date")
    s.put("body.valid_until", pledge.valid_until, "有效期至", "date")
    s.put("at", pledge.made_at, "承诺时间", "time")
    signer = pledge.signature.signer if pledge.signature is not None else None
    s.put("body.signature.signer", signer, "电子签名")
    return s


def merchant_page(
    session: Session,
    *,
    settings: Settings,
    uscc: str,
    today: date,
    merchant: MerchantPublic | None = None,
) -> MerchantPage:
    """A shop's page. ``merchant``: its public view when the caller has it already
    (the public page takes the kept one, ``backend/merchants/views.py``).

    Which records are shown is the credit service's disclosure rule; what they say
    is read from the tables (:func:`records_as_held`), so that the browser's 验证
    can tell a table that no longer matches its record.
    """

    if merchant is None:
        merchant = shops.get_public(session, settings=settings, uscc=uscc, today=today)
    code = merchant.uscc

    credit_error = None
    credit = history = records = None
    # No tier (nor sign) before a regulator verifies the registration (issue 15 M5).
    verified = merchant.verification.status == "verified"
    try:
        if verified:
            credit = credit_service.get_credit(session, uscc=code, as_of=None, today=today)
            history = credit_service.credit_history(session, uscc=code).items
        records = credit_service.disclosed_records(session, uscc=code, today=today)
    except DomainError as exc:
        # The merchant exists (get_public found it); only the rating can be unavailable,
        # e.g. before any credit policy is published. Show the rest of the page.
        credit_error = exc.detail
        log.warning("credit data unavailable for %s: %s", code, exc.detail)

    pledge = None
    if merchant.current_pledge is not None:
        pledge = pledges.get_pledge(
            session, pledge_id=merchant.current_pledge.pledge_id, today=today
        )

    # (record id, type, leaf index, anchored) of every record the page lists.
    listed: list[tuple[str, str, int | None, bool]] = []
    reg = merchant.registration_record
    listed.append(
        (reg.record_id, REGISTERED, reg.leaf_index,
         reg.anchor_status.status == "anchored")
    )
    ver = merchant.verification.record
    if ver is not None:
        listed.append(
            (ver.record_id, VERIFIED, ver.leaf_index,
             ver.anchor_status.status == "anchored")
        )
    if records is not None:
        listed.extend(
            (item.record_id, item.type, item.leaf_index, item.anchored) for item in records.items
        )
    listed_ids = {rid for rid, _, _, _ in listed}
    not_shown = [rid for rid in index_store.record_ids_of(session, code) if rid not in listed_ids]
    held = records_as_held(session, {rid: rtype for rid, rtype, _, _ in listed})
    views: list[RecordView] = []
    for rid, rtype, idx, anchored in listed:
        env = held.get(rid)
        if env is None:
            views.append(
                missing_view(record_type=rtype, record_id=rid, leaf_index=idx, anchored=anchored)
            )
        else:
            views.append(describe(env, record_id=rid, leaf_index=idx, anchored=anchored))
    sections: dict[str, list[RecordView]] = {}
    for v in sorted(views, key=lambda v: v.leaf_index or 0, reverse=True):
        sections.setdefault(SECTION_OF.get(v.type, "other"), []).append(v)

    tier = credit.tier if credit is not None else None
    factors = list(credit.factors) if credit is not None else []
    lists = []
    if credit is not None:
        if credit.on_serious_list:
            lists.append("列入严重违法失信名单")
        if credit.on_abnormal_list:
            lists.append("列入经营异常名录")
    chart = history_chart([(h.from_date, h.tier) for h in history or []], today=today)
    return MerchantPage(
        merchant=merchant,
        credit=credit,
        history=list(reversed(history or [])),
        chart=chart,
        pledge=pledge,
        sections=sections,
        instruments=_instruments(views, held, today),
        withheld=records.withheld if records is not None else 0,
        tier=tier,
        tier_label=TIER_LABELS.get(tier or "", "暂未评定"),
        tier_meaning=TIER_MEANING.get(tier or "", ""),
        positive=[f for f in factors if f.points > 0],
        negative=[f for f in factors if f.points <= 0],
        lists=lists,
        sign_available=verified and pledge is not None and pledge.status == "active",
        unverified=None if verified else merchants.UNVERIFIED_ZH,
        credit_error=credit_error,
        merchant_shown=_header_shown(merchant),
        pledge_shown=_pledge_shown(pledge) if pledge is not None else None,
        not_shown=not_shown,
    )


