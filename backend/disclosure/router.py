"""The public disclosure site (一公开): server-rendered zh-CN pages.

Thin like every router: parse the request, call ``backend/disclosure/service.py``
(which calls the domain services directly, never HTTP to itself), render a
template. The logged-in merchant and regulator areas are in
``backend/disclosure/areas.py``; templates, headers and error pages in
``backend/disclosure/web.py``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from backend import zherrors
from backend.accounts import service as accounts
from backend.accounts.deps import PasswordWork, client_address, set_session_cookie
from backend.context import AppContext
from backend.deps import CtxDep, ReadSessionDep, SessionDep
from backend.disclosure import (
    accounts_pages,
    areas,
    complaint_status,
    documents,
    draw_lists,
    forms,
    kept,
    service,
    web,
    workbench,
)
from backend.disclosure.web import FormError, PageUser
from backend.errors import DomainError, Forbidden, RateLimited
from backend.ledger import trustroot_store
from backend.ledger.trustroot import TrustRoot
from backend.merchants import service as merchants
from backend.shops import views
from backend.supervision import complaints
from backend.timeutil import today_shanghai, utcnow

pages = APIRouter(include_in_schema=False)

Text = Annotated[str | None, Query(max_length=100)]

# What a form field may carry before the page refuses the request outright; the form's
# own checks say in Chinese, next to the field, what is too long (the body limit, 1 MiB
# by default, bounds everything).
FORM_MAX = 20_000


# --- home and search -------------------------------------------------------------------


def _filters(
    q: str | None, region: str | None, sector: str | None, sub_area: str | None, tier: str | None
) -> dict[str, object]:
    return {
        "q": q or "",
        "region": region or "",
        "sector": sector or "",
        "sub_area": sub_area or "",
        "tier": tier or "",
        "regions": service.region_options(),
        "sectors": service.sector_options(),
        "sub_areas": service.sub_area_options(),
        "tiers": service.tier_options(),
    }


@pages.get("/", response_class=HTMLResponse)
def home(request: Request, session: ReadSessionDep, _user: PageUser) -> HTMLResponse:
    today = today_shanghai()
    data = service.home(session, today=today, cache=request.app.state.home_stats)
    return web.render(
        request,
        "home.html",
        {
            "nav": "home",
            **data,
            **_filters(None, None, None, None, None),
            "now": utcnow(),
            "ago": service.ago,
        },
    )


@pages.get("/search", response_class=HTMLResponse)
def search(
    request: Request,
    session: ReadSessionDep,
    _user: PageUser,
    q: Text = None,
    region: Annotated[str | None, Query(max_length=16)] = None,
    sector: Annotated[str | None, Query(max_length=32)] = None,
    sub_area: Annotated[str | None, Query(max_length=32)] = None,
    tier: Annotated[str | None, Query(max_length=1)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    today = today_shanghai()
    filters = _filters(q, region, sector, sub_area, tier)
    try:
        result = service.search(
            session,
            q=q,
            region=region,
            sector=sector,
            sub_area=sub_area,
            tier=tier,
            page_no=page,
            today=today,
        )
    except DomainError as exc:
        return web.render(
            request,
            "search.html",
            {
                "title": "搜索",
                "nav": "home",
                **filters,
                "result": None,
                "error": web.friendly_message(exc.name, exc.status_code),
                "error_detail": zherrors.detail_zh(exc),
            },
            status_code=exc.status_code,
        )
    code = service.exact_code(q)
    if code and result.page.total == 1 and result.page.items[0].uscc == code:
        return RedirectResponse(f"/merchants/{code}", status_code=303)
    return web.render(
        request,
        "search.html",
        {
            "title": f"搜索：{q}" if q else "搜索",
            "nav": "home",
            **filters,
            "result": result,
            "error": None,
            "query_string": request.url.query,
        },
    )


# --- the merchant page (the QR code's target) -----------------------------------------------


@pages.get("/merchants/{uscc}", response_class=HTMLResponse)
async def merchant(
    request: Request,
    ctx: CtxDep,
    user: PageUser,
    uscc: str,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
    accept_encoding: Annotated[str | None, Header(max_length=1024)] = None,
) -> Response:
    """A shop page. For anonymous visitors it carries an ``ETag`` (the page's version
    stamp) and may be cached publicly; a matching ``If-None-Match`` gets ``304``, and
    an unchanged page is served as kept (``backend/disclosure/kept.py``) without being
    assembled again: one read, on the event loop. Signed-in visitors see their own
    navigation: their pages are private and never kept."""
    today = today_shanghai()
    code = service.exact_code(uscc)
    if code is not None and code != uscc:
        # Lower case or spaces from a hand-typed address: one canonical URL per merchant.
        return RedirectResponse(f"/merchants/{code}", status_code=301)
    headers = {"Cache-Control": web.PRIVATE_PAGE_CACHE}
    page = None
    pinned = await web.pinned_for_pages(ctx)
    if user is None:
        version = kept.page_version(ctx.settings, pinned)
        page = await kept.lookup(ctx.db, uscc, today=today, version=version)
        headers = {"ETag": page.etag, "Cache-Control": web.PUBLIC_PAGE_CACHE,
                   "Vary": "Accept-Encoding"}
        if views.etag_matches(if_none_match, page.etag):
            return Response(status_code=304, headers=headers)
        if page.gzipped is not None:
            if accept_encoding and "gzip" in accept_encoding.lower():
                return Response(page.gzipped, media_type="text/html; charset=utf-8",
                                headers={**headers, "Content-Encoding": "gzip"})
            return HTMLResponse(kept.html_of(page.gzipped), headers=headers)
    return await run_in_threadpool(
        _merchant_page, request, ctx, uscc, today, headers, page, pinned
    )


def _merchant_page(
    request: Request, ctx: AppContext, uscc: str, today: date, headers: dict[str, str],
    page: kept.Page | None, pinned: TrustRoot | None,
) -> Response:
    """Assemble and render a shop page, and keep it when it is an anonymous visitor's
    (under the ETag read before, which names the trust root the page pins)."""
    with ctx.db.read() as session:
        data = service.merchant_page(
            session, settings=ctx.settings, uscc=uscc, today=today,
            merchant=views.public(ctx.db, ctx.settings, uscc, today=today),
        )
    response = web.render(
        request,
        "merchant.html",
        kept.page_context(data, today, pinned),
        headers=headers,
    )
    if page is not None and "set-cookie" not in response.headers:
        # Kept after the answer is sent: the visitor never waits for the write lock.
        response.background = BackgroundTask(
            kept.keep, ctx.db, page.uscc, page.etag, bytes(response.body)
        )
    return response


# --- random inspections (双随机、一公开) -----------------------------------------------


@pages.get("/inspections", response_class=HTMLResponse)
def inspections(request: Request, session: ReadSessionDep, _user: PageUser) -> HTMLResponse:
    data = service.inspections_page(session, today=today_shanghai())
    return web.render(
        request,
        "inspections.html",
        {
            "title": "双随机抽查",
            "nav": "inspections",
            **data,
            "status_labels": service.DRAW_STATUS,
            "region_names": service.region_names,
            "sector_names": service.sector_names,
        },
    )


@pages.get("/inspections/{ref}", response_class=HTMLResponse)
def draw(
    request: Request, ctx: CtxDep, session: ReadSessionDep, user: PageUser, ref: str
) -> HTMLResponse:
    staff = user is not None and user.role in ("regulator", "admin")
    data = service.draw_page(session, ctx=ctx, ref=ref, today=today_shanghai(), staff=staff)
    return web.render(
        request,
        "draw.html",
        {
            "title": f"第 {data['draw'].number} 次双随机抽查",
            "nav": "inspections",
            **data,
            "result_labels": service.RESULT_STATUS,
            "staff": staff,
        },
    )


# --- verification -------------------------------------------------------------------


@pages.get("/verify", response_class=HTMLResponse)
def verify_page(
    request: Request,
    _user: PageUser,
    ctx: CtxDep,
    record: Annotated[str | None, Query(max_length=80)] = None,
) -> HTMLResponse:
    fingerprint = trustroot_store.published_fingerprint(ctx)
    return web.render(
        request,
        "verify.html",
        {
            "title": "验证证明",
            "nav": "verify",
            "record_id": (record or "").strip(),
            "trust_root_fingerprint": fingerprint,
            "trust_root_path": trustroot_store.PATH,
        },
    )


# --- login ------------------------------------------------------------------------------

LOGIN_ERRORS = {
    "invalid_credentials": "用户名或密码错误。经营者请用统一社会信用代码登录。",
    "rate_limited": "登录失败次数过多，请稍后再试。",
}


@pages.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request,
    user: PageUser,
    next: Annotated[str | None, Query(max_length=2000)] = None,
    error: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    target = web.safe_next(next)
    if user is not None:
        return RedirectResponse(target or service.home_of(user), status_code=303)
    return web.render(
        request,
        "login.html",
        {
            "title": "登录",
            "nav": "login",
            "next": target,
            "error": LOGIN_ERRORS.get(error or ""),
            "form_token": web.anon_form_token(request),
        },
    )


# --- self-registration -----------------------------------------------------------------------

REGISTER_FIELDS = (
    "uscc",
    "name",
    "sector",
    "region_code",
    "sub_area",
    "address",
    "contact_person",
    "contact_phone",
)


def _form_failure(exc: Exception) -> tuple[int, dict[str, str] | None]:
    """Status and headers of a form page re-shown after ``exc``: 429 with Retry-After for a
    rate limit (as the API answers), 403 when the signed-in account may not do this at all
    (e.g. a merchant registering another merchant), 422 for anything the visitor can correct."""
    if isinstance(exc, RateLimited):
        return 429, getattr(exc, "headers", None)
    if isinstance(exc, Forbidden):
        return exc.status_code, None
    return 422, None


def _register_form(
    request: Request,
    values: dict[str, str],
    error: FormError | None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return web.render(
        request,
        "register.html",
        {
            "title": "经营者注册",
            "nav": "register",
            "values": values,
            "error": error,
            "regions": service.region_options(),
            "sectors": service.sector_options(),
            "sub_areas": service.sub_area_options(),
            "form_token": web.anon_form_token(request),
        },
        status_code=status,
        headers=headers,
    )


@pages.get("/register", response_class=HTMLResponse)
def register_page(request: Request, user: PageUser) -> Response:
    if user is not None:
        return RedirectResponse(service.home_of(user), status_code=303)
    return _register_form(request, {k: "" for k in REGISTER_FIELDS}, None)


@pages.post("/register", response_class=HTMLResponse, dependencies=[PasswordWork])
def register_submit(
    request: Request,
    ctx: CtxDep,
    session: SessionDep,
    user: PageUser,
    uscc: Annotated[str, Form(max_length=FORM_MAX)] = "",
    name: Annotated[str, Form(max_length=FORM_MAX)] = "",
    sector: Annotated[str, Form(max_length=FORM_MAX)] = "",
    region_code: Annotated[str, Form(max_length=FORM_MAX)] = "",
    sub_area: Annotated[str, Form(max_length=FORM_MAX)] = "",
    address: Annotated[str, Form(max_length=FORM_MAX)] = "",
    contact_person: Annotated[str, Form(max_length=FORM_MAX)] = "",
    contact_phone: Annotated[str, Form(max_length=FORM_MAX)] = "",
    password: Annotated[str, Form(max_length=FORM_MAX)] = "",
    password2: Annotated[str, Form(max_length=FORM_MAX)] = "",
    form_token: Annotated[str, Form(max_length=FORM_MAX)] = "",
) -> Response:
    """Register a merchant and its account, then sign the new account in."""
    values = {
        "uscc": uscc,
        "name": name,
        "sector": sector,
        "region_code": region_code,
        "sub_area": sub_area,
        "address": address,
        "contact_person": contact_person,
        "contact_phone": contact_phone,
    }
    try:
        web.check_anon_form(request, form_token)
    except web.FormExpired as exc:
        return _register_form(request, values, FormError.of(exc), exc.status_code)
    data, problems = forms.merchant_create(values, password=password, password2=password2)
    if problems is not None or data is None:
        return _register_form(request, values, problems, 422)
    try:
        registered = merchants.register_merchant(
            session,
            settings=ctx.settings,
            data=data,
            principal=user,
            address=client_address(request),
        )
    except (DomainError, ValidationError) as exc:
        status, headers = _form_failure(exc)
        return _register_form(request, values, FormError.of(exc), status, headers)
    if user is not None:  # a regulator registering on a merchant's behalf
        return RedirectResponse(f"/merchants/{registered.uscc}", status_code=303)
    account = accounts.get_account(session, registered.account.id)
    assert account is not None
    token, _ = accounts.issue_token(ctx.settings, account, kind="session")
    response = RedirectResponse("/merchant/pledge?welcome=1", status_code=303)
    set_session_cookie(response, token, request=request, settings=ctx.settings)
    return response


# --- complaints (举报) ----------------------------------------------------------------------------


def _complaint_form(
    request: Request,
    values: dict[str, str],
    error: FormError | None,
    status: int = 200,
    merchant_name: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return web.render(
        request,
        "complaint.html",
        {
            "title": "投诉举报",
            "nav": "complaint",
            "values": values,
            "error": error,
            "merchant_name": merchant_name,
            "form_token": web.anon_form_token(request),
            "received": None,
        },
        status_code=status,
        headers=headers,
    )


@pages.get("/complaint", response_class=HTMLResponse)
def complaint_page(
    request: Request,
    session: ReadSessionDep,
    _user: PageUser,
    uscc: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    name = service.merchant_name(session, uscc) if uscc else None
    return _complaint_form(
        request,
        {"uscc": (uscc or "").strip(), "content": "", "contact": ""},
        None,
        merchant_name=name,
    )


@pages.post("/complaint", response_class=HTMLResponse)
def complaint_submit(
    request: Request,
    session: SessionDep,
    user: PageUser,
    uscc: Annotated[str, Form(max_length=FORM_MAX)] = "",
    content: Annotated[str, Form(max_length=FORM_MAX)] = "",
    contact: Annotated[str, Form(max_length=FORM_MAX)] = "",
    form_token: Annotated[str, Form(max_length=FORM_MAX)] = "",
) -> HTMLResponse:
    values = {"uscc": uscc, "content": content, "contact": contact}
    try:
        web.check_anon_form(request, form_token)
    except web.FormExpired as exc:
        return _complaint_form(request, values, FormError.of(exc), exc.status_code)
    data, problems = forms.complaint_create(values)
    if problems is not None or data is None:
        return _complaint_form(request, values, problems, 422)
    try:
        received = complaints.submit_complaint(
            session, principal=user, data=data, address=client_address(request)
        )
    except (DomainError, ValidationError) as exc:
        status, headers = _form_failure(exc)
        return _complaint_form(request, values, FormError.of(exc), status, headers=headers)
    return web.render(
        request,
        "complaint.html",
        {
            "title": "举报已收到",
            "nav": "complaint",
            "received": received,
            "values": values,
            "error": None,
            "merchant_name": service.merchant_name(session, received.uscc),
            "form_token": "",
        },
    )


# --- wiring ---------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Pages, static files, security headers and HTML error pages."""
    from backend.disclosure import apidocs

    apidocs.install(app)
    app.include_router(pages)
    app.include_router(areas.pages)
    # Before accounts_pages: its /regulator/merchants/{uscc} would take .../merchants/new.
    app.include_router(workbench.pages)
    app.include_router(accounts_pages.pages)
    app.include_router(complaint_status.pages)
    app.include_router(documents.pages)
    app.include_router(draw_lists.pages)
    app.state.home_stats = service.StatsCache()
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    app.add_middleware(web.SecurityHeaders, csp=web.content_security_policy(app.state.settings))
    web.install_page_errors(app)
