"""The regulator's workbench: complaints, credit repairs and the credit policy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from backend.accounts.service import Principal, require_role
from backend.credit import repair
from backend.credit import service as credit
from backend.credit.models import RepairDecisionCreate
from backend.deps import ReadSessionDep, SessionDep
from backend.disclosure import service, web
from backend.disclosure.area_common import (
    FormInputError,
    area_page,
    notice_for,
    staff_or_redirect,
    status_of,
    submit,
)
from backend.disclosure.web import FormError, PageUser
from backend.errors import DomainError
from backend.shops import lists
from backend.supervision import complaints, tickets
from backend.supervision.models import ComplaintReviewCreate
from backend.timeutil import today_shanghai

pages = APIRouter(include_in_schema=False)


# --- complaints and credit repairs -----------------------------------------------------------


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
        page = complaints.list_complaints(
            session,
            status=status,
            uscc=code,
            usccs=usccs,
            limit=size,
            offset=(page_no - 1) * size,
        )
    except DomainError as exc:
        error, status_code = FormError.of(exc), exc.status_code
        page = complaints.list_complaints(session, status=status, uscc=None, limit=size, offset=0)
    query = {"status": status, "uscc": uscc}
    return area_page(
        request,
        "area/complaints.html",
        {
            "page": page,
            "names": lists.names(session, sorted({c.uscc for c in page.items})),
            "tickets": tickets.numbers(session, [c.complaint_id for c in page.items]),
            "pager": web.pager(page.total, page_no, size, query),
            "uscc": uscc,
            "status": status,
            "today": today_shanghai(),
        },
        title="投诉举报处理", nav="regulator", notice=notice, error=error,
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
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    if status not in ("pending", "verified", "rejected"):
        status = "pending"
    return _complaints_view(
        request, session, status=status, notice=notice_for(done), uscc=uscc.strip(), page_no=page
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
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return submit(
        session,
        lambda: complaints.review_complaint(
            session,
            principal=p,
            complaint_id=complaint_id,
            data=ComplaintReviewCreate(outcome=outcome, summary=summary),  # type: ignore[arg-type]
        ),
        done="/regulator/complaints?done=reviewed",
        failed=lambda exc: _complaints_view(
            request, session, status="pending", error=FormError.of(exc),
            status_code=status_of(exc),
        ),
    )


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
    return area_page(
        request, "area/repairs.html", {"page": page}, title="信用修复审核", nav="regulator",
        notice=notice, error=error, status_code=status_code,
    )


@pages.get("/regulator/repairs", response_class=HTMLResponse)
def repairs_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return _repairs_view(request, session, p, notice=notice_for(done))


@pages.post("/regulator/repairs/{repair_id}/decision", response_class=HTMLResponse)
def repair_decide(
    request: Request,
    session: SessionDep,
    user: PageUser,
    repair_id: str,
    decision: Annotated[str, Form(max_length=16)],
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p

    def failed(exc: Exception) -> Response:
        error = FormError.of(exc)
        unmet = exc.extra.get("unmet") if isinstance(exc, DomainError) else None
        if unmet:
            error.detail = "；".join(str(u) for u in unmet)
        return _repairs_view(request, session, p, error=error, status_code=status_of(exc))

    return submit(
        session,
        lambda: repair.decide_repair(
            session,
            principal=p,
            repair_id=repair_id,
            data=RepairDecisionCreate(decision=decision, reason=reason),  # type: ignore[arg-type]
        ),
        done="/regulator/repairs?done=decided",
        failed=failed,
    )


# --- the credit policy ------------------------------------------------------------------------


@pages.get("/regulator/policy", response_class=HTMLResponse)
def policy_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = staff_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return _policy_page(request, session, p, notice=notice_for(done))


def _policy_page(
    request: Request,
    session: Session,
    p: Principal,
    *,
    notice: dict[str, str] | None = None,
    error: FormError | None = None,
    draft: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    data = service.policy_page(session, today=today_shanghai())
    if draft is not None:
        data["draft"] = draft
    return area_page(
        request, "area/policy.html", {**data, "can_edit": p.role == "admin"},
        title="信用规则", nav="regulator", notice=notice, error=error, status_code=status_code,
    )


@pages.post("/regulator/policy", response_class=HTMLResponse)
def policy_submit(
    request: Request,
    session: SessionDep,
    user: PageUser,
    document: Annotated[str, Form(max_length=200_000)],
) -> Response:
    import json


    p = staff_or_redirect(request, user)
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
        return _policy_page(
            request, session, p, error=FormError.of(exc), draft=document,
            status_code=exc.status_code,
        )
    worker = getattr(request.app.state, "rerate_worker", None)
    if worker is not None and public.effective_from <= today_shanghai():
        worker.wake()
    return RedirectResponse("/regulator/policy?done=policy", status_code=303)
