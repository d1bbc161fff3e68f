"""Account pages: change your own password (everyone); the admin's home, where staff
accounts are created, disabled or enabled, given a fresh password or another role; and a
regulator's registration desk for one merchant: reject or transfer its registration,
disable, enable or reset the password of its account (issue 15 M5).

Each form calls one service of ``backend.accounts`` (which records the action and decides
who may do it) and then redirects with a fixed notice, or re-renders the page with the
error in Chinese next to its field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from backend.accounts import service as accounts
from backend.accounts.deps import PasswordWork, client_address, set_session_cookie
from backend.accounts.models import AccountActionWritten, Role
from backend.accounts.service import Principal, require_role
from backend.deps import CtxDep, SessionDep
from backend.disclosure.area_common import area_page, notice_for, status_of, submit
from backend.disclosure.web import FormError, PageUser
from backend.errors import DomainError
from backend.merchants import service as merchants
from backend.shops import registrations
from backend.shops import service as shops
from backend.timeutil import today_shanghai

pages = APIRouter(include_in_schema=False)

NOTICES = {
    "password": "密码已修改。其他设备上的登录已失效。",
    "one_time": "您使用的是工作人员提供的一次性密码，请先设置自己的新密码。",
    "created": "账号已创建，已写入存证日志。",
    "disabled": "账号已停用，已写入存证日志；它的登录已全部失效。",
    "enabled": "账号已启用，已写入存证日志。",
    "role_set": "角色已修改，已写入存证日志。",
}
ROLE_NAMES = {"merchant": "经营者", "regulator": "监管人员", "admin": "管理员"}
# Which field of the staff form an error belongs to.
STAFF_FIELDS = {
    "InvalidUsername": "username",
    "UsernameTaken": "username",
    "WeakPassword": "password",
    "InvalidRole": "role",
}


def _login(request: Request) -> RedirectResponse:
    return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)


def _error(exc: Exception, field: str | None = None) -> FormError:
    """The form error of ``exc``, shown next to ``field`` (else where the error names)."""
    err = FormError.of(exc)
    target = field
    if target is None and isinstance(exc, DomainError):
        target = STAFF_FIELDS.get(exc.name)
    if target is not None:
        err.problems = [(target, text) for _, text in err.problems] or [
            (target, err.message.rstrip("。"))
        ]
        err.field = target
    return err


# --- change your own password ------------------------------------------------------------


def _password_page(
    request: Request, error: FormError | None, status: int = 200, done: str | None = None
) -> HTMLResponse:
    return area_page(
        request, "account.html", {"role_names": ROLE_NAMES}, title="修改密码", nav="account",
        notice=notice_for(done, NOTICES), error=error, status_code=status,
    )


@pages.get("/account", response_class=HTMLResponse)
def account_page(
    request: Request, user: PageUser, done: Annotated[str | None, Query(max_length=20)] = None
) -> Response:
    if user is None:
        return _login(request)
    return _password_page(request, None, done=done)


@pages.post("/account/password", response_class=HTMLResponse, dependencies=[PasswordWork])
def change_password(
    request: Request,
    ctx: CtxDep,
    session: SessionDep,
    user: PageUser,
    current_password: Annotated[str, Form(max_length=1000)] = "",
    new_password: Annotated[str, Form(max_length=1000)] = "",
    new_password2: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Change your own password; this browser stays signed in with a new session."""
    if user is None:
        return _login(request)
    if new_password != new_password2:
        return _password_page(
            request, FormError("两次输入的新密码不一致。", field="new_password2"), 422
        )
    try:
        accounts.change_password(
            session,
            settings=ctx.settings,
            principal=user,
            current_password=current_password,
            new_password=new_password,
            address=client_address(request),
        )
    except accounts.InvalidCredentials:
        return _password_page(
            request, FormError("当前密码不正确。", field="current_password"), 422
        )
    except DomainError as exc:
        status = exc.status_code if exc.status_code in (429, 503) else 422
        return _password_page(request, _error(exc, "new_password"), status)
    account = accounts.get_account(session, user.account_id)
    assert account is not None
    token, _ = accounts.issue_token(ctx.settings, account, kind="session")
    response = RedirectResponse("/account?done=password", status_code=303)
    set_session_cookie(response, token, request=request, settings=ctx.settings)
    return response


