"""Who is asking: dependency aliases for routers of every domain.

- ``OptionalUser``: the caller's :class:`Principal`, or ``None`` for the public.
- ``CurrentUser``: a logged-in caller (401 otherwise).
- ``require_role("regulator")``: a ``Depends`` that admits only those roles
  (401 anonymous, 403 other roles); ``RegulatorUser``, ``AdminUser`` and
  ``MerchantUser`` are ready-made aliases.

Two ways to authenticate: ``Authorization: Bearer <token>`` from
``POST /api/auth/token`` (API clients), or the ``hm_session`` cookie set by
the login form ``POST /auth/login`` (browser pages). A cookie-authenticated
unsafe request (POST, PUT, PATCH, DELETE) must carry the session's CSRF token,
in the ``X-CSRF-Token`` header or a ``csrf_token`` form field, and, if the
browser sends an ``Origin``, come from this site; bearer requests need
neither, since a browser never attaches a bearer token by itself. Pages get
the token to embed with ``CsrfToken`` (or :func:`csrf_token_for`).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordBearer

from backend.accounts import security
from backend.accounts.models import Role
from backend.accounts.service import (
    CsrfFailed,
    InvalidToken,
    Principal,
    principal_from_token_async,
)
from backend.accounts.service import require_role as _require_role
from backend.config import Settings
from backend.deps import CtxDep

SESSION_COOKIE = "hm_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Declares the bearer scheme in OpenAPI (the "Authorize" button in /docs);
# the header itself is parsed below, so a malformed one is an error, not anonymity.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _resolve(
    request: Request, ctx: CtxDep, _doc: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal | None:
    # async: the account read is awaited on the event loop, not run in the thread pool.
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("use the header Authorization: Bearer <token>")
        return await principal_from_token_async(
            ctx.db, settings=ctx.settings, token=token.strip(), kind="access"
        )
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            return await principal_from_token_async(
                ctx.db, settings=ctx.settings, token=cookie, kind="session"
            )
        except InvalidToken:
            # A stale cookie must not lock a browser out of public pages.
            return None
    return None


def is_same_origin(request: Request, settings: Settings) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser cross-site request (browsers send Origin on POST)
    allowed = {
        f"{request.url.scheme}://{request.url.netloc}",
        "{0.scheme}://{0.netloc}".format(urlsplit(settings.base_url)),
    }
    return origin in allowed


async def check_csrf(request: Request, settings: Settings, principal: Principal) -> None:
    """Raise :class:`CsrfFailed` unless this cookie-authenticated request carries
    the session's CSRF token and, if it names one, this site's origin."""
    if not is_same_origin(request, settings):
        raise CsrfFailed(f"cross-site request from {request.headers.get('origin')} refused")
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
    assert principal.session_jti is not None
    if not security.csrf_matches(security.load_secret(settings), principal.session_jti, given):
        raise CsrfFailed(
            f"missing or wrong CSRF token: send the {CSRF_HEADER} header or a "
            f"{CSRF_FIELD} form field from the page"
        )


async def _checked(
    request: Request, ctx: CtxDep, principal: Annotated[Principal | None, Depends(_resolve)]
) -> Principal | None:
    if principal is not None and principal.via_cookie and request.method not in SAFE_METHODS:
        await check_csrf(request, ctx.settings, principal)
    return principal


async def _current(principal: Annotated[Principal | None, Depends(_checked)]) -> Principal:
    return _require_role(principal, "merchant", "regulator", "admin")


def require_role(*roles: Role) -> Any:
    """``Depends`` admitting only callers with one of ``roles``."""

    # async: no I/O, so no trip through the thread pool.
    async def dependency(principal: Annotated[Principal | None, Depends(_checked)]) -> Principal:
        return _require_role(principal, *roles)

    return Depends(dependency)


def csrf_token_for(settings: Settings, principal: Principal | None) -> str | None:
    """The CSRF token a page embeds in its forms (``None`` without a cookie session)."""
    if principal is None or principal.session_jti is None:
        return None
    return security.csrf_token(security.load_secret(settings), principal.session_jti)


def _csrf_for_request(
    ctx: CtxDep, principal: Annotated[Principal | None, Depends(_checked)]
) -> str | None:
    return csrf_token_for(ctx.settings, principal)


def cookie_secure(request: Request, settings: Settings) -> bool:
    return request.url.scheme == "https" or settings.base_url.startswith("https://")


def set_session_cookie(
    response: Response, token: str, *, request: Request, settings: Settings
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.token_ttl_s,
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request, settings),
        path="/",
    )


def clear_session_cookie(response: Response, *, request: Request, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request, settings),
    )


OptionalUser = Annotated[Principal | None, Depends(_checked)]
CurrentUser = Annotated[Principal, Depends(_current)]
RegulatorUser = Annotated[Principal, require_role("regulator")]
AdminUser = Annotated[Principal, require_role("admin")]
MerchantUser = Annotated[Principal, require_role("merchant")]
CsrfToken = Annotated[str | None, Depends(_csrf_for_request)]
