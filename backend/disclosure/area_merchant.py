"""The merchant area: the merchant's own page, its pledge and its credit-repair request."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from backend.accounts.service import Principal
from backend.credit import repair
from backend.credit.models import RepairCreate
from backend.deps import CtxDep, ReadSessionDep, SessionDep
from backend.disclosure import service
from backend.disclosure.area_common import (
    area_page,
    merchant_or_redirect,
    notice_for,
    submit,
)
from backend.disclosure.web import FormError, PageUser
from backend.errors import DomainError
from backend.pledges import service as pledges
from backend.pledges.models import PledgeCreate
from backend.timeutil import today_shanghai

pages = APIRouter(include_in_schema=False)


@pages.get("/merchant", response_class=HTMLResponse)
def merchant_home(
    request: Request,
    ctx: CtxDep,
    session: ReadSessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = merchant_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    assert p.merchant_uscc is not None
    return _merchant_page(request, ctx, session, p, notice=notice_for(done))


def _merchant_page(
    request: Request,
    ctx: Any,
    session: Any,
    p: Principal,
    *,
    notice: dict[str, str] | None = None,
    error: FormError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    data = service.merchant_area(
        session, settings=ctx.settings, principal=p, today=today_shanghai()
    )
    return area_page(
        request, "area/merchant.html", data, title="我的单位", nav="merchant",
        notice=notice, error=error, status_code=status_code,
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
    return area_page(
        request,
        "area/pledge.html",
        {**data, "checked": checked, "extra": extra, "idempotency_key": uuid.uuid4().hex},
        title="作出诚信计量承诺", nav="merchant", notice=notice, error=error,
        status_code=status,
    )


@pages.get("/merchant/pledge", response_class=HTMLResponse)
def pledge_page(
    request: Request,
    session: ReadSessionDep,
    user: PageUser,
    welcome: Annotated[str | None, Query(max_length=4)] = None,
) -> Response:
    p = merchant_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return _pledge_form(
        request,
        session,
        p,
        error=None,
        checked=None,
        extra="",
        notice=notice_for("welcome") if welcome else None,
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
    p = merchant_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    chosen = list(items or [])
    return submit(
        session,
        lambda: pledges.make_pledge(
            session,
            principal=p,
            data=PledgeCreate(
                template_version=template_version,
                items=chosen,
                extra_commitments=extra_commitments.strip() or None,
            ),
            idempotency_key=idempotency_key or None,
        ),
        done="/merchant?done=pledged",
        failed=lambda exc: _pledge_form(
            request, session, p, error=FormError.of(exc), checked=set(chosen),
            extra=extra_commitments, status=422,
        ),
    )


@pages.post("/merchant/pledge/withdraw", response_class=HTMLResponse)
def pledge_withdraw(
    request: Request,
    ctx: CtxDep,
    session: SessionDep,
    user: PageUser,
    pledge_id: Annotated[str, Form(max_length=64)],
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    p = merchant_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return submit(
        session,
        lambda: pledges.withdraw_pledge(session, principal=p, pledge_id=pledge_id, reason=reason),
        done="/merchant?done=withdrawn",
        failed=lambda exc: _merchant_error(request, ctx, session, p, exc),
        refusals=(DomainError,),
    )


@pages.post("/merchant/repair", response_class=HTMLResponse)
def repair_apply(
    request: Request,
    ctx: CtxDep,
    session: SessionDep,
    user: PageUser,
    penalty_record_id: Annotated[str, Form(max_length=80)],
    statement: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    p = merchant_or_redirect(request, user)
    if isinstance(p, Response):
        return p
    return submit(
        session,
        lambda: repair.apply_for_repair(
            session,
            principal=p,
            data=RepairCreate(penalty_record_id=penalty_record_id, statement=statement),
        ),
        done="/merchant?done=repair",
        failed=lambda exc: _merchant_error(request, ctx, session, p, exc),
    )


def _merchant_error(
    request: Request, ctx: Any, session: Any, p: Principal, exc: Exception
) -> HTMLResponse:
    error = FormError.of(exc)
    unmet = getattr(exc, "extra", {}).get("unmet") if isinstance(exc, DomainError) else None
    if unmet:
        error.detail = "；".join(str(u) for u in unmet)
    return _merchant_page(
        request, ctx, session, p, error=error, status_code=getattr(exc, "status_code", 422)
    )
