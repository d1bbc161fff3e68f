"""The logged-in areas: the merchant's own pages and the regulator's workbench.

Forms post here with the session cookie and its CSRF token (checked by
``backend.accounts.deps`` before any handler runs: a cookie-authenticated POST
without the session's token never reaches a handler). Each handler calls one
domain service and redirects (post/redirect/get, with a fixed notice code) or
re-renders the form with the service's error next to it. Who may do what is
decided by the services (and ``require_role`` of ``backend.accounts``), not here.
"""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from backend.accounts.models import Role
from backend.accounts.service import Principal, require_role
from backend.credit import repair
from backend.credit import service as credit
from backend.credit.models import RepairCreate, RepairDecisionCreate
from backend.db import INT_KEY_MAX
from backend.deps import CtxDep, ReadSessionDep, SessionDep
from backend.disclosure import amounts, service, web
from backend.disclosure import staff_lists as workbench_lists
from backend.disclosure.web import FormError, PageUser
from backend.errors import DomainError, PayloadTooLarge
from backend.inspections import directory, draws
from backend.inspections.models import (
    DrawCreate,
    InspectorCreate,
    InspectorUpdate,
    ItemCreate,
    ItemUpdate,
)
from backend.merchants import lists
from backend.merchants import service as merchants
from backend.pledges import service as pledges
from backend.pledges.models import PledgeCreate
from backend.supervision import service as supervision
from backend.supervision import tickets
from backend.supervision.models import ComplaintReviewCreate, SupervisionInput
from backend.timeutil import today_shanghai

pages = APIRouter(include_in_schema=False)

STAFF: tuple[Role, ...] = ("regulator", "admin")

# Post/redirect/get notices: a fixed code in the URL, never text from the request.
NOTICES = {
    "pledged": "承诺已提交并写入存证日志。它已显示在您的公开页面上。",
    "withdrawn": "承诺已撤回。",
    "repair": "信用修复申请已提交，请等待监管部门审核。",
    "verified": "已核验该经营者的登记信息。",
    "recorded": "监管记录已写入存证日志，该经营者的信用等级已重新计算。",
    "bulk": "批量导入成功。",
    "reviewed": "投诉已处理。",
    "decided": "信用修复申请已处理。",
    "policy": "新版信用规则已发布。",
    "welcome": "注册成功，已为您登录。下一步：作出诚信计量承诺。",
}


def _notice(code: str | None) -> dict[str, str] | None:
    text = NOTICES.get(code or "")
    return {"text": text, "kind": ""} if text else None


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    from urllib.parse import urlencode

    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)


def _merchant_or_redirect(request: Request, user: Principal | None) -> Principal | Response:
    if user is None:
        return _login_redirect(request)
    return require_role(user, "merchant")


def _staff_or_redirect(request: Request, user: Principal | None) -> Principal | Response:
    if user is None:
        return _login_redirect(request)
    return require_role(user, *STAFF)


# ==============================================================================================
# The merchant area
# ==============================================================================================


@pages.get("/merchant", response_class=HTMLResponse)
def merchant_home(
    request: Request,
    ctx: CtxDep,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = _merchant_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    assert p.merchant_uscc is not None
    data = service.merchant_area(
        session, settings=ctx.settings, principal=p, today=today_shanghai()
    )
    return web.render(
        request,
        "area/merchant.html",
        {"title": "我的单位", "nav": "merchant", **data, "notice": _notice(done), "error": None},
    )


def _pledge_form(
    request: Request,
    session: Any,
    p: Principal,
    *,
    error: FormError | None,
    checked: set[str] | None,
    extra: str,
    status: int = 200,
    notice: dict[str, str] | None = None,
) -> HTMLResponse:
    data = service.pledge_form(session, principal=p, today=today_shanghai())
    return web.render(
        request,
        "area/pledge.html",
        {
            "title": "作出诚信计量承诺",
            "nav": "merchant",
            **data,
            "checked": checked,
            "extra": extra,
            "error": error,
            "notice": notice,
            "idempotency_key": uuid.uuid4().hex,
        },
        status_code=status,
    )


@pages.get("/merchant/pledge", response_class=HTMLResponse)
def pledge_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    welcome: Annotated[str | None, Query(max_length=4)] = None,
) -> Response:
    p = _merchant_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return _pledge_form(
        request,
        session,
        p,
        error=None,
        checked=None,
        extra="",
        notice=_notice("welcome") if welcome else None,
    )


