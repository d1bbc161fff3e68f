"""What the public and staff pages show, assembled from the domain services.

Each page function calls the owning domain's service (merchants, pledges,
credit, ledger, supervision, inspections) directly — never HTTP to itself — and
turns the results into plain view data. The rules (what a tier is, which
records are still publicised, who may see what) stay with their owners; nothing
here decides them. Private fields (contact person and phone, complainants,
inspector names) are never read here, so they cannot reach a page.

This module holds the home page and search, the merchant and regulator areas
(the regulators' outcome form is each outcome kind's declaration,
``backend/supervision/kinds.py``) and the random-inspection pages. Beside it:
``shop.py`` (a shop's page), ``describe.py`` (records in plain language) and
``charts.py`` (tier labels and charts).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlmodel import Session

from backend.accounts import service as accounts_service
from backend.accounts.service import Principal
from backend.config import Settings
from backend.credit import queries as credit_queries
from backend.credit import repair
from backend.credit import service as credit
from backend.disclosure.charts import BAR_X, CHART_WIDTH, TIER_LABELS, TIERS, tier_bars
from backend.disclosure.describe import describe_draw_record
from backend.disclosure.shop import merchant_page
from backend.errors import DomainError
from backend.inspections import directory
from backend.inspections.draws import reading as draws
from backend.ledger import service as ledger
from backend.ledger.kinds import FormField, Option
from backend.merchants import queries as merchant_queries
from backend.merchants import reference
from backend.merchants import service as merchants
from backend.pledges import queries
from backend.pledges import service as pledges
from backend.pledges.templates import current_template
from backend.shops import service as shops
from backend.supervision import complaints
from backend.supervision.kinds import FORM_ORDER, OUTCOMES, PENALTY, form_fields

log = logging.getLogger("honest_metering.disclosure")

PAGE_SIZE = 20


def home_of(user: Principal) -> str:
    return accounts_service.home_path(user.role)


def region_options() -> list[Option]:
    return [Option(k, v) for k, v in reference.DIVISIONS.items()]


def sector_options() -> list[Option]:
    return [Option(k, v) for k, v in reference.SECTORS.items()]


def sub_area_options() -> list[Option]:
    return [Option(k, a.name) for k, a in reference.SUB_AREAS.items()]


def tier_options() -> list[Option]:
    return [Option(t, TIER_LABELS[t]) for t in TIERS]


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
            "past": t.past,
            "units": t.units,
            "share": min(t.units / t.target, 1.0) if t.target else 1.0,
        }
        for t in overview.demonstration_targets
    ]
    return {
        "overview": overview,
        "stats": stats,
        "bars": bars,
        "chart_width": CHART_WIDTH,
        "bar_x": BAR_X,
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
    return credit_queries.tiers_of(session, usccs)


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
        if r.type == PENALTY.type and r.record_id not in repairing
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
    total, rows = merchant_queries.waiting_for_verification(session, limit=limit)
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
    pending = _optional(
        "complaints",
        complaints.list_complaints,
        session,
        status="pending",
        uscc=None,
        limit=1,
        offset=0,
    )
    return {
        "unverified_total": total,
        "unverified": waiting,
        "pending_complaints": pending.total if pending else 0,
        "pending_repairs": _pending_repairs(session),
        "draws": _optional("draws", _draws_summary, session, today=today),
        "checkpoint": latest_checkpoint(session),
        "anchoring": anchoring(session),
    }


def _pending_repairs(session: Session) -> int:
    return credit_queries.count_undecided_repairs(session)


def _draws_summary(session: Session, *, today: date) -> dict[str, int]:
    overdue = draws.list_draws(session, overdue_only=True, limit=100, offset=0, today=today)
    return {"overdue": sum(d.overdue or 0 for d in overdue.items)}


OUTCOME_KINDS: list[tuple[str, str]] = [(k, OUTCOMES[k].form_label) for k in FORM_ORDER]
"""The tabs of the regulators' outcome form: (kind, label)."""


def outcome_fields(kind: str) -> list[FormField]:
    """The form fields of one outcome kind, as its declaration has them."""
    declared = OUTCOMES.get(kind)
    return form_fields(declared) if declared is not None else []


def outcome_defaults(kind: str, *, today: date) -> dict[str, str]:
    values = {"kind": kind}
    for f in outcome_fields(kind):
        if f.type == "date" and f.required:
            values[f.name] = today.isoformat()
        if f.default:
            values[f.name] = f.default
    return values


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
        names = merchant_queries.names_of(session, wanted)
    # The minimum intervals of the policy the draw committed to (docs/draws.md §8.4).
    version = int(d.commitment["policy"]["version"])
    policy = next((v.policy for v in credit.policy_versions(session) if v.version == version), None)
    intervals = {t: policy.min_interval_months_for(t) for t in TIERS} if policy else {}
    return {
        "draw": d,
        "records": records,
        "min_intervals": intervals if any(intervals.values()) else None,
        "selected_counts": {t: len(selected.get(t, [])) for t in TIERS},
        "names": names,
        "status": DRAW_STATUS.get(d.status, (d.status, "muted")),
        "region_names": region_names(d.regions),
        "sector_names": sector_names(d.sectors),
    }


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

