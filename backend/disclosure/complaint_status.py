"""The complainant's status page (/complaint/status): the 受理编号 and the check code
from the receipt show how a complaint stands. Posted, not a query string, so that the
code stays out of addresses, logs and Referer headers; guarded like the other
anonymous forms (``backend/disclosure/web.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from backend.accounts.deps import client_address
from backend.accounts.ratelimit import TooManyAttempts
from backend.deps import SessionDep
from backend.disclosure import service, web
from backend.disclosure.web import FORM_INVALID, FormError, PageUser
from backend.errors import DomainError
from backend.supervision import tickets
from backend.timeutil import utcnow

pages = APIRouter(include_in_schema=False)

STATUS_TEXT = {
    "pending": ("已受理，正在核查", "warn"),
    "verified": ("经核实，情况属实", "ok"),
    "rejected": ("经核查，未能核实", "muted"),
}


def _view(
    request: Request,
    values: dict[str, str],
    *,
    found: tickets.TicketStatus | None = None,
    merchant_name: str | None = None,
    error: FormError | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return web.render(
        request,
        "complaint_status.html",
        {
            "title": "投诉办理进度查询",
            "nav": "complaint",
            "values": values,
            "found": found,
            "merchant_name": merchant_name,
            "status_text": STATUS_TEXT,
            "error": error,
            "form_token": web.anon_form_token(request),
        },
        status_code=status,
        headers=headers,
    )


@pages.get("/complaint/status", response_class=HTMLResponse)
def status_page(request: Request, _user: PageUser) -> HTMLResponse:
    return _view(request, {"ticket": "", "code": ""})


@pages.post("/complaint/status", response_class=HTMLResponse)
def status_lookup(
    request: Request,
    session: SessionDep,
    _user: PageUser,
    ticket: Annotated[str, Form(max_length=2000)] = "",
    code: Annotated[str, Form(max_length=2000)] = "",
    form_token: Annotated[str, Form(max_length=2000)] = "",
) -> HTMLResponse:
    values = {"ticket": ticket, "code": ""}  # the code is never shown again
    try:
        web.check_anon_form(request, form_token)
    except web.FormExpired as exc:
        return _view(request, values, error=FormError.of(exc), status=exc.status_code)
    found = web.required(
        {"ticket": ticket, "code": code}, {"ticket": "受理编号", "code": "查询码"}
    )
    error = FormError.collect(found)
    if error is not None:
        return _view(request, values, error=error, status=422)
    try:
        result = tickets.lookup(
            session, ticket=ticket, code=code, address=client_address(request), now=utcnow()
        )
    except TooManyAttempts as exc:
        minutes = max(1, -(-int(exc.extra["retry_after_s"]) // 60))
        busy: list[tuple[str | None, str]] = [
            (None, f"查询失败次数过多，为防止他人猜测受理编号和查询码，请 {minutes} 分钟后再试")
        ]
        return _view(
            request, values, error=FormError("查询过于频繁。", problems=busy),
            status=exc.status_code, headers=exc.headers,
        )
    except DomainError as exc:
        wrong: list[tuple[str | None, str]] = [("ticket", "受理编号或查询码不正确，请核对回执")]
        return _view(
            request, values, error=FormError(FORM_INVALID, problems=wrong), status=exc.status_code
        )
    return _view(
        request,
        values,
        found=result,
        merchant_name=service.merchant_name(session, result.uscc),
    )