@pages.post("/merchant/pledge", response_class=HTMLResponse)
def pledge_submit(
    request: Request,
    session: SessionDep,
    user: PageUser,
    template_version: Annotated[int, Form(ge=1, le=10_000)],
    items: Annotated[list[str] | None, Form(max_length=64)] = None,
    extra_commitments: Annotated[str, Form(max_length=2000)] = "",
    idempotency_key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    p = _merchant_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    chosen = list(items or [])
    try:
        pledges.make_pledge(
            session,
            principal=p,
            data=PledgeCreate(
                template_version=template_version,
                items=chosen,
                extra_commitments=extra_commitments.strip() or None,
            ),
            idempotency_key=idempotency_key or None,
        )
    except (DomainError, ValidationError) as exc:
        session.rollback()
        return _pledge_form(
            request,
            session,
            p,
            error=FormError.of(exc),
            checked=set(chosen),
            extra=extra_commitments,
            status=422,
        )
    return RedirectResponse("/merchant?done=pledged", status_code=303)


@pages.post("/merchant/pledge/withdraw", response_class=HTMLResponse)
def pledge_withdraw(
    request: Request,
    ctx: CtxDep,
    session: SessionDep,
    user: PageUser,
    pledge_id: Annotated[str, Form(max_length=64)],
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    p = _merchant_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    try:
        pledges.withdraw_pledge(session, principal=p, pledge_id=pledge_id, reason=reason)
    except DomainError as exc:
        session.rollback()
        return _merchant_error(request, ctx, session, p, exc)
    return RedirectResponse("/merchant?done=withdrawn", status_code=303)


@pages.post("/merchant/repair", response_class=HTMLResponse)
def repair_apply(
    request: Request,
    ctx: CtxDep,
    session: SessionDep,
    user: PageUser,
    penalty_record_id: Annotated[str, Form(max_length=80)],
    statement: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    p = _merchant_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    try:
        repair.apply_for_repair(
            session,
            principal=p,
            data=RepairCreate(penalty_record_id=penalty_record_id, statement=statement),
        )
    except (DomainError, ValidationError) as exc:
        session.rollback()
        return _merchant_error(request, ctx, session, p, exc)
    return RedirectResponse("/merchant?done=repair", status_code=303)


def _merchant_error(
    request: Request, ctx: Any, session: Any, p: Principal, exc: Exception
) -> HTMLResponse:
    error = FormError.of(exc)
    unmet = getattr(exc, "extra", {}).get("unmet") if isinstance(exc, DomainError) else None
    if unmet:
        error.detail = "；".join(str(u) for u in unmet)
    data = service.merchant_area(
        session, settings=ctx.settings, principal=p, today=today_shanghai()
    )
    return web.render(
        request,
        "area/merchant.html",
        {"title": "我的单位", "nav": "merchant", **data, "notice": None, "error": error},
        status_code=getattr(exc, "status_code", 422),
    )


# ==============================================================================================
# The regulator area
# ==============================================================================================


@pages.get("/regulator", response_class=HTMLResponse)
def regulator_home(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    data = service.regulator_home(session, today=today_shanghai())
    return web.render(
        request,
        "area/regulator.html",
        {"title": "监管工作台", "nav": "regulator", **data, "notice": _notice(done), "error": None},
    )


@pages.post("/regulator/merchants/{uscc}/verify", response_class=HTMLResponse)
def verify_merchant(
    request: Request,
    session: SessionDep,
    user: PageUser,
    uscc: str,
    back: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    try:
        merchants.verify_merchant(session, principal=p, uscc=uscc, verified_on=None)
    except DomainError as exc:
        session.rollback()
        data = service.regulator_home(session, today=today_shanghai())
        return web.render(
            request,
            "area/regulator.html",
            {
                "title": "监管工作台",
                "nav": "regulator",
                **data,
                "notice": None,
                "error": FormError.of(exc),
            },
            status_code=exc.status_code,
        )
    # One click from a list or a merchant's page: back to where it was made.
    target = web.safe_next(back) or "/regulator"
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}done=verified", status_code=303)


# --- supervision outcomes: one at a time, or a file -------------------------------------------


def _outcome_form(
    request: Request,
    *,
    kind: str,
    values: dict[str, str],
    error: FormError | None,
    status: int = 200,
    written: Any = None,
    bulk_error: FormError | None = None,
    bulk_rows: list[Any] | None = None,
) -> HTMLResponse:
    return web.render(
        request,
        "area/outcomes.html",
        {
            "title": "记录监管结果",
            "nav": "regulator",
            "kind": kind,
            "kinds": service.OUTCOME_KINDS,
            "fields": service.outcome_fields(kind),
            "values": values,
            "error": error,
            "written": written,
            "bulk_error": bulk_error,
            "bulk_rows": bulk_rows or [],
            "csv_columns": service.csv_columns(),
        },
        status_code=status,
    )


@pages.get("/regulator/outcomes", response_class=HTMLResponse)
def outcomes_page(
    request: Request,
    user: PageUser,
    kind: Annotated[str, Query(max_length=32)] = "spot_check",
    uscc: Annotated[str, Query(max_length=64)] = "",
    draw_id: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    if kind not in dict(service.OUTCOME_KINDS):
        kind = "spot_check"
    values = service.outcome_defaults(kind, today=today_shanghai())
    values.update({k: v for k, v in {"uscc": uscc, "draw_id": draw_id}.items() if v})
    return _outcome_form(request, kind=kind, values=values, error=None)


def hundredths(raw: str) -> int:
    """``raw`` (yuan, or a percentage) in exact hundredths (fen, or basis points).

    ValueError unless it is a finite number with at most two decimals: never rounded,
    and never Infinity or NaN (which ``int()`` of a Decimal cannot take)."""
    try:
        value = Decimal(raw) * 100
    except InvalidOperation:
        raise ValueError(f"not a number: {raw!r}") from None
    if not value.is_finite() or value != value.to_integral_value():
        raise ValueError(f"not a number with at most two decimals: {raw!r}")
    return int(value)


def _outcome_input(kind: str, form: dict[str, str], evidence: bytes | None) -> Any:
    data: dict[str, Any] = {"kind": kind}
    for f in service.outcome_fields(kind):
        raw = form.get(f.name, "")
        if f.type == "checkbox":
            data[f.name] = raw == "on"
            continue
        raw = raw.strip()
        if not raw:
            continue
        if f.name == "amount_yuan":
            try:
                data["amount_fen"] = amounts.parse_yuan(raw)
            except ValueError:
                raise FormInputError(
                    "罚没金额应为数字（元），最多两位小数", "amount_yuan"
                ) from None
            # The form is re-shown with a confirmation box naming this very amount.
            form["confirm_fen"] = str(data["amount_fen"])
            ask = amounts.confirmation_needed(data["amount_fen"], form)
            if ask is not None:
                raise FormInputError(ask, "amount_yuan")
        elif f.name == "lower_amount":
            data["lower_amount"] = raw == "yes"
        else:
            data[f.name] = raw
    if evidence is not None and kind == "penalty" and "evidence_sha256" not in data:
        data["evidence_sha256"] = hashlib.sha256(evidence).hexdigest()
    return TypeAdapter(SupervisionInput).validate_python(data)


class FormInputError(DomainError):
    status_code = 422

    def __init__(self, detail: str, field: str) -> None:
        super().__init__(detail, field=field, detail_zh=detail)


@pages.post("/regulator/outcomes", response_class=HTMLResponse)
async def outcomes_submit(request: Request, session: SessionDep, user: PageUser) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    form = await request.form()
    kind = str(form.get("kind", ""))
    if kind not in dict(service.OUTCOME_KINDS):
        kind = "spot_check"
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    upload = form.get("evidence_file")
    evidence = None
    if upload is not None and not isinstance(upload, str) and upload.filename:
        evidence = await upload.read()

    def write() -> Any:
        data = _outcome_input(kind, values, evidence)
        return supervision.record_outcome(session, principal=p, data=data)

    try:
        written = await run_in_threadpool(write)
    except (DomainError, ValidationError) as exc:
        await run_in_threadpool(session.rollback)
        labels = {f.name: f.label for f in service.outcome_fields(kind)}
        error = FormError.of(exc, labels=labels, aliases={"amount_fen": "amount_yuan"})
        return _outcome_form(request, kind=kind, values=values, error=error, status=422)
    fresh = service.outcome_defaults(kind, today=today_shanghai())
    return _outcome_form(request, kind=kind, values=fresh, error=None, written=written, status=201)


@pages.post("/regulator/outcomes/bulk", response_class=HTMLResponse)
async def outcomes_bulk(
    request: Request, ctx: CtxDep, session: SessionDep, user: PageUser, file: UploadFile
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    limit = ctx.settings.max_bulk_body_bytes
    data = await file.read(limit + 1)
    name = (file.filename or "").lower()
    kind = "spot_check"
    values = service.outcome_defaults(kind, today=today_shanghai())
    if len(data) > limit:
        err = FormError.of(PayloadTooLarge(f"the file is larger than {limit} bytes; split it"))
        return _outcome_form(
            request, kind=kind, values=values, error=None, bulk_error=err, status=413
        )
    content_type = (
        "application/x-ndjson"
        if name.endswith((".ndjson", ".jsonl"))
        else "text/csv"
        if name.endswith(".csv")
        else file.content_type
    )
    try:
        result = await run_in_threadpool(
            lambda: supervision.record_bulk(
                session, principal=p, content_type=content_type, data=data
            )
        )
    except DomainError as exc:
        await run_in_threadpool(session.rollback)
        rows = exc.extra.get("errors") or []
        return _outcome_form(
            request,
            kind=kind,
            values=values,
            error=None,
            bulk_error=FormError.of(exc),
            bulk_rows=rows,
            status=exc.status_code,
        )
    return web.render(
        request,
        "area/bulk_done.html",
        {"title": "批量导入完成", "nav": "regulator", "result": result},
        status_code=201,
    )


# --- complaints and credit repairs -----------------------------------------------------------


def _status_of(exc: Exception) -> int:
    """A failed form answers with the service's own status (404, 409, 422, ...)."""
    return exc.status_code if isinstance(exc, DomainError) else 422


def _complaints_view(
    request: Request,
    session: Session,
    *,
    status: str,
    notice: dict[str, str] | None = None,
    error: FormError | None = None,
    status_code: int = 200,
    uscc: str = "",
    page_no: int = 1,
) -> Response:
    size = 20
    try:
        code, usccs = lists.who(session, uscc)
        page = supervision.list_complaints(
            session,
            status=status,
            uscc=code,
            usccs=usccs,
            limit=size,
            offset=(page_no - 1) * size,
        )
    except DomainError as exc:
        error, status_code = FormError.of(exc), exc.status_code
        page = supervision.list_complaints(session, status=status, uscc=None, limit=size, offset=0)
    query = {"status": status, "uscc": uscc}
    return web.render(
        request,
        "area/complaints.html",
        {
            "title": "投诉举报处理",
            "nav": "regulator",
            "page": page,
            "names": lists.names(session, sorted({c.uscc for c in page.items})),
            "tickets": tickets.numbers(session, [c.complaint_id for c in page.items]),
            "pager": web.pager(page.total, page_no, size, query),
            "uscc": uscc,
            "status": status,
            "notice": notice,
            "error": error,
            "today": today_shanghai(),
        },
        status_code=status_code,
    )


@pages.get("/regulator/complaints", response_class=HTMLResponse)
def complaints_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    status: Annotated[str, Query(max_length=16)] = "pending",
    done: Annotated[str | None, Query(max_length=20)] = None,
    uscc: Annotated[str, Query(max_length=64)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    if status not in ("pending", "verified", "rejected"):
        status = "pending"
    return _complaints_view(
        request, session, status=status, notice=_notice(done), uscc=uscc.strip(), page_no=page
    )


@pages.post("/regulator/complaints/{complaint_id}/review", response_class=HTMLResponse)
def complaint_review(
    request: Request,
    session: SessionDep,
    user: PageUser,
    complaint_id: str,
    outcome: Annotated[str, Form(max_length=16)],
    summary: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    try:
        supervision.review_complaint(
            session,
            principal=p,
            complaint_id=complaint_id,
            data=ComplaintReviewCreate(outcome=outcome, summary=summary),  # type: ignore[arg-type]
        )
    except (DomainError, ValidationError) as exc:
        session.rollback()
        return _complaints_view(
            request,
            session,
            status="pending",
            error=FormError.of(exc),
            status_code=_status_of(exc),
        )
    return RedirectResponse("/regulator/complaints?done=reviewed", status_code=303)


def _repairs_view(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    notice: dict[str, str] | None = None,
    error: FormError | None = None,
    status_code: int = 200,
) -> Response:
    page = repair.list_repairs(
        session, principal=principal, status="pending", limit=100, offset=0
    )
    return web.render(
        request,
        "area/repairs.html",
        {
            "title": "信用修复审核",
            "nav": "regulator",
            "page": page,
            "notice": notice,
            "error": error,
        },
        status_code=status_code,
    )


@pages.get("/regulator/repairs", response_class=HTMLResponse)
def repairs_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return _repairs_view(request, session, p, notice=_notice(done))


@pages.post("/regulator/repairs/{repair_id}/decision", response_class=HTMLResponse)
def repair_decide(
    request: Request,
    session: SessionDep,
    user: PageUser,
    repair_id: str,
    decision: Annotated[str, Form(max_length=16)],
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    try:
        repair.decide_repair(
            session,
            principal=p,
            repair_id=repair_id,
            data=RepairDecisionCreate(decision=decision, reason=reason),  # type: ignore[arg-type]
        )
    except (DomainError, ValidationError) as exc:
        session.rollback()
        error = FormError.of(exc)
        unmet = exc.extra.get("unmet") if isinstance(exc, DomainError) else None
        if unmet:
            error.detail = "；".join(str(u) for u in unmet)
        return _repairs_view(request, session, p, error=error, status_code=_status_of(exc))
    return RedirectResponse("/regulator/repairs?done=decided", status_code=303)


# --- the credit policy ------------------------------------------------------------------------


@pages.get("/regulator/policy", response_class=HTMLResponse)
def policy_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    data = service.policy_page(session, today=today_shanghai())
    return web.render(
        request,
        "area/policy.html",
        {
            "title": "信用规则",
            "nav": "regulator",
            **data,
            "notice": _notice(done),
            "error": None,
            "can_edit": p.role == "admin",
        },
    )


@pages.post("/regulator/policy", response_class=HTMLResponse)
def policy_submit(
    request: Request,
    session: SessionDep,
    user: PageUser,
    document: Annotated[str, Form(max_length=200_000)],
) -> Response:
    import json


    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    try:
        # Publishing a policy is the administrators' (the API admits only them too).
        require_role(p, "admin")
        try:
            doc = json.loads(document)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise FormInputError(f"规则文档不是有效的 JSON：{exc}", "document") from None
        if not isinstance(doc, dict):
            raise FormInputError("规则文档应为 JSON 对象", "document")
        public, _ = credit.put_policy(session, principal=p, document=doc)
    except DomainError as exc:
        session.rollback()
        data = service.policy_page(session, today=today_shanghai())
        data["draft"] = document
        return web.render(
            request,
            "area/policy.html",
            {
                "title": "信用规则",
                "nav": "regulator",
                **data,
                "notice": None,
                "error": FormError.of(exc),
                "can_edit": p.role == "admin",
            },
            status_code=exc.status_code,
        )
    worker = getattr(request.app.state, "rerate_worker", None)
    if worker is not None and public.effective_from <= today_shanghai():
        worker.wake()
    return RedirectResponse("/regulator/policy?done=policy", status_code=303)


# --- random inspections: items, inspectors, draws ---------------------------------------------


def _draws_page(
    request: Request,
    session: Any,
    *,
    error: FormError | None = None,
    notice: dict[str, str] | None = None,
    status: int = 200,
    values: dict[str, Any] | None = None,
    show: str = "",
    page_no: int = 1,
) -> HTMLResponse:
    today = today_shanghai()
    data = service.regulator_draws(session, today=today)
    size = 20
    listed = draws.list_draws(
        session,
        status=show if show in service.DRAW_STATUS else None,
        limit=size,
        offset=(page_no - 1) * size,
        today=today,
    )
    return web.render(
        request,
        "area/draws.html",
        {
            "title": "双随机抽查",
            "nav": "regulator",
            **data,
            "draws": listed.items,
            "show": show,
            "pager": web.pager(listed.total, page_no, size, {"show": show}),
            "error": error,
            "notice": notice,
            "values": values or {"per_check": "2"},
            "status_labels": service.DRAW_STATUS,
            "region_names": service.region_names,
            "sector_names": service.sector_names,
        },
        status_code=status,
    )


DRAW_NOTICES = {
    "created": "抽查已承诺上链。到达目标区块后即可揭示。",
    "revealed": "已揭示并公布抽查计划。",
    "committed": "承诺已完成。",
}


@pages.get("/regulator/draws", response_class=HTMLResponse)
def draws_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
    show: Annotated[str, Query(max_length=16)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    text = DRAW_NOTICES.get(done or "")
    notice = {"text": text, "kind": ""} if text else None
    return _draws_page(request, session, notice=notice, show=show, page_no=page)


@pages.post("/regulator/draws", response_class=HTMLResponse)
async def draws_create(
    request: Request, ctx: CtxDep, session: ReadSessionDep, user: PageUser
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    form = await request.form()
    values: dict[str, Any] = {
        k: form.get(k, "") for k in ("item_id", "planned_start", "planned_end", "per_check")
    }
    regions = [str(v) for v in form.getlist("regions") if v]
    sectors = [str(v) for v in form.getlist("sectors") if v]
    values.update(regions=regions, sectors=sectors)
    rates = {t: str(form.get(f"rate_{t}", "")).strip() for t in ("A", "B", "C", "D")}
    values.update({f"rate_{t}": v for t, v in rates.items()})

    def create() -> Any:
        data: dict[str, Any] = {
            "item_id": values["item_id"] or None,
            "planned_end": values["planned_end"] or None,
            "per_check": values["per_check"] or 2,
        }
        if values["planned_start"]:
            data["planned_start"] = values["planned_start"]
        if regions:
            data["regions"] = regions
        if sectors:
            data["sectors"] = sectors
        if any(rates.values()):
            try:
                data["rates_bp"] = {t: hundredths(v or "0") for t, v in rates.items()}
            except ValueError:
                raise FormInputError("抽查比例应为百分数，例如 5 或 2.5", "rate_A") from None
        return draws.create_draw(ctx, principal=p, data=DrawCreate.model_validate(data))

    try:
        created = await run_in_threadpool(create)
    except (DomainError, ValidationError) as exc:
        return _draws_page(
            request,
            session,
            error=FormError.of(exc),
            values=values,
            status=getattr(exc, "status_code", 422),
        )
    return RedirectResponse(f"/inspections/{created.number}", status_code=303)


@pages.post("/regulator/draws/{ref}/reveal", response_class=HTMLResponse)
async def draws_reveal(
    request: Request, ctx: CtxDep, session: ReadSessionDep, user: PageUser, ref: str
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    try:
        revealed = await run_in_threadpool(lambda: draws.reveal_draw(ctx, principal=p, ref=ref))
    except DomainError as exc:
        return _draws_page(request, session, error=FormError.of(exc), status=exc.status_code)
    return RedirectResponse(f"/inspections/{revealed.number}", status_code=303)


@pages.post("/regulator/draws/{ref}/commit", response_class=HTMLResponse)
async def draws_commit(
    request: Request, ctx: CtxDep, session: ReadSessionDep, user: PageUser, ref: str
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p

    def finish() -> None:
        with ctx.db.read() as s:
            draw_id = draws.load_draw(s, ref).id
        draws.finish_commit(ctx, draw_id=draw_id)

    try:
        await run_in_threadpool(finish)
    except DomainError as exc:
        return _draws_page(request, session, error=FormError.of(exc), status=exc.status_code)
    return RedirectResponse("/regulator/draws?done=committed", status_code=303)


def _directory_page(
    request: Request,
    session: Any,
    *,
    which: str,
    error: FormError | None = None,
    values: dict[str, Any] | None = None,
    done: str | None = None,
    status: int = 200,
    find: dict[str, str] | None = None,
    page_no: int = 1,
) -> HTMLResponse:
    find = find or {"q": "", "region": "", "show": ""}
    pager = None
    if which == "inspectors":
        rows: Any = workbench_lists.inspectors(
            directory.list_inspectors(session, staff=True).items, **find
        )
        size = 50
        pager = web.pager(len(rows), page_no, size, find)
        rows = rows[(page_no - 1) * size : page_no * size]
        title = "检查人员名录"
    else:
        rows = directory.list_items(session).items
        title = "抽查事项清单"
    return web.render(
        request,
        f"area/{which}.html",
        {
            "title": title,
            "nav": "regulator",
            "rows": rows,
            "error": error,
            "values": values or {},
            "regions": service.region_options(),
            "sectors": service.sector_options(),
            "sector_names": service.sector_names,
            "notice": {"text": "已保存并写入存证日志。", "kind": ""} if done else None,
            "pager": pager,
            "find": find,
        },
        status_code=status,
    )


@pages.get("/regulator/inspectors", response_class=HTMLResponse)
def inspectors_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
    q: Annotated[str, Query(max_length=100)] = "",
    region: Annotated[str, Query(max_length=16)] = "",
    show: Annotated[str, Query(max_length=16)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    find = {"q": q.strip(), "region": region, "show": show}
    return _directory_page(
        request, session, which="inspectors", done=done, find=find, page_no=page
    )


@pages.post("/regulator/inspectors", response_class=HTMLResponse)
def inspectors_submit(
    request: Request,
    session: SessionDep,
    user: PageUser,
    name: Annotated[str, Form(max_length=200)] = "",
    unit: Annotated[str, Form(max_length=400)] = "",
    region_code: Annotated[str, Form(max_length=16)] = "",
    inspector_id: Annotated[str, Form(max_length=100)] = "",
    action: Annotated[str, Form(max_length=16)] = "create",
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    values = {"name": name, "unit": unit, "region_code": region_code, "inspector_id": inspector_id}
    try:
        if action in ("deactivate", "activate"):
            directory.update_inspector(
                session,
                principal=p,
                inspector_id=inspector_id,
                data=InspectorUpdate(active=action == "activate"),
            )
        else:
            directory.create_inspector(
                session,
                principal=p,
                data=InspectorCreate(
                    id=inspector_id or None, name=name, unit=unit, region_code=region_code
                ),
            )
    except (DomainError, ValidationError) as exc:
        session.rollback()
        return _directory_page(
            request,
            session,
            which="inspectors",
            error=FormError.of(exc),
            values=values,
            status=getattr(exc, "status_code", 422),
        )
    return RedirectResponse("/regulator/inspectors?done=1", status_code=303)


@pages.get("/regulator/items", response_class=HTMLResponse)
def items_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return _directory_page(request, session, which="items", done=done)


@pages.post("/regulator/items", response_class=HTMLResponse)
def items_submit(
    request: Request,
    session: SessionDep,
    user: PageUser,
    title: Annotated[str, Form(max_length=400)] = "",
    legal_basis: Annotated[str, Form(max_length=2000)] = "",
    method: Annotated[str, Form(max_length=400)] = "",
    sectors: Annotated[list[str] | None, Form(max_length=32)] = None,
    item_id: Annotated[int | None, Form(ge=1, le=INT_KEY_MAX)] = None,
    action: Annotated[str, Form(max_length=16)] = "create",
) -> Response:
    p = _staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    values = {
        "title": title,
        "legal_basis": legal_basis,
        "method": method,
        "sectors": sectors or [],
    }
    try:
        if action in ("deactivate", "activate") and item_id is not None:
            directory.update_item(
                session, principal=p, item_id=item_id, data=ItemUpdate(active=action == "activate")
            )
        else:
            directory.create_item(
                session,
                principal=p,
                data=ItemCreate(
                    title=title, legal_basis=legal_basis, method=method, sectors=sectors or []
                ),
            )
    except (DomainError, ValidationError) as exc:
        session.rollback()
        return _directory_page(
            request,
            session,
            which="items",
            error=FormError.of(exc),
            values=values,
            status=getattr(exc, "status_code", 422),
        )
    return RedirectResponse("/regulator/items?done=1", status_code=303)
