"""What the logged-in areas share: who may enter, the notices, form error statuses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session

from backend.accounts.models import Role
from backend.accounts.service import Principal, require_role
from backend.disclosure import web
from backend.errors import DomainError

STAFF: tuple[Role, ...] = ("regulator", "admin")

# Post/redirect/get notices: a fixed code in the URL, never text from the request.
NOTICES = {
    "pledged": "承诺已提交并写入存证日志。它已显示在您的公开页面上。",
    "withdrawn": "承诺已撤回。",
    "repair": "信用修复申请已提交，请等待监管部门审核。",
    "verified": "已核验该经营者的登记信息。",
    "rejected": "登记已驳回，已写入存证日志；该代码可由真正的经营者重新注册。",
    "recorded": "监管记录已写入存证日志，该经营者的信用等级已重新计算。",
    "bulk": "批量导入成功。",
    "reviewed": "投诉已处理。",
    "decided": "信用修复申请已处理。",
    "policy": "新版信用规则已发布。",
    "welcome": "注册成功，已为您登录。下一步：作出诚信计量承诺。",
}


def notice_for(
    code: str | None, notices: Mapping[str, str] = NOTICES
) -> dict[str, str] | None:
    text = notices.get(code or "")
    return {"text": text, "kind": ""} if text else None


def area_page(
    request: Request,
    template: str,
    data: Mapping[str, Any],
    *,
    title: str,
    nav: str,
    notice: dict[str, str] | None = None,
    error: web.FormError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A page of a logged-in area: its title and menu entry, its ``data``, and the
    notice of what was just done or the error of the form just sent."""
    return web.render(
        request,
        template,
        {"title": title, "nav": nav, **data, "notice": notice, "error": error},
        status_code=status_code,
    )


FORM_ERRORS: tuple[type[Exception], ...] = (DomainError, ValidationError)
"""What a form's service call may refuse with: a domain rule, or a field that does not
parse."""


def submit(
    session: Session,
    action: Callable[[], Any],
    *,
    done: str,
    failed: Callable[[Exception], Response],
    refusals: tuple[type[Exception], ...] = FORM_ERRORS,
    shown: Callable[[Any], Response | None] | None = None,
) -> Response:
    """A form's POST: run ``action`` (one service call); if it refuses, roll back and
    answer ``failed(exc)`` (the form again, the error next to its field); else redirect
    to ``done`` (post/redirect/get), unless ``shown`` makes a page of what the action
    returned (a one-time password, shown once and never stored, so never redirected)."""
    try:
        result = action()
    except refusals as exc:
        session.rollback()
        return failed(exc)
    page = shown(result) if shown is not None else None
    return page if page is not None else RedirectResponse(done, status_code=303)


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)


def merchant_or_redirect(request: Request, user: Principal | None) -> Principal | Response:
    if user is None:
        return login_redirect(request)
    return require_role(user, "merchant")


def staff_or_redirect(request: Request, user: Principal | None) -> Principal | Response:
    if user is None:
        return login_redirect(request)
    return require_role(user, *STAFF)


def status_of(exc: Exception) -> int:
    """A failed form answers with the service's own status (404, 409, 422, ...)."""
    return exc.status_code if isinstance(exc, DomainError) else 422


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


class FormInputError(DomainError):
    status_code = 422

    def __init__(self, detail: str, field: str) -> None:
        super().__init__(detail, field=field, detail_zh=detail)
