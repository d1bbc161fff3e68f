"""The regulator's workbench, further pages: graded spot-check frequencies (抽查比例).

Thin like the other areas (``backend/disclosure/areas.py``): parse the form, call one
domain service (``backend/credit/frequencies.py``), redirect or re-render the form
with every problem next to its field. The rules (who may publish, what a proposal
must be) are the service's; the setting ``HM_RATE_PUBLISH`` chooses among them.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from backend.accounts.deps import PasswordWork, client_address
from backend.accounts.service import Principal
from backend.credit import frequencies
from backend.credit import service as credit
from backend.deps import CtxDep, ReadSessionDep, SessionDep
from backend.disclosure import forms, service, web
from backend.disclosure.area_common import hundredths, staff_or_redirect
from backend.disclosure.web import FORM_INVALID, FormError, PageUser
from backend.errors import DomainError
from backend.inspections import selection
from backend.merchants import service as merchants
from backend.shops import lists
from backend.supervision import service as supervision
from backend.supervision.models import SupervisionRecordPage
from backend.timeutil import today_shanghai

pages = APIRouter(include_in_schema=False)

TIERS = frequencies.TIERS
RULE_TEXT = {
    "two_person": "工作人员提出后，须由另一名工作人员（监管人员或管理员）批准才发布",
    "admin": "管理员可直接发布；监管人员提出的方案须经管理员批准",
    "regulator": "监管人员或管理员提出后立即发布",
}
NOTICES = {
    "proposed": "抽查比例方案已提出并写入存证日志，等待另一名工作人员批准。",
    "published": "新的抽查比例已发布为新版信用规则，下一次双随机抽查即按此比例抽取。",
    "rejected": "已驳回该方案（驳回也写入存证日志）。",
}


def _percent(bp: int) -> str:
    """Basis points as a percentage without trailing zeros (250 -> ``2.5``)."""
    whole, frac = divmod(bp, 100)
    return str(whole) if not frac else f"{whole}.{frac:02d}".rstrip("0")


def _view(
    request: Request,
    session: Session,
    p: Principal,
    *,
    values: dict[str, str] | None = None,
    error: FormError | None = None,
    notice: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    settings = request.app.state.settings
    rule: frequencies.PublishRule = settings.rate_publish
    today = today_shanghai()
    current = credit.in_force(credit.policy_versions(session), today)
    rates = current.policy.spot_check_rate_bp.model_dump()
    intervals = {t: current.policy.min_interval_months_for(t) for t in TIERS}
    counts = credit.tier_stats(session, today=today).by_tier
    proposed: dict[str, int | None] = {}
    for t in TIERS:
        try:
            proposed[t] = hundredths((values or {}).get(f"rate_{t}", "").strip() or "x")
        except ValueError:
            proposed[t] = None
    rows = [
        {
            "tier": t,
            "merchants": counts.get(t, 0),
            "rate": _percent(rates[t]),
            "interval": intervals[t],
            "checks": selection.tier_count(counts.get(t, 0), rates[t]),
            "proposed_checks": (
                selection.tier_count(counts.get(t, 0), proposed[t])  # type: ignore[arg-type]
                if proposed[t] is not None and 0 <= proposed[t] <= 10_000  # type: ignore[operator]
                else None
            ),
        }
        for t in TIERS
    ]
    form_values = values or {
        **{f"rate_{t}": _percent(rates[t]) for t in TIERS},
        **{f"interval_{t}": str(intervals[t]) if intervals[t] else "" for t in TIERS},
        "effective_from": today.isoformat(),
        "note": "",
    }
    proposals = frequencies.list_proposals(session)
    return web.render(
        request,
        "area/frequencies.html",
        {
            "title": "分级抽查比例",
            "nav": "regulator",
            "policy": current,
            "rows": rows,
            "values": form_values,
            "submitted": values is not None,
            "error": error,
            "notice": {"text": notice, "kind": ""} if notice else None,
            "rule": rule,
            "rule_text": RULE_TEXT[rule],
            "at_once": frequencies.publishes_at_once(rule, p.role),
            "may_approve": frequencies.may_approve(rule, p.role),
            "me": p.account_id,
            "proposals": [
                (
                    r,
                    {t: _percent(int(r.rates_bp[t])) for t in TIERS},
                    {t: int((r.min_interval_months or {}).get(t, 0)) for t in TIERS},
                )
                for r in proposals
            ],
            "percent": _percent,
        },
        status_code=status,
    )


@pages.get("/regulator/frequencies", response_class=HTMLResponse)
def frequencies_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return _view(request, session, p, notice=NOTICES.get(done or ""))


def _rates(values: dict[str, str]) -> tuple[dict[str, int], list[FormError]]:
    rates: dict[str, int] = {}
    found = []
    for t in TIERS:
        raw = values[f"rate_{t}"].strip().rstrip("%").strip()
        problem = None
        if not raw:
            problem = f"请填写 {t} 级抽查比例"
        else:
            try:
                rates[t] = hundredths(raw)
            except ValueError:
                problem = f"{t} 级抽查比例应为 0 到 100 之间的百分数，最多两位小数，例如 5 或 2.5"
            else:
                if not 0 <= rates[t] <= 10_000:
                    problem = f"{t} 级抽查比例应在 0% 到 100% 之间"
        if problem:
            found.append(FormError(FORM_INVALID, problems=[(f"rate_{t}", problem)]))
    return rates, found


INTERVAL_MAX = 120  # ten years; the policy allows up to 1200 months


def _intervals(values: dict[str, str]) -> tuple[dict[str, int], list[FormError]]:
    """The optional minimum interval per tier, in whole months (blank: no minimum)."""
    months: dict[str, int] = {}
    found = []
    for t in TIERS:
        raw = values[f"interval_{t}"].strip()
        if not raw:
            months[t] = 0
            continue
        if not (raw.isascii() and raw.isdigit()) or int(raw) > INTERVAL_MAX:
            problem = f"{t} 级最短间隔应为 0 到 {INTERVAL_MAX} 之间的整数（月），不设间隔请留空"
            found.append(FormError(FORM_INVALID, problems=[(f"interval_{t}", problem)]))
        else:
            months[t] = int(raw)
    return months, found


@pages.post("/regulator/frequencies", response_class=HTMLResponse)
def frequencies_propose(
    request: Request,
    session: SessionDep,
    user: PageUser,
    rate_A: Annotated[str, Form(max_length=200)] = "",
    rate_B: Annotated[str, Form(max_length=200)] = "",
    rate_C: Annotated[str, Form(max_length=200)] = "",
    rate_D: Annotated[str, Form(max_length=200)] = "",
    interval_A: Annotated[str, Form(max_length=200)] = "",
    interval_B: Annotated[str, Form(max_length=200)] = "",
    interval_C: Annotated[str, Form(max_length=200)] = "",
    interval_D: Annotated[str, Form(max_length=200)] = "",
    effective_from: Annotated[str, Form(max_length=200)] = "",
    note: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    values = {
        "rate_A": rate_A,
        "rate_B": rate_B,
        "rate_C": rate_C,
        "rate_D": rate_D,
        "interval_A": interval_A,
        "interval_B": interval_B,
        "interval_C": interval_C,
        "interval_D": interval_D,
        "effective_from": effective_from,
        "note": note,
    }
    rates, found = _rates(values)
    months, interval_errors = _intervals(values)
    found.extend(interval_errors)
    day = None
    try:
        day = date.fromisoformat(effective_from.strip())
    except ValueError:
        problem = "生效日期：应为有效日期，格式如 2026-01-31"
        found.append(FormError(FORM_INVALID, problems=[("effective_from", problem)]))
    error = FormError.collect(found)
    if error is None and day is not None:
        try:
            decided = frequencies.propose(
                session,
                principal=p,
                rule=request.app.state.settings.rate_publish,
                rates_bp=rates,
                min_interval_months=months,
                effective_from=day,
                note=note,
            )
        except (DomainError, ValidationError) as exc:
            session.rollback()
            error = _error_of(exc)
        else:
            _wake_rerate(request, decided)
            done = "published" if decided.policy_version is not None else "proposed"
            return RedirectResponse(f"/regulator/frequencies?done={done}", status_code=303)
    return _view(request, session, p, values=values, error=error, status=_status(error))


@pages.post("/regulator/frequencies/{proposal_id}/decision", response_class=HTMLResponse)
def frequencies_decide(
    request: Request,
    session: SessionDep,
    user: PageUser,
    proposal_id: str,
    decision: Annotated[str, Form(max_length=16)] = "",
    reason: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    try:
        decided = frequencies.decide(
            session,
            principal=p,
            rule=request.app.state.settings.rate_publish,
            proposal_id=proposal_id,
            approve=decision == "approve",
            reason=reason,
        )
    except (DomainError, ValidationError) as exc:
        session.rollback()
        error = _error_of(exc)
        return _view(request, session, p, error=error, status=_status(error))
    _wake_rerate(request, decided)
    done = "published" if decided.policy_version is not None else "rejected"
    return RedirectResponse(f"/regulator/frequencies?done={done}", status_code=303)


def _error_of(exc: Exception) -> FormError:
    error = FormError.of(exc)
    error.status = getattr(exc, "status_code", 422)  # type: ignore[attr-defined]
    return error


def _status(error: FormError | None) -> int:
    return int(getattr(error, "status", 422)) if error is not None else 200


def _wake_rerate(request: Request, decided: frequencies.Decided) -> None:
    worker = getattr(request.app.state, "rerate_worker", None)
    if worker is not None and decided.policy_version is not None:
        worker.wake()



# --- lists that scale: the merchants staff work on --------------------------------------------

PAGE_SIZE = 50
VERIFIED = "已核验该经营者的登记信息。"
STATUS_OPTIONS = [("unverified", "待核验"), ("verified", "已核验"), ("all", "全部")]
SORT_OPTIONS = [
    ("oldest", "注册时间（最早在前）"),
    ("newest", "注册时间（最新在前）"),
    ("name", "名称"),
    ("code", "统一社会信用代码"),
]


@pages.get("/regulator/merchants", response_class=HTMLResponse)
def merchants_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    q: Annotated[str, Query(max_length=100)] = "",
    region: Annotated[str, Query(max_length=16)] = "",
    sector: Annotated[str, Query(max_length=32)] = "",
    tier: Annotated[str, Query(max_length=1)] = "",
    status: Annotated[str, Query(max_length=16)] = "unverified",
    sort: Annotated[str, Query(max_length=16)] = "oldest",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    if status not in dict(STATUS_OPTIONS):
        status = "unverified"
    if sort not in dict(SORT_OPTIONS):
        sort = "oldest"
    query = {
        "q": q, "region": region, "sector": sector, "tier": tier, "status": status, "sort": sort
    }
    error = None
    try:
        found = lists.staff_merchants(
            session,
            q=q or None,
            region=region or None,
            sector=sector or None,
            tier=tier or None,
            status=status,  # type: ignore[arg-type]
            sort=sort,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
    except DomainError as exc:
        error = FormError.of(exc, labels={"q": "名称或代码", "region": "地区", "tier": "信用等级"})
        found = lists.StaffMerchantPage(total=0, limit=PAGE_SIZE, offset=0, items=[])
    return web.render(
        request,
        "area/merchants.html",
        {
            "title": "经营者核验与查询",
            "nav": "regulator",
            "rows": found.items,
            "pager": web.pager(found.total, page, PAGE_SIZE, query),
            "query": query,
            "regions": service.region_options(),
            "sectors": service.sector_options(),
            "tiers": service.tier_options(),
            "status_options": STATUS_OPTIONS,
            "sort_options": SORT_OPTIONS,
            "back": request.url.path + ("?" + request.url.query if request.url.query else ""),
            "error": error,
            "notice": {"text": VERIFIED, "kind": ""} if done == "verified" else None,
        },
        status_code=error_status(error),
    )


def error_status(error: FormError | None) -> int:
    return 422 if error is not None else 200


# --- staff register a merchant on its behalf ---------------------------------------------------

REGISTER_FIELDS = (
    "uscc", "name", "sector", "region_code", "sub_area", "address", "contact_person",
    "contact_phone",
)


def _register_view(
    request: Request,
    values: dict[str, str],
    error: FormError | None = None,
    status: int = 200,
) -> HTMLResponse:
    return web.render(
        request,
        "register.html",
        {
            "title": "代经营者注册",
            "nav": "regulator",
            "staff": True,
            "values": values,
            "error": error,
            "regions": service.region_options(),
            "sectors": service.sector_options(),
            "sub_areas": service.sub_area_options(),
            "form_token": None,
        },
        status_code=status,
    )


@pages.get("/regulator/merchants/new", response_class=HTMLResponse)
def register_for_merchant_page(request: Request, user: PageUser) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return _register_view(request, dict.fromkeys(REGISTER_FIELDS, ""))


@pages.post(
    "/regulator/merchants/new", response_class=HTMLResponse, dependencies=[PasswordWork]
)
async def register_for_merchant(
    request: Request, ctx: CtxDep, session: SessionDep, user: PageUser
) -> Response:
    """A regulator registers a merchant: the record names the regulator's account."""
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    form = await request.form()
    values = {k: str(form.get(k, ""))[:20_000] for k in REGISTER_FIELDS}
    password, password2 = str(form.get("password", "")), str(form.get("password2", ""))
    data, problems = forms.merchant_create(values, password=password, password2=password2)
    if problems is not None or data is None:
        return _register_view(request, values, problems, 422)

    def register() -> str:
        done = merchants.register_merchant(
            session,
            settings=ctx.settings,
            data=data,
            principal=p,
            address=client_address(request),
        )
        return done.uscc

    try:
        uscc = await run_in_threadpool(register)
    except DomainError as exc:
        await run_in_threadpool(session.rollback)
        return _register_view(request, values, FormError.of(exc), exc.status_code)
    return RedirectResponse(f"/merchants/{uscc}", status_code=303)


