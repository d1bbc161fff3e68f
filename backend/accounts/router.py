"""Log in (OAuth2 password flow, or the browser form), who am I, staff accounts."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.security import OAuth2PasswordRequestForm

from backend.accounts import service
from backend.accounts.deps import (
    AdminUser,
    CsrfToken,
    CurrentUser,
    PasswordWork,
    StaffUser,
    clear_session_cookie,
    client_address,
    is_same_origin,
    set_session_cookie,
)
from backend.accounts.models import (
    AccountActionWritten,
    AccountList,
    AccountPublic,
    CsrfTokenResponse,
    PasswordChange,
    RoleSet,
    StaffAccountCreate,
    TokenResponse,
)
from backend.accounts.ratelimit import TooManyAttempts
from backend.deps import CtxDep, SessionDep
from backend.errors import error_responses

router = APIRouter(tags=["accounts"], responses=error_responses(400, 401, 403, 409, 422, 429))


@router.post(
    "/api/auth/token",
    response_model=TokenResponse,
    dependencies=[PasswordWork],
    responses=error_responses(503),
)
def login_for_token(
    ctx: CtxDep,
    session: SessionDep,
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> TokenResponse:
    """OAuth2 password flow: a bearer token for ``Authorization: Bearer …``.

    Merchants log in with their credit code. Failed attempts are limited per
    (account, client address), per address, and per account across addresses (429
    with ``Retry-After``; docs/operations.md §6)."""
    account = service.authenticate(
        session,
        settings=ctx.settings,
        username=form.username,
        password=form.password,
        address=client_address(request),
    )
    token, _ = service.issue_token(ctx.settings, account, kind="access")
    return TokenResponse(
        access_token=token, expires_in=ctx.settings.token_ttl_s, account=service.to_public(account)
    )


@router.get("/api/auth/me", response_model=AccountPublic)
def me(user: CurrentUser) -> AccountPublic:
    return user.public()


@router.post(
    "/api/auth/password",
    response_model=AccountPublic,
    dependencies=[PasswordWork],
    responses=error_responses(503),
)
def change_password(
    ctx: CtxDep, session: SessionDep, request: Request, user: CurrentUser, body: PasswordChange
) -> AccountPublic:
    """Change your own password; tokens and sessions issued before stop working.

    A wrong current password counts as a failed login (429 with ``Retry-After``
    after the login limits)."""
    return service.change_password(
        session,
        settings=ctx.settings,
        principal=user,
        current_password=body.current_password,
        new_password=body.new_password,
        address=client_address(request),
    )


@router.post("/api/auth/logout", status_code=204, response_class=Response)
def logout(
    session: SessionDep,
    user: CurrentUser,
    everywhere: Annotated[
        bool, Query(description="end every token and browser session of the account")
    ] = False,
) -> Response:
    """End the bearer token (or browser session) this request comes with: it is refused
    from now on. With ``everywhere=true``, every token and session of the account."""
    service.logout(session, principal=user, everywhere=everywhere)
    return Response(status_code=204)


@router.get("/api/auth/csrf", response_model=CsrfTokenResponse)
def csrf(user: CurrentUser, token: CsrfToken) -> CsrfTokenResponse:
    """The CSRF token of the current browser session, for scripts that post with the cookie."""
    if token is None:
        raise service.NotAuthenticated("no browser session: log in with the form first")
    return CsrfTokenResponse(csrf_token=token)


@router.post(
    "/api/accounts",
    response_model=AccountPublic,
    status_code=201,
    dependencies=[PasswordWork],
    responses=error_responses(503),
)
def create_staff_account(
    ctx: CtxDep, session: SessionDep, admin: AdminUser, body: StaffAccountCreate
) -> AccountPublic:
    """Create a regulator or admin account (admins only), recorded as `account.created`."""
    return service.create_staff_account(
        session,
        settings=ctx.settings,
        username=body.username,
        password=body.password,
        role=body.role,
        principal=admin,
    )


@router.get("/api/accounts", response_model=AccountList)
def list_accounts(session: SessionDep, admin: AdminUser) -> AccountList:
    """The staff accounts (admins only)."""
    return service.list_accounts(session, principal=admin)


@router.post("/api/accounts/{username}/disable", response_model=AccountActionWritten)
def disable_account(session: SessionDep, user: StaffUser, username: str) -> AccountActionWritten:
    """Disable an account (`account.disabled`): it can no longer log in and its tokens and
    sessions stop working at once. Admins: any account but their own; regulators:
    merchant accounts (the user name of a merchant account is its credit code)."""
    return service.set_disabled(session, principal=user, username=username, disabled=True)


@router.post("/api/accounts/{username}/enable", response_model=AccountActionWritten)
def enable_account(session: SessionDep, user: StaffUser, username: str) -> AccountActionWritten:
    """Enable a disabled account again (`account.enabled`); it logs in afresh."""
    return service.set_disabled(session, principal=user, username=username, disabled=False)


@router.post(
    "/api/accounts/{username}/password-reset",
    response_model=AccountActionWritten,
    dependencies=[PasswordWork],
    responses=error_responses(503),
)
def reset_password(
    ctx: CtxDep, session: SessionDep, user: StaffUser, username: str
) -> AccountActionWritten:
    """Reset an account's password (`account.password_reset`; the record names the actor,
    the account and the time, never the password): the answer carries a one-time password,
    shown this once; every token and session of the account stops working."""
    return service.reset_password(
        session, settings=ctx.settings, principal=user, username=username
    )


@router.put("/api/accounts/{username}/role", response_model=AccountActionWritten)
def set_role(
    session: SessionDep, admin: AdminUser, username: str, body: RoleSet
) -> AccountActionWritten:
    """Make a staff account a regulator or an admin (admins only; `account.role_set`)."""
    return service.set_role(session, principal=admin, username=username, role=body.role)


def _safe_next(target: str | None) -> str:
    # Only same-site paths: never an open redirect to another host.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.post(
    "/auth/login",
    status_code=303,
    response_class=RedirectResponse,
    dependencies=[PasswordWork],
    responses=error_responses(503),
)
def login_form(
    ctx: CtxDep,
    session: SessionDep,
    request: Request,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> RedirectResponse:
    """The browser login form: sets the ``hm_session`` cookie (HttpOnly,
    SameSite=Strict, Secure over https) and redirects to ``next``, or without one to the
    role's home (merchant ``/merchant``, regulator ``/regulator``, admin ``/admin``).

    On failure it redirects to ``/login?error=invalid_credentials`` (or
    ``rate_limited``) with ``next`` kept, for the login page to explain."""
    target = _safe_next(next)
    if not is_same_origin(request, ctx.settings):
        raise service.CsrfFailed("cross-site login refused")
    try:
        account = service.authenticate(
            session,
            settings=ctx.settings,
            username=username,
            password=password,
            address=client_address(request),
        )
    except (service.InvalidCredentials, TooManyAttempts) as exc:
        error = "rate_limited" if isinstance(exc, TooManyAttempts) else "invalid_credentials"
        return RedirectResponse(
            "/login?" + urlencode({"error": error, "next": target}), status_code=303
        )
    token, _ = service.issue_token(ctx.settings, account, kind="session")
    if account.must_change_password:  # a one-time password from the staff: change it first
        target = "/account?done=one_time"
    elif target == "/":  # no page to go back to: the role's own home
        target = service.home_path(account.role)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, token, request=request, settings=ctx.settings)
    return response


@router.post("/auth/logout", status_code=303, response_class=RedirectResponse)
def logout_form(
    ctx: CtxDep, session: SessionDep, request: Request, user: CurrentUser
) -> RedirectResponse:
    """End the browser session (needs the CSRF token like any form post): the cookie is
    cleared, and the session refused from now on even if a copy of it is replayed."""
    service.logout(session, principal=user)
    response = RedirectResponse("/", status_code=303)
    clear_session_cookie(response, request=request, settings=ctx.settings)
    return response
