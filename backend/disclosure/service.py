"""What the public pages show, assembled from the domain services.

Each page function calls the owning domain's service (merchants, pledges,
credit, ledger, supervision, inspections) directly — never HTTP to itself — and
turns the results into plain view data: labels in Chinese, chart geometry,
records grouped by section. The rules (what a tier is, which records are still
publicised, who may see what) stay with their owners; nothing here decides
them. Private fields (contact person and phone, complainants, inspector names)
are never read here, so they cannot reach a page.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from backend.accounts.service import Principal
from backend.config import Settings
from backend.credit import queries as credit_queries
from backend.credit import repair
from backend.credit import service as credit
from backend.credit import service as credit_service
from backend.credit.models import CreditRepair, CreditRepairDecision, MerchantRating
from backend.disclosure.shown import Shown, date_text, lookup, yes_text, yuan
from backend.errors import DomainError
from backend.inspections import directory, draws
from backend.ledger import service as ledger
from backend.merchants import queries as merchant_queries
from backend.merchants import reference
from backend.merchants import service as merchants
from backend.merchants.models import Merchant, MerchantVerification
from backend.pledges import queries
from backend.pledges import queries as pledge_queries
from backend.pledges import service as pledges
from backend.pledges.templates import current_template
from backend.shops import service as shops
from backend.shops.models import MerchantPublic
from backend.supervision import queries as supervision_queries
from backend.supervision import service as supervision
from backend.supervision.models import CSV_COLUMNS

log = logging.getLogger("honest_metering.disclosure")

TIERS = ("A", "B", "C", "D")
TIER_LABELS = {
    "A": "A 级 · 守信",
    "B": "B 级 · 基本守信",
    "C": "C 级 · 失信风险较高",
    "D": "D 级 · 严重失信风险",
}
TIER_MEANING = {
    "A": "计量信用好，抽查比例和频次较低。",
    "B": "计量信用一般，按常规比例抽查。",
    "C": "计量信用风险较高，提高抽查比例和频次。",
    "D": "计量信用风险高，大幅提高抽查比例和频次，必要时现场检查。",
}
PAGE_SIZE = 20


def home_of(user: Principal) -> str:
    return "/merchant" if user.role == "merchant" else "/regulator"


@dataclass
class Option:
    value: str
    label: str


def region_options() -> list[Option]:
    return [Option(k, v) for k, v in reference.DIVISIONS.items()]


def sector_options() -> list[Option]:
    return [Option(k, v) for k, v in reference.SECTORS.items()]


def sub_area_options() -> list[Option]:
    return [Option(k, a.name) for k, a in reference.SUB_AREAS.items()]


def tier_options() -> list[Option]:
    return [Option(t, TIER_LABELS[t]) for t in TIERS]


# --- charts (server-rendered SVG geometry) ----------------------------------------------


@dataclass
class Bar:
    tier: str
    label: str
    count: int
    share: float
    y: int
    width: float


def tier_bars(by_tier: Mapping[str, int], *, unrated: int = 0, width: int = 300) -> list[Bar]:
    """Horizontal bars, one per tier, scaled to the largest count."""
    rows = [(t, TIER_LABELS[t], int(by_tier.get(t, 0))) for t in TIERS]
    if unrated:
        rows.append(("none", "未评定", unrated))
    total = sum(n for _, _, n in rows) or 1
    top = max((n for _, _, n in rows), default=0) or 1
    return [
        Bar(
            tier=t,
            label=label,
            count=n,
            share=n / total,
            y=i * 34,
            width=round(max(n / top * width, 2 if n else 0), 1),
        )
        for i, (t, label, n) in enumerate(rows)
    ]


@dataclass
class StepPoint:
    x: float
    y: float
    tier: str
    on: date


@dataclass
class HistoryChart:
    path: str
    points: list[StepPoint]
    start: date
    end: date
    width: int
    height: int
    levels: list[tuple[str, float]]


def history_chart(
    items: Sequence[tuple[date, str]], *, today: date, width: int = 360, height: int = 150
) -> HistoryChart | None:
    """A step line of the tier over time (A at the top), from ``(from_date, tier)`` pairs."""
    pts = sorted((d, t) for d, t in items if t in TIERS)
    if not pts:
        return None
    start = min(pts[0][0], today - timedelta(days=30))
    end = max(today, pts[-1][0]) + timedelta(days=1)
    span = max((end - start).days, 1)
    left, right, top, bottom = 26, 8, 12, 24
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(d: date) -> float:
        return round(left + (d - start).days / span * plot_w, 1)

    def y(t: str) -> float:
        return round(top + TIERS.index(t) / (len(TIERS) - 1) * plot_h, 1)

    # Keep only changes of tier (one point per day: the day's last value).
    by_day: dict[date, str] = {}
    for d, t in pts:
        by_day[d] = t
    changes: list[tuple[date, str]] = []
    for d, t in sorted(by_day.items()):
        if not changes or changes[-1][1] != t:
            changes.append((d, t))
    path = []
    for i, (d, t) in enumerate(changes):
        if i == 0:
            path.append(f"M{x(d)},{y(t)}")
        else:
            path.append(f"H{x(d)}V{y(t)}")
    path.append(f"H{x(end)}")
    return HistoryChart(
        path="".join(path),
        points=[StepPoint(x(d), y(t), t, d) for d, t in changes],
        start=start,
        end=end,
        width=width,
        height=height,
        levels=[(t, y(t)) for t in TIERS],
    )


# --- records in plain language -----------------------------------------------------------

SECTION_OF = {
    "merchant.registered": "registration",
    "merchant.verified": "registration",
    "pledge.made": "pledge-records",
    "pledge.withdrawn": "pledge-records",
    "supervision.spot_check": "spot_check",
    "supervision.penalty": "penalty",
    "credit.repair_applied": "penalty",
    "credit.repair_decided": "penalty",
    "supervision.complaint_verified": "complaint",
    "supervision.abnormal_list": "lists",
    "supervision.serious_list": "lists",
    "supervision.instrument": "instrument",
    "supervision.demonstration": "demonstration",
    "supervision.revocation": "other",
}


@dataclass
class RecordView:
    record_id: str
    leaf_index: int | None
    type: str
    title: str
    facts: list[tuple[str, str]]
    at: str
    anchored: bool
    tone: str = ""  # "ok", "bad", "warn" or ""
    corrects: str | None = None
    refs: list[tuple[str, str]] = field(default_factory=list)
    shown: Shown | None = None
    """The values the title and facts were made from, for 验证 (``None``: not checked)."""

    @property
    def dom_id(self) -> str:
        return "v-" + self.record_id[:16]

    def field_of(self, label: str) -> str | None:
        return self.shown.field_of(label) if self.shown is not None else None


REL_LABELS = {
    "supersedes": "更正",
    "revokes": "撤销",
    "renews": "续期",
    "verifies": "核验",
    "repairs": "修复",
    "decides": "决定",
}

TYPE_LABELS = {
    "merchant.registered": "登记注册",
    "merchant.verified": "登记信息核验",
    "pledge.made": "诚信计量承诺",
    "pledge.withdrawn": "撤回诚信计量承诺",
    "supervision.spot_check": "监督抽查",
    "supervision.penalty": "行政处罚",
    "credit.repair_applied": "申请信用修复",
    "credit.repair_decided": "信用修复决定",
    "supervision.complaint_verified": "投诉举报核实",
    "supervision.abnormal_list": "经营异常名录",
    "supervision.serious_list": "严重违法失信名单",
    "supervision.instrument": "强制检定计量器具",
    "supervision.demonstration": "诚信计量示范单位",
    "supervision.revocation": "撤销监管记录",
}


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def describe(
    env: Mapping[str, Any],
    *,
    record_id: str,
    leaf_index: int | None,
    anchored: bool,
    template_texts: Mapping[str, str] | None = None,
) -> RecordView:
    """A record as a title and labelled facts, in Chinese. Presentation only.

    ``env`` is the record as the page has it (from a table); every field the title
    and facts are made from is noted in the view's :class:`Shown`, so that 验证 can
    compare it with the record in the log.
    """
    s = Shown(record_id)
    t = str(env.get("type", ""))

    def take(path: str, label: str, fmt: str = "text") -> Any:
        return s.take(env, "body." + path, label, fmt)

    facts: list[tuple[str, str]] = []
    tone = ""
    title = t
    if t == "merchant.registered":
        title = "登记注册"
        sector = _str(take("sector", "行业"))
        region = _str(take("region_code", "地区"))
        facts = [
            ("名称", _str(take("name", "名称"))),
            ("行业", reference.SECTORS.get(sector, sector)),
            ("地区", reference.DIVISIONS.get(region, region)),
            ("地址", _str(take("address", "地址"))),
        ]
    elif t == "merchant.verified":
        title = "市场监管部门已核验登记信息"
        facts = [("核验日期", date_text(take("verified_on", "核验日期", "date")))]
        tone = "ok"
    elif t == "pledge.made":
        title = "作出诚信计量承诺"
        valid_from = date_text(take("valid_from", "有效期起", "date"))
        valid_until = date_text(take("valid_until", "有效期至", "date"))
        items = take("items", "承诺事项", "count")
        facts = [
            ("有效期", f"{valid_from} 起，至 {valid_until} 前"),
            ("承诺事项", f"{len(items)} 项" if isinstance(items, list) else "—"),
        ]
        signer = take("signature.signer", "签名地址")
        if signer:
            facts.append(("电子签名", "EIP-712，签名地址 " + str(signer)))
        tone = "ok"
    elif t == "pledge.withdrawn":
        title = "撤回诚信计量承诺"
        facts = [
            ("撤回日期", date_text(take("withdrawn_on", "撤回日期", "date"))),
            ("原因", _str(take("reason", "原因"))),
        ]
        tone = "warn"
    elif t == "supervision.spot_check":
        result = _str(take("result", "检查结果"))
        title = f"监督抽查：{result}"
        facts = [
            ("检查日期", date_text(take("checked_on", "检查日期", "date"))),
            ("检查机关", _str(take("authority", "检查机关"))),
        ]
        draw_id = take("draw_id", "双随机抽查")
        if draw_id:
            facts.append(("双随机抽查", str(draw_id)))
        tone = "ok" if result == "未发现问题" else "bad"
    elif t == "supervision.penalty":
        title = f"行政处罚（{_str(take('decision_no', '决定书文号'))}）"
        facts = [
            ("决定日期", date_text(take("decided_on", "决定日期", "date"))),
            ("处罚机关", _str(take("authority", "处罚机关"))),
            ("罚没金额", yuan(take("amount_fen", "罚没金额", "yuan"))),
            ("通报批评", yes_text(take("circulated_criticism", "通报批评", "yes"))),
            ("已履行", yes_text(take("performed", "已履行", "yes"))),
        ]
        tone = "bad"
    elif t == "credit.repair_applied":
        title = "申请信用修复"
        facts = [
            ("申请日期", date_text(take("applied_on", "申请日期", "date"))),
            ("说明", _str(take("statement", "说明"))),
        ]
    elif t == "credit.repair_decided":
        ok = take("decision", "修复决定") == "approved"
        title = "信用修复：" + ("准予修复" if ok else "不予修复")
        facts = [
            ("决定日期", date_text(take("decided_on", "决定日期", "date"))),
            ("理由", _str(take("reason", "理由"))),
        ]
        tone = "ok" if ok else "warn"
    elif t == "supervision.complaint_verified":
        title = "投诉举报经核实"
        facts = [
            ("核实日期", date_text(take("verified_on", "核实日期", "date"))),
            ("内容摘要", _str(take("summary", "内容摘要"))),
        ]
        tone = "bad"
    elif t in ("supervision.abnormal_list", "supervision.serious_list"):
        name = "经营异常名录" if t.endswith("abnormal_list") else "严重违法失信名单"
        inn = take("action", "列入或移出") == "in"
        title = ("列入" if inn else "移出") + name
        reason = _str(take("reason", "原因"))
        known = reference.ABNORMAL_LIST_REASONS.get(reason)
        facts = [
            ("日期", date_text(take("on", "日期", "date"))),
            ("原因", known.name if known else reason),
        ]
        tone = "bad" if inn else "ok"
    elif t == "supervision.instrument":
        title = f"强制检定计量器具：{_str(take('instrument_type', '计量器具'))}"
        facts = [
            ("出厂编号", _str(take("serial", "出厂编号"))),
            ("检定证书", _str(take("certificate_no", "检定证书"))),
            ("检定日期", date_text(take("verified_on", "检定日期", "date"))),
            ("有效期至", date_text(take("valid_until", "有效期至", "date"))),
        ]
    elif t == "supervision.demonstration":
        award = take("action", "评定或撤销") == "award"
        title = "评为诚信计量示范单位" if award else "撤销诚信计量示范单位"
        facts = [("日期", date_text(take("on", "日期", "date")))]
        if award:
            facts.append(("有效期至", date_text(take("valid_until", "有效期至", "date"))))
        else:
            reason = take("reason", "原因")
            if reason:
                facts.append(("原因", str(reason)))
        tone = "ok" if award else "warn"
    elif t == "supervision.revocation":
        title = "撤销一条监管记录"
        facts = [("原因", _str(take("reason", "原因")))]
    refs = [
        (REL_LABELS.get(str(r.get("rel")), str(r.get("rel"))), str(r.get("record")))
        for r in env.get("refs") or []
        if isinstance(r, Mapping)
    ]
    corrects = next((rid for rel, rid in refs if rel == "更正"), None)
    if corrects:
        title += "（更正）"
    s.common(env)
    return RecordView(
        record_id=record_id,
        leaf_index=leaf_index,
        type=t,
        title=title,
        facts=[(k, v) for k, v in facts if v not in ("", "None")],
        at=str(env.get("at", "")),
        anchored=anchored,
        tone=tone,
        corrects=corrects,
        refs=refs,
        shown=s,
    )


def missing_view(
    *, record_type: str, record_id: str, leaf_index: int | None, anchored: bool
) -> RecordView:
    """A record the disclosure rule shows but no table holds: nothing to show but the
    gap itself (验证 reports it; ``honest-metering audit`` names the missing row)."""
    return RecordView(
        record_id=record_id,
        leaf_index=leaf_index,
        type=record_type,
        title=TYPE_LABELS.get(record_type, record_type) + "（数据表中缺少这条记录，无法显示内容）",
        facts=[],
        at="",
        anchored=anchored,
        tone="warn",
        shown=Shown(record_id, missing=True),
    )


# --- home and search -----------------------------------------------------------------------


def _optional(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a domain read that may not be available yet (no policy, no checkpoint)."""
    try:
        return fn(*args, **kwargs)
    except DomainError as exc:
        log.debug("%s unavailable: %s", what, exc.detail)
        return None