# --- the outcomes recorded, as a list ----------------------------------------------------------

STATUS_LABELS = {
    "current": "现行",
    "superseded": "已更正",
    "revoked": "已撤销",
    "ended": "已移出",
}


@pages.get("/regulator/outcomes/list", response_class=HTMLResponse)
def outcomes_list(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    uscc: Annotated[str, Query(max_length=64)] = "",
    kind: Annotated[str, Query(max_length=32)] = "",
    draw: Annotated[str, Query(max_length=80)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """Every outcome recorded, newest first: by merchant code, kind and draw, paged."""
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    query = {"uscc": uscc, "kind": kind, "draw": draw}
    error = None
    try:
        code, usccs = lists.who(session, uscc)
        found = supervision.list_records(
            session,
            uscc=code,
            usccs=usccs,
            kind=kind or None,
            draw_id=draw.strip() or None,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
    except DomainError as exc:
        labels = {"kind": "记录类型", "draw_id": "双随机抽查编号"}
        error = FormError.of(exc, labels=labels)
        found = SupervisionRecordPage(total=0, limit=PAGE_SIZE, offset=0, items=[])
    return web.render(
        request,
        "area/outcome_list.html",
        {
            "title": "监管记录",
            "nav": "regulator",
            "rows": found.items,
            "names": lists.names(session, sorted({r.uscc for r in found.items})),
            "kinds": service.OUTCOME_KINDS,
            "status_labels": STATUS_LABELS,
            "pager": web.pager(found.total, page, PAGE_SIZE, query),
            "query": query,
            "error": error,
        },
        status_code=error_status(error),
    )