# --- the admin's home: staff accounts -------------------------------------------------------


def _role_or_redirect(
    request: Request, user: Principal | None, role: Role
) -> Principal | Response:
    """The signed-in ``role``, the login page for the anonymous, 403 for other roles."""
    if user is None:
        return _login(request)
    return require_role(user, role)


def _admin_page(
    request: Request,
    session: Session,
    admin: Principal,
    *,
    error: FormError | None = None,
    values: dict[str, str] | None = None,
    one_time: dict[str, str] | None = None,
    done: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    listing = accounts.list_accounts(session, principal=admin)
    return area_page(
        request,
        "area/admin.html",
        {
            "accounts": listing.items,
            "me": admin.account_id,
            "role_names": ROLE_NAMES,
            "values": values or {"username": "", "role": "regulator"},
            "one_time": one_time,
        },
        title="账号管理", nav="admin", notice=notice_for(done, NOTICES), error=error,
        status_code=status,
    )


@pages.get("/admin", response_class=HTMLResponse)
def admin_home(
    request: Request,
    session: SessionDep,
    user: PageUser,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = _role_or_redirect(request, user, "admin")
    if isinstance(p, Response):
        return p
    return _admin_page(request, session, p, done=done)


@pages.post("/admin/accounts", response_class=HTMLResponse, dependencies=[PasswordWork])
def admin_create(
    request: Request,
    ctx: CtxDep,
    session: SessionDep,
    user: PageUser,
    username: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    p = _role_or_redirect(request, user, "admin")
    if isinstance(p, Response):
        return p
    values = {"username": username, "role": role}
    return submit(
        session,
        lambda: accounts.create_staff_account(
            session,
            settings=ctx.settings,
            username=username,
            password=password,
            role=role,
            principal=p,
        ),
        done="/admin?done=created",
        failed=lambda exc: _admin_page(
            request, session, p, error=_error(exc), values=values, status=status_of(exc)
        ),
        refusals=(DomainError,),
    )


def _act(
    request: Request, session: Session, p: Principal, username: str, act: str,
    run: Callable[[], AccountActionWritten],
) -> Response:
    def failed(exc: Exception) -> Response:
        err = _error(exc)
        err.field = f"row-{username}"
        return _admin_page(request, session, p, error=err, status=status_of(exc))

    def shown(written: AccountActionWritten) -> Response | None:
        if written.one_time_password is None:
            return None
        one_time = {"username": written.account.username, "password": written.one_time_password}
        return _admin_page(request, session, p, one_time=one_time)

    return submit(session, run, done=f"/admin?done={act}", failed=failed, shown=shown,
                  refusals=(DomainError,))


@pages.post(
    "/admin/accounts/{username}", response_class=HTMLResponse, dependencies=[PasswordWork]
)
def admin_act(
    request: Request,
    ctx: CtxDep,
    session: SessionDep,
    user: PageUser,
    username: str,
    action: Annotated[str, Form(max_length=20)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """One staff account: ``action`` is ``disable``, ``enable``, ``password-reset`` (the new
    one-time password is shown on the answer page, once; it is never stored) or ``role``
    (with ``role``)."""
    p = _role_or_redirect(request, user, "admin")
    if isinstance(p, Response):
        return p
    runs: dict[str, tuple[Callable[[], AccountActionWritten], str]] = {
        "disable": (lambda: accounts.set_disabled(
            session, principal=p, username=username, disabled=True), "disabled"),
        "enable": (lambda: accounts.set_disabled(
            session, principal=p, username=username, disabled=False), "enabled"),
        "password-reset": (lambda: accounts.reset_password(
            session, settings=ctx.settings, principal=p, username=username), "password"),
        "role": (lambda: accounts.set_role(
            session, principal=p, username=username, role=role), "role_set"),
    }
    if action not in runs:
        err = FormError("请选择一个操作。", field=f"row-{username}")
        return _admin_page(request, session, p, error=err, status=422)
    run, done = runs[action]
    return _act(request, session, p, username, done, run)


# --- a regulator's registration desk: reject, transfer, the merchant's account -------------

DESK_NOTICES = {
    "rejected": "登记已驳回，已写入存证日志；该代码可由真正的经营者重新注册。",
    "disabled": "该经营者账号已停用，已写入存证日志。",
    "enabled": "该经营者账号已启用，已写入存证日志。",
}


def _desk(
    request: Request,
    session: Session,
    settings: Any,
    uscc: str,
    *,
    error: FormError | None = None,
    one_time: dict[str, str] | None = None,
    done: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    code = merchants.parse_uscc(uscc)
    view = shops.get_public(session, settings=settings, uscc=code, today=today_shanghai())
    account = accounts.find_account(session, code)
    return area_page(
        request,
        "area/registration.html",
        {"m": view, "account": accounts.status_of(account), "one_time": one_time},
        title="登记与账号", nav="regulator", notice=notice_for(done, DESK_NOTICES), error=error,
        status_code=status,
    )


@pages.get("/regulator/merchants/{uscc}", response_class=HTMLResponse)
def registration_desk(
    request: Request,
    ctx: CtxDep,
    session: SessionDep,
    user: PageUser,
    uscc: str,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    p = _role_or_redirect(request, user, "regulator")
    if isinstance(p, Response):
        return p
    return _desk(request, session, ctx.settings, uscc, done=done)


def _desk_act(
    request: Request,
    session: Session,
    settings: Any,
    uscc: str,
    run: Callable[[], Any],
    done: str,
    *,
    after: str | None = None,
) -> Response:
    def failed(exc: Exception) -> Response:
        named = exc.extra.get("field") if isinstance(exc, DomainError) else None
        field = named if isinstance(named, str) else None
        return _desk(request, session, settings, uscc, error=_error(exc, field or "desk"),
                     status=status_of(exc))

    def shown(written: Any) -> Response | None:
        password = getattr(written, "one_time_password", None)
        if not password:
            return None
        return _desk(request, session, settings, uscc,
                     one_time={"username": merchants.parse_uscc(uscc), "password": password})

    return submit(session, run, done=after or f"/regulator/merchants/{uscc}?done={done}",
                  failed=failed, shown=shown, refusals=(DomainError,))


@pages.post(
    "/regulator/merchants/{uscc}/registration", response_class=HTMLResponse,
    dependencies=[PasswordWork],
)
def desk_decide(
    request: Request,
    ctx: CtxDep,
    session: SessionDep,
    user: PageUser,
    uscc: str,
    decision: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    """``decision``: ``reject`` (then back to the workbench) or ``transfer`` (the merchant
    account's new one-time password is shown on the answer page, once)."""
    p = _role_or_redirect(request, user, "regulator")
    if isinstance(p, Response):
        return p
    if decision == "reject":
        return _desk_act(
            request, session, ctx.settings, uscc,
            lambda: registrations.reject_registration(
                session, principal=p, uscc=uscc, reason=reason
            ),
            "rejected", after="/regulator?done=rejected",
        )
    if decision == "transfer":
        return _desk_act(
            request, session, ctx.settings, uscc,
            lambda: registrations.transfer_registration(
                session, settings=ctx.settings, principal=p, uscc=uscc, reason=reason),
            "transferred",
        )
    return _desk(request, session, ctx.settings, uscc,
                 error=FormError("请选择驳回或移交。", field="desk"), status=422)


@pages.post("/regulator/merchants/{uscc}/account", response_class=HTMLResponse,
            dependencies=[PasswordWork])
def desk_account(
    request: Request,
    ctx: CtxDep,
    session: SessionDep,
    user: PageUser,
    uscc: str,
    action: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """The merchant's account: ``action`` is ``disable``, ``enable`` or ``password-reset``."""
    p = _role_or_redirect(request, user, "regulator")
    if isinstance(p, Response):
        return p
    code = merchants.parse_uscc(uscc)
    runs: dict[str, tuple[Callable[[], Any], str]] = {
        "disable": (lambda: accounts.set_disabled(
            session, principal=p, username=code, disabled=True), "disabled"),
        "enable": (lambda: accounts.set_disabled(
            session, principal=p, username=code, disabled=False), "enabled"),
        "password-reset": (lambda: accounts.reset_password(
            session, settings=ctx.settings, principal=p, username=code), "reset"),
    }
    if action not in runs:
        return _desk(request, session, ctx.settings, uscc,
                     error=FormError("请选择一个操作。", field="desk"), status=422)
    run, done = runs[action]
    return _desk_act(request, session, ctx.settings, uscc, run, done)