def latest_checkpoint(session: Session) -> Any:
    return _optional("checkpoint", ledger.latest_checkpoint, session)


def anchoring(session: Session) -> Any:
    return _optional("anchoring", ledger.anchoring_info, session)


def tier_stats(session: Session, *, today: date) -> Any:
    return _optional("tier stats", credit.tier_stats, session, today=today)


class StatsCache:
    """The home page's city-wide counts, kept for ``ttl_s`` seconds per process.

    Counting every merchant by tier is a scan of the whole rating table (about a
    quarter of a second at 10^5 merchants); the home page is the most visited page,
    and counts a few seconds old are what a statistics page shows anyway.
    """

    def __init__(self, ttl_s: float = 30.0) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._value: tuple[float, date, Any, Any] | None = None

    def get(self, session: Session, *, today: date) -> tuple[Any, Any]:
        now = time.monotonic()
        with self._lock:
            cached = self._value
        if cached is not None and cached[0] > now and cached[1] == today:
            return cached[2], cached[3]
        overview = pledges.overview(session, today=today)
        stats = tier_stats(session, today=today)
        with self._lock:
            self._value = (now + self.ttl_s, today, overview, stats)
        return overview, stats


def home(session: Session, *, today: date, cache: StatsCache | None = None) -> dict[str, Any]:
    overview, stats = (cache or StatsCache(ttl_s=0)).get(session, today=today)
    bars = tier_bars(stats.by_tier, unrated=stats.unrated) if stats is not None else []
    targets = [
        {
            "year": t.by_year,
            "target": t.target,
            "reached": t.reached,
            "share": min(overview.demonstration_units / t.target, 1.0) if t.target else 1.0,
        }
        for t in overview.demonstration_targets
    ]
    return {
        "overview": overview,
        "stats": stats,
        "bars": bars,
        "targets": targets,
        "checkpoint": latest_checkpoint(session),
        "anchoring": anchoring(session),
    }


