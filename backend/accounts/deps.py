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

Two more guards live here because they must act before a route's own code:

- ``PasswordWork``: routes that hash a password (login, registration, password
  change) run a few at a time per process, waiting on the event loop rather than
  in a thread, so a burst of them leaves the thread pool to pages and reads.
- :func:`install_authentication_first`: FastAPI parses and validates a body
  before it runs dependencies, so an anonymous caller would learn a write's
  field list (422) before being told to log in (401). For routes that need a
  logged-in caller, the credentials are checked first.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer

from backend.accounts import security
from backend.accounts.models import ROLES, Role
from backend.accounts.service import (
    CsrfFailed,
    InvalidToken,
    Principal,
    principal_from_token_async,
)
from backend.accounts.service import require_role as _require_role
from backend.config import Settings
from backend.deps import CtxDep
from backend.errors import DomainError, ServiceUnavailable

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
    return _require_role(principal, *ROLES)


# The dependencies that need a logged-in caller, and the roles each admits.
_NEEDS_PRINCIPAL: dict[Callable[..., Any], tuple[Role, ...]] = {_current: ROLES}


def require_role(*roles: Role) -> Any:
    """``Depends`` admitting only callers with one of ``roles``."""

    # async: no I/O, so no trip through the thread pool.
    async def dependency(principal: Annotated[Principal | None, Depends(_checked)]) -> Principal:
        return _require_role(principal, *roles)

    _NEEDS_PRINCIPAL[dependency] = roles
    return Depends(dependency)


def csrf_token_for(settings: Settings, principal: Principal | None) -> str | None:
    """The CSRF token a page embeds in its forms (``None`` without a cookie session)."""
    if principal is None or principal.session_jti is None:
        return None
    return security.csrf_token(security.load_secret(settings), principal.session_jti)


async def _csrf_for_request(
    ctx: CtxDep, principal: Annotated[Principal | None, Depends(_checked)]
) -> str | None:
    # async: no I/O (an HMAC at most), so no trip through the thread pool.
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
StaffUser = Annotated[Principal, require_role("regulator", "admin")]
MerchantUser = Annotated[Principal, require_role("merchant")]
CsrfToken = Annotated[str | None, Depends(_csrf_for_request)]


# --- authentication before body validation --------------------------------------------


_route_roles: dict[int, tuple[Role, ...] | None] = {}


def _roles_needed(route: Any) -> tuple[Role, ...] | None:
    """The roles a route admits if it needs a logged-in caller, else ``None``."""
    if not isinstance(route, APIRoute):
        return None
    key = id(route)
    if key not in _route_roles:
        found: tuple[Role, ...] | None = None
        stack = list(route.dependant.dependencies)
        while stack and found is None:
            dep = stack.pop()
            if dep.call is not None and dep.call in _NEEDS_PRINCIPAL:
                found = _NEEDS_PRINCIPAL[dep.call]
            stack.extend(dep.dependencies)
        _route_roles[key] = found
    return _route_roles[key]


async def authentication_error(request: Request) -> DomainError | None:
    """For a request to a route that needs a logged-in caller: the error its credentials
    get (401 anonymous or bad token, 403 wrong role), else ``None``."""
    roles = _roles_needed(request.scope.get("route"))
    if roles is None:
        return None
    try:
        principal = await _resolve(request, request.app.state.ctx, None)
        _require_role(principal, *roles)
    except DomainError as exc:
        return exc
    return None


def install_authentication_first(app: FastAPI) -> None:
    """Answer a request with a malformed or invalid body by its missing or wrong
    credentials first (401/403), as if the body had been read after them. Installed
    after every other handler (it wraps the one there is, JSON or page)."""
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]]
    handlers = app.exception_handlers  # type: ignore[assignment]
    previous = handlers[RequestValidationError]

    async def handler(request: Request, exc: Exception) -> Response:
        err = await authentication_error(request)
        if err is not None:
            return await handlers[DomainError](request, err)
        return await previous(request, exc)

    app.add_exception_handler(RequestValidationError, handler)


# --- password work: a few at a time, queued on the event loop --------------------------

# A request is queued only if it can expect its turn within this many seconds (from the
# queue's length and the recent time per request); otherwise it is told at once when
# to come back. Past the hard limit a queued request gives up too (the estimate was off).
PASSWORD_WORK_WAIT_S = 10.0
PASSWORD_WORK_HARD_WAIT_S = 30.0


class ServerBusy(ServiceUnavailable):
    """Too many logins or registrations at once in this process; retry after ``Retry-After``."""

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.headers = {"Retry-After": str(retry_after_s)}


class PasswordSlots:
    """``HM_PASSWORD_HASH_CONCURRENCY`` slots of one app, on the event loop it runs on
    (a test client may start another loop: then the slots start afresh)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.waiting = 0
        # Seconds a request holds a slot: a moving average, starting from a guess.
        self.hold_s = 0.25
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def _for_this_loop(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._loop, self._semaphore = loop, asyncio.Semaphore(self.size)
            self.waiting = 0
        return self._semaphore

    def expected_wait_s(self) -> float:
        return (self.waiting + 1) * self.hold_s / self.size

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        semaphore = self._for_this_loop()
        if semaphore.locked():
            expected = self.expected_wait_s()
            if expected > PASSWORD_WORK_WAIT_S:
                raise self._busy(expected)
            self.waiting += 1
            try:
                await asyncio.wait_for(semaphore.acquire(), PASSWORD_WORK_HARD_WAIT_S)
            except TimeoutError:
                raise self._busy(PASSWORD_WORK_HARD_WAIT_S) from None
            finally:
                self.waiting -= 1
        else:
            await semaphore.acquire()
        started = time.monotonic()
        try:
            yield
        finally:
            semaphore.release()
            self.hold_s = 0.8 * self.hold_s + 0.2 * (time.monotonic() - started)

    def _busy(self, wait_s: float) -> ServerBusy:
        retry = max(1, math.ceil(min(wait_s, 60.0)))
        return ServerBusy(
            f"too many logins and registrations at once ({self.waiting} waiting, about "
            f"{self.hold_s:.1f} s each, {self.size} at a time); try again in {retry} s",
            retry_after_s=retry,
        )


async def _password_work(request: Request, ctx: CtxDep) -> AsyncIterator[None]:
    state = request.app.state
    slots: PasswordSlots | None = getattr(state, "password_slots", None)
    if slots is None:
        slots = state.password_slots = PasswordSlots(ctx.settings.password_hash_concurrency)
    async with slots.slot():
        yield


# For a route's ``dependencies=[PasswordWork]``: held while the route's code runs.
PasswordWork = Depends(_password_work, scope="function")