@dataclass
class SearchResult:
    page: Any
    tiers: dict[str, str]
    page_no: int
    pages: int
    error: str | None = None


def cached_tiers(session: Session, usccs: Iterable[str]) -> dict[str, str]:
    """Tiers to show next to search results: the credit service's maintained ratings."""
    wanted = list(usccs)
    if not wanted:
        return {}
    rows = session.execute(
        select(col(MerchantRating.uscc), col(MerchantRating.tier)).where(
            col(MerchantRating.uscc).in_(wanted)
        )
    )
    return {u: t for u, t in rows}


def search(
    session: Session,
    *,
    q: str | None,
    region: str | None,
    sector: str | None,
    sub_area: str | None,
    tier: str | None,
    page_no: int,
    today: date,
) -> SearchResult:
    page_no = max(page_no, 1)
    result = shops.search(
        session,
        q=q or None,
        region=region or None,
        sector=sector or None,
        sub_area=sub_area or None,
        tier=tier or None,
        limit=PAGE_SIZE,
        offset=(page_no - 1) * PAGE_SIZE,
        today=today,
    )
    pages = max((result.total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    return SearchResult(
        page=result,
        tiers=cached_tiers(session, [m.uscc for m in result.items]),
        page_no=page_no,
        pages=pages,
    )


def exact_code(q: str | None) -> str | None:
    """The credit code typed in the search box, if it is a complete valid one."""
    if not q:
        return None
    try:
        return merchants.parse_uscc(q)
    except DomainError:
        return None


# --- the merchant page -------------------------------------------------------------------------


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
    merchant_shown: Shown | None = None
    """The header's name, sector, region and address: the registration record's fields."""
    pledge_shown: Shown | None = None
    """The current pledge's dates, items and signer: its ``pledge.made`` record's fields."""


def _instruments(
    records: Sequence[RecordView], held: Mapping[str, Mapping[str, Any]], today: date
) -> list[Instrument]:
    """The latest certificate per instrument (a correction replaces what it corrects)."""
    corrected = {r.corrects for r in records if r.corrects}
    latest: dict[tuple[str, str], Instrument] = {}
    for r in records:
        if r.type != "supervision.instrument" or r.record_id in corrected:
            continue
        env = held.get(r.record_id)
        if env is None:
            continue
        s = Shown(r.record_id)
        key = (
            _str(s.take(env, "body.instrument_type", "计量器具")),
            _str(s.take(env, "body.serial", "出厂编号")),
        )
        valid_until = _str(s.take(env, "body.valid_until", "有效期至", "date"))
        try:
            until = date.fromisoformat(valid_until)
        except ValueError:
            until = None
        inst = Instrument(
            type=key[0],
            serial=key[1],
            certificate_no=_str(s.take(env, "body.certificate_no", "检定证书")),
            verified_on=_str(lookup(env, "body.verified_on")),
            valid_until=valid_until,
            overdue=until is not None and until <= today,
            record_id=r.record_id,
            shown=s,
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
        elif rtype.startswith("pledge.") or rtype == "supervision.demonstration":
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
    (the public page takes the kept one, ``backend/shops/views.py``).

    Which records are shown is the credit service's disclosure rule; what they say
    is read from the tables (:func:`records_as_held`), so that the browser's 验证
    can tell a table that no longer matches its record.
    """

    if merchant is None:
        merchant = shops.get_public(session, settings=settings, uscc=uscc, today=today)
    code = merchant.uscc

    credit_error = None
    credit = history = records = None
    try:

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
        (reg.record_id, "merchant.registered", reg.leaf_index,
         reg.anchor_status.status == "anchored")
    )
    ver = merchant.verification.record
    if ver is not None:
        listed.append(
            (ver.record_id, "merchant.verified", ver.leaf_index,
             ver.anchor_status.status == "anchored")
        )
    if records is not None:
        listed.extend(
            (item.record_id, item.type, item.leaf_index, item.anchored) for item in records.items
        )
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
        sign_available=pledge is not None and pledge.status == "active",
        credit_error=credit_error,
        merchant_shown=_header_shown(merchant),
        pledge_shown=_pledge_shown(pledge) if pledge is not None else None,
    )


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "—"
    seconds = max(int((now - moment).total_seconds()), 0)
    if seconds < 90:
        return f"{seconds} 秒前"
    if seconds < 90 * 60:
        return f"{seconds // 60} 分钟前"
    if seconds < 36 * 3600:
        return f"{seconds // 3600} 小时前"
    return f"{seconds // 86400} 天前"


def merchant_name(session: Session, uscc: str | None) -> str | None:
    """The registered name for a credit code, or ``None`` (for forms that name the merchant)."""
    code = exact_code(uscc)
    if code is None:
        return None
    try:
        return merchants.get_merchant(session, code).name
    except DomainError:
        return None


# --- the merchant area ------------------------------------------------------------------------


def merchant_area(
    session: Session, *, settings: Settings, principal: Principal, today: date
) -> dict[str, Any]:
    """The signed-in merchant's own view: its public page data, pledges, repairs."""

    assert principal.merchant_uscc is not None
    page = merchant_page(session, settings=settings, uscc=principal.merchant_uscc, today=today)
    history = pledges.list_pledges(session, uscc=principal.merchant_uscc, today=today).items
    repairs = _optional(
        "repairs",
        repair.list_repairs,
        session,
        principal=principal,
        status=None,
        limit=100,
        offset=0,
    )
    repairing = {
        r.penalty_record_id
        for r in (repairs.items if repairs else [])
        if r.status in ("pending", "approved")
    }
    penalties = [
        r
        for r in page.sections.get("penalty", [])
        if r.type == "supervision.penalty" and r.record_id not in repairing
    ]
    return {
        "page": page,
        "pledges": history,
        "repairs": repairs.items if repairs else [],
        "penalties": penalties,
    }


def pledge_form(session: Session, *, principal: Principal, today: date) -> dict[str, Any]:
    """The current template of the merchant's sector, as checkboxes."""

    assert principal.merchant_uscc is not None
    merchant = merchants.get_merchant(session, principal.merchant_uscc)

    template = pledges.template_public(current_template(merchant.sector))
    current = queries.current_pledge(session, merchant.uscc, today)
    return {
        "merchant": merchant,
        "sector_name": reference.SECTORS.get(merchant.sector, merchant.sector),
        "template": template,
        "renewing": current is not None,
    }


# --- the regulator area ----------------------------------------------------------------------


def unverified_merchants(session: Session, *, limit: int = 50) -> tuple[int, list[Any]]:
    """Registrations waiting for a regulator's verification, oldest first (a listing, no rule)."""
    from sqlalchemy import func


    waiting = ~col(Merchant.uscc).in_(select(col(MerchantVerification.uscc)))
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
    return total, [
        {
            "uscc": m.uscc,
            "name": m.name,
            "sector_name": reference.SECTORS.get(m.sector, m.sector),
            "region_name": reference.DIVISIONS.get(m.region_code, m.region_code),
            "address": m.address,
            "registered_at": m.registered_at,
        }
        for m in rows
    ]


def regulator_home(session: Session, *, today: date) -> dict[str, Any]:
    total, waiting = unverified_merchants(session)
    complaints = _optional(
        "complaints",
        supervision.list_complaints,
        session,
        status="pending",
        uscc=None,
        limit=1,
        offset=0,
    )
    return {
        "unverified_total": total,
        "unverified": waiting,
        "pending_complaints": complaints.total if complaints else 0,
        "pending_repairs": _pending_repairs(session),
        "draws": _optional("draws", _draws_summary, session, today=today),
        "checkpoint": latest_checkpoint(session),
        "anchoring": anchoring(session),
    }


def _pending_repairs(session: Session) -> int:
    from sqlalchemy import func


    return int(
        session.execute(
            select(func.count())
            .select_from(CreditRepair)
            .where(~col(CreditRepair.id).in_(select(col(CreditRepairDecision.repair_id))))
        ).scalar_one()
    )


def _draws_summary(session: Session, *, today: date) -> dict[str, int]:
    overdue = draws.list_draws(session, overdue_only=True, limit=100, offset=0, today=today)
    return {"overdue": sum(d.overdue or 0 for d in overdue.items)}


@dataclass
class OutcomeField:
    name: str
    label: str
    type: str = "text"  # text, date, select, checkbox, textarea, file
    required: bool = False
    options: list[Option] = field(default_factory=list)
    hint: str = ""


OUTCOME_KINDS: list[tuple[str, str]] = [
    ("spot_check", "抽查结果"),
    ("penalty", "行政处罚"),
    ("instrument", "强制检定"),
    ("abnormal_list", "经营异常名录"),
    ("serious_list", "严重违法失信名单"),
    ("complaint_verified", "投诉核实"),
    ("demonstration", "示范单位"),
    ("revocation", "撤销记录"),
]

_USCC = OutcomeField("uscc", "统一社会信用代码", required=True)
_CORRECTION = [
    OutcomeField(
        "supersedes",
        "更正的记录编号（可选）",
        hint="填写则本条为对该记录的更正，需同时填写更正原因",
    ),
    OutcomeField("correction_reason", "更正原因（可选）"),
]
_ACTION_IN_OUT = [Option("in", "列入"), Option("out", "移出")]


def outcome_fields(kind: str) -> list[OutcomeField]:
    """The form fields of one outcome kind (the shapes are the supervision API's)."""
    if kind == "spot_check":
        return [
            _USCC,
            OutcomeField(
                "result",
                "检查结果",
                "select",
                True,
                [Option(r, r) for r in reference.SPOT_CHECK_RESULTS],
            ),
            OutcomeField("checked_on", "检查日期", "date", True),
            OutcomeField("authority", "检查机关", required=True),
            OutcomeField("draw_id", "双随机抽查编号（可选）"),
            OutcomeField("evidence_sha256", "检查记录文件的 SHA-256（可选）"),
            *_CORRECTION,
        ]
    if kind == "penalty":
        return [
            _USCC,
            OutcomeField("decision_no", "决定书文号", required=True),
            OutcomeField("decided_on", "决定日期", "date", True),
            OutcomeField("authority", "处罚机关", required=True),
            OutcomeField("amount_yuan", "罚没金额（元）", required=True, hint="没有罚款填 0"),
            OutcomeField(
                "lower_amount",
                "较低数额罚款",
                "select",
                False,
                [Option("yes", "是"), Option("no", "否")],
                hint="不选则按信用规则由金额判断",
            ),
            OutcomeField("circulated_criticism", "通报批评", "checkbox"),
            OutcomeField("special_sector", "食品、药品、特种设备领域", "checkbox"),
            OutcomeField("performed", "已履行", "checkbox"),
            OutcomeField(
                "evidence_file",
                "处罚决定书文件",
                "file",
                hint="只在本机计算并记录文件的 SHA-256，文件本身不上传保存；也可直接填写下一项",
            ),
            OutcomeField("evidence_sha256", "决定书文件的 SHA-256"),
            *_CORRECTION,
        ]
    if kind == "instrument":
        return [
            _USCC,
            OutcomeField(
                "instrument_type",
                "计量器具名称",
                required=True,
                hint="例如：电子计价秤、燃油加油机",
            ),
            OutcomeField("serial", "出厂编号", required=True),
            OutcomeField("certificate_no", "检定证书编号", required=True),
            OutcomeField("verified_on", "检定日期", "date", True),
            OutcomeField("valid_until", "有效期至（含当天）", "date", True),
            *_CORRECTION,
        ]
    if kind == "abnormal_list":
        return [
            _USCC,
            OutcomeField("action", "操作", "select", True, _ACTION_IN_OUT),
            OutcomeField("on", "日期", "date", True),
            OutcomeField(
                "reason",
                "列入原因 / 移出依据",
                "select",
                False,
                [Option(k, r.name) for k, r in reference.ABNORMAL_LIST_REASONS.items()],
                hint="列入时必选；移出时可不选（默认为列入原因对应的移出条件）",
            ),
            OutcomeField("closes", "移出所对应的列入记录编号（可选）"),
            *_CORRECTION,
        ]
    if kind == "serious_list":
        return [
            _USCC,
            OutcomeField("action", "操作", "select", True, _ACTION_IN_OUT),
            OutcomeField("on", "日期", "date", True),
            OutcomeField("reason", "原因", "textarea", True),
            OutcomeField("closes", "移出所对应的列入记录编号（可选）"),
            *_CORRECTION,
        ]
    if kind == "complaint_verified":
        return [
            _USCC,
            OutcomeField("complaint_id", "投诉编号", required=True, hint="如 12315 平台的投诉编号"),
            OutcomeField("verified_on", "核实日期", "date", True),
            OutcomeField("summary", "公示摘要", "textarea", True, hint="不得包含投诉人个人信息"),
            *_CORRECTION,
        ]
    if kind == "demonstration":
        return [
            _USCC,
            OutcomeField(
                "action",
                "操作",
                "select",
                True,
                [Option("award", "评为示范单位"), Option("withdraw", "撤销示范单位")],
            ),
            OutcomeField("on", "日期（默认今天）", "date"),
            OutcomeField("valid_until", "有效期至（评定时，默认三年）", "date"),
            OutcomeField("reason", "撤销原因（撤销时）", "textarea"),
        ]
    if kind == "revocation":
        return [
            _USCC,
            OutcomeField("revokes", "要撤销的记录编号", required=True),
            OutcomeField("reason", "撤销原因", "textarea", True),
        ]
    return []


def outcome_defaults(kind: str, *, today: date) -> dict[str, str]:
    values = {"kind": kind}
    for f in outcome_fields(kind):
        if f.type == "date" and f.required:
            values[f.name] = today.isoformat()
        if f.name == "authority":
            values[f.name] = "巴中市市场监督管理局"
    return values


def csv_columns() -> tuple[str, ...]:
    return CSV_COLUMNS


def policy_page(session: Session, *, today: date) -> dict[str, Any]:
    current = credit.get_policy(session, today=today)
    versions = credit.list_policies(session, today=today)
    doc = current.document.model_dump(mode="json")
    draft = dict(doc)
    draft.pop("version", None)
    draft["effective_from"] = today.isoformat()
    return {
        "policy": current,
        "versions": versions.items,
        "document": json.dumps(doc, ensure_ascii=False, indent=2),
        "draft": json.dumps(draft, ensure_ascii=False, indent=2),
    }


# --- random inspections (双随机) ------------------------------------------------------------

DRAW_STATUS = {
    "committing": ("正在提交承诺", "muted"),
    "committed": ("已承诺，待揭示", "warn"),
    "revealed": ("已抽取", "ok"),
    "failed": ("抽取失败（检查人员不足）", "bad"),
    "expired": ("已过期（未在期限内揭示）", "bad"),
}
RESULT_STATUS = {
    "pending": ("待录入", "muted"),
    "recorded": ("已录入", "ok"),
    "overdue": ("逾期未录入", "bad"),
}


def region_names(codes: Iterable[str] | None) -> str:
    if not codes:
        return "全市"
    return "、".join(reference.DIVISIONS.get(c, c) for c in codes)


def sector_names(codes: Iterable[str] | None) -> str:
    if not codes:
        return "全部行业"
    return "、".join(reference.SECTORS.get(c, c) for c in codes)


def inspections_page(session: Session, *, today: date) -> dict[str, Any]:
    return {
        "draws": draws.list_draws(session, limit=100, offset=0, today=today).items,
        "items": directory.list_items(session, active=True).items,
        "inspectors": directory.list_inspectors(session, staff=False, active=True).items,
    }


def draw_page(
    session: Session, *, ctx: Any, ref: str, today: date, staff: bool = False
) -> dict[str, Any]:
    d = draws.draw_public(session, ctx=ctx, ref=ref, today=today, staff=staff)
    records = [
        describe_draw_record(
            r.type,
            r.canonical,
            record_id=r.record_id,
            leaf_index=r.leaf_index,
            anchored=r.anchor_status.status == "anchored",
        )
        for r in d.records
    ]
    selected = (d.plan or {}).get("selected") or {}
    names = {}
    if d.assignments:

        wanted = [a.uscc for a in d.assignments]
        names = dict(
            session.execute(
                select(col(Merchant.uscc), col(Merchant.name)).where(col(Merchant.uscc).in_(wanted))
            ).all()
        )
    return {
        "draw": d,
        "records": records,
        "selected_counts": {t: len(selected.get(t, [])) for t in TIERS},
        "names": names,
        "status": DRAW_STATUS.get(d.status, (d.status, "muted")),
        "region_names": region_names(d.regions),
        "sector_names": sector_names(d.sectors),
    }


DRAW_TITLES = {
    "draw.committed": "抽查承诺：锁定检查对象名单、检查人员名录和种子哈希",
    "draw.revealed": "揭示种子，得到随机数",
    "draw.plan": "公布抽查计划（检查对象与检查人员）",
    "draw.failed": "抽取失败",
    "draw.expired": "未在期限内揭示，抽查作废",
}


def describe_draw_record(
    rtype: str, canonical: str, *, record_id: str, leaf_index: int, anchored: bool
) -> RecordView:
    env = json.loads(canonical)
    b = env.get("body") or {}
    facts: list[tuple[str, str]] = []
    if rtype == "draw.committed":
        facts = [
            ("检查对象名单", f"{b.get('snapshot_size')} 户，默克尔根 {b.get('snapshot_root')}"),
            ("检查人员", f"{b.get('inspector_count')} 人，默克尔根 {b.get('inspectors_root')}"),
            ("回避", f"{b.get('recusal_count')} 对，默克尔根 {b.get('recusal_root')}"),
            ("种子哈希", str(b.get("seed_hash"))),
        ]
    elif rtype == "draw.revealed":
        facts = [
            ("种子", str(b.get("seed"))),
            ("区块哈希", str(b.get("block_hash"))),
            ("随机数", str(b.get("randomness"))),
        ]
    elif rtype == "draw.plan":
        facts = [
            ("抽中", f"{len(b.get('assignments') or [])} 户"),
            ("每户检查人员", str(b.get("per_check"))),
        ]
    elif rtype == "draw.failed":
        facts = [
            (
                "原因",
                f"{b.get('uscc')} 需要 {b.get('needed')} 名检查人员，只有 "
                f"{b.get('available')} 名可派",
            )
        ]
    return RecordView(
        record_id=record_id,
        leaf_index=leaf_index,
        type=rtype,
        title=DRAW_TITLES.get(rtype, rtype),
        facts=facts,
        at=str(env.get("at", "")),
        anchored=anchored,
    )


def regulator_draws(session: Session, *, today: date) -> dict[str, Any]:
    return {
        "draws": draws.list_draws(session, limit=100, offset=0, today=today).items,
        "overdue": draws.list_draws(
            session, overdue_only=True, limit=100, offset=0, today=today
        ).items,
        "items": directory.list_items(session, active=True).items,
        "regions": region_options(),
        "sectors": sector_options(),
    }
