"""The web layer of the public site: templates, security headers, HTML errors, form CSRF.

- :data:`templates`: Jinja2 with autoescaping on for every template, so any
  text from a record, a merchant or a visitor is rendered as text.
- :class:`SecurityHeaders`: a pure ASGI middleware that puts a
  Content-Security-Policy without inline scripts (``script-src 'self'``),
  ``frame-ancestors 'none'``, ``X-Content-Type-Options``, ``Referrer-Policy``
  (and friends) on every response that does not set its own.
- :func:`install_page_errors`: browser navigations get an HTML error page; API
  clients keep the one JSON error shape of ``backend/app.py``.
- Anonymous forms (register, complaint) carry a double-submit CSRF token bound
  to a random cookie; logged-in forms use the session's token from
  ``backend.accounts.deps`` (checked there by every cookie-authenticated POST).

This module renders and guards; it never holds a domain rule.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import jinja2
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend import zherrors
from backend.accounts import security
from backend.accounts.deps import CsrfToken, OptionalUser, is_same_origin
from backend.accounts.passwords import PASSWORD_RULE_ZH
from backend.accounts.service import Principal
from backend.config import Settings
from backend.disclosure.amounts import yuan_in_words
from backend.disclosure.apidocs import ASSETS_URL, DOCS_CSP, DOCS_PATHS
from backend.disclosure.shown import yuan
from backend.errors import DomainError, Forbidden
from backend.ledger import trustroot_store
from backend.ledger.contract import load_artifact
from backend.ledger.trustroot import TrustRoot
from backend.timeutil import SHANGHAI

log = logging.getLogger("honest_metering.disclosure")

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"

# Paths that are API or machine endpoints: their errors stay JSON whatever the client accepts.
API_PREFIXES = (
    "/api/", "/rpc", "/healthz", "/readyz", "/metrics", "/openapi.json", "/static/",
    ASSETS_URL + "/",
)


# --- security headers -------------------------------------------------------------


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def verify_rpc_origins(settings: Settings) -> list[str]:
    """The JSON-RPC origins the browser verifier may read besides this site: the public
    node (``HM_LEDGER_PUBLIC_URL``) and the nodes visitors may choose
    (``HM_VERIFY_RPC_NODES``). The CSP's connect-src is exactly these and ``'self'``."""
    found: list[str] = []
    for url in [settings.ledger_public_url or "", *settings.verify_rpc_nodes]:
        origin = _origin(url) if url else None
        if origin and origin not in found:
            found.append(origin)
    return found


def content_security_policy(settings: Settings) -> str:
    """The site's CSP: nothing inline, nothing from elsewhere (the site works offline),
    except reading the JSON-RPC nodes of :func:`verify_rpc_origins`."""
    connect = ["'self'", *verify_rpc_origins(settings)]
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src " + " ".join(connect),
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


COMMON_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
)


class SecurityHeaders:
    """Adds the security headers to every HTTP response that does not set its own, and a
    ``Server-Timing: app;dur=<ms>`` header (time to the response head; what benchmarks read)."""

    def __init__(self, app: ASGIApp, *, csp: str) -> None:
        self.app = app
        self.csp = csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP.get(scope.get("path", ""), self.csp)
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                elapsed_ms = (time.perf_counter() - started) * 1000
                headers.append("Server-Timing", f"app;dur={elapsed_ms:.2f}")
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = csp
                for name, value in COMMON_HEADERS:
                    if name.lower() not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- templates ---------------------------------------------------------------------


@lru_cache(maxsize=64)
def _asset_version(name: str) -> str:
    path = STATIC_DIR / name
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    except OSError:
        return "0"


def static_url(name: str) -> str:
    """``/static/<name>?v=<content hash>``: browsers may cache it for good."""
    return f"/static/{name}?v={_asset_version(name)}"


def zh_date(value: date | datetime | str | None) -> str:
    """A date as ``2026年11月26日``; a moment is shown as its Asia/Shanghai date."""
    if value is None or value == "":
        return "—"
    day: date
    if isinstance(value, str):
        try:
            day = date.fromisoformat(value[:10])
        except ValueError:
            return value
    elif isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        day = aware.astimezone(SHANGHAI).date()
    else:
        day = value
    return f"{day.year}年{day.month}月{day.day}日"


def zh_time(value: datetime | str | None) -> str:
    """A moment in Beijing time, e.g. ``2026年11月26日 17:30``."""
    if value is None or value == "":
        return "—"
    moment: datetime
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        moment = value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def short_hash(value: str | None, n: int = 10) -> str:
    if not value:
        return "—"
    v = value.removeprefix("0x")
    return ("0x" if value.startswith("0x") else "") + (
        v if len(v) <= 2 * n else v[:n] + "…" + v[-4:]
    )


def _build_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        # Every template is HTML or SVG: escape everything, always.
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals["static_url"] = static_url
    env.globals["password_rule"] = PASSWORD_RULE_ZH
    env.filters["zh_date"] = zh_date
    env.filters["zh_time"] = zh_time
    env.filters["short_hash"] = short_hash
    env.filters["yuan"] = yuan
    env.filters["yuan_words"] = yuan_in_words
    return env


env = _build_env()


@lru_cache(maxsize=1)
def contract_code_sha256() -> str:
    """SHA-256 of the published MeteringLedger runtime code (the committed artifact), so the
    browser can check that the address it reads checkpoints from runs that contract."""

    code = bytes.fromhex(str(load_artifact()["deployedBytecode"]).removeprefix("0x"))
    return hashlib.sha256(code).hexdigest()


def page_rpc_url(settings: Settings) -> str:
    """The JSON-RPC endpoint the browser verifier falls back to when a bundle's own
    ``ledger_url`` cannot be reached: the configured public node, else this site's ``/rpc``
    (the embedded chain), as a relative URL so it works under any host name."""
    if settings.ledger_public_url:
        return settings.ledger_public_url
    return "/rpc" if settings.embedded_chain else ""


@lru_cache(maxsize=8)
def site_version(rpc_url: str) -> str:
    """What a rendered page depends on besides its data: the templates, the static files
    it links (by content) and the ledger endpoint it names. The same in every worker
    running the same build, so ETags agree across workers and hosts."""
    digest = hashlib.blake2b(rpc_url.encode(), digest_size=8)
    for path in sorted([*TEMPLATES_DIR.rglob("*.html"), *STATIC_DIR.rglob("*")]):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


PUBLIC_PAGE_CACHE = "public, max-age=0, must-revalidate, s-maxage=60, stale-while-revalidate=300"
"""Cache-Control of a public page served to an anonymous visitor: a browser revalidates
it every time (a ``304`` costs the origin one read), so a visitor, or a regulator who
has just recorded an outcome, never sees an older page than the service has; a CDN may
keep it a minute (see docs/operations.md)."""
PRIVATE_PAGE_CACHE = "private, no-cache"


def page_html(name: str, settings: Settings, context: Mapping[str, Any]) -> str:
    """The page ``name`` rendered in the layout: what every page shows besides its
    ``context`` (an anonymous visitor's, unless the context names a user). The layout's
    ``pinned`` (the trust root the browser verifier pins: the chain and contract of the
    one the page was served with, never the ones a bundle names) must be in ``context``."""
    ctx: dict[str, Any] = {
        "request": None,
        "user": None,
        "csrf_token": None,
        "anon_csrf": None,
        "nav": "",
        "title": "",
        "notice": None,
        "rpc_url": page_rpc_url(settings),
        # Nodes a visitor may choose for the anchor check (the CSP allows exactly these).
        "rpc_nodes": settings.verify_rpc_nodes,
        "rpc_origins": verify_rpc_origins(settings),
        "code_sha256": contract_code_sha256(),
        **context,
    }
    return env.get_template(name).render(ctx)


def pinned_fingerprint(pinned: TrustRoot | None) -> str:
    return "" if pinned is None else pinned.fingerprint


async def pinned_for_pages(ctx: Any) -> TrustRoot | None:
    """:func:`trustroot_store.for_pages` for the event loop: the root looked up at most
    every 30 s per process (in the thread pool: it may read files and the ledger)."""
    memo: dict[str, tuple[float, Any]] = ctx.local("pinned_for_pages", dict)
    hit = memo.get("root")
    if hit is not None and time.monotonic() - hit[0] < PINNED_CACHE_S:
        return hit[1]  # type: ignore[no-any-return]
    from starlette.concurrency import run_in_threadpool

    root = await run_in_threadpool(trustroot_store.for_pages, ctx)
    if root is not None:  # none issued yet: look again on the next page
        memo["root"] = (time.monotonic(), root)
    return root


PINNED_CACHE_S = 30.0


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render a page; the layout gets the request, the signed-in user and the CSRF tokens."""
    ctx: dict[str, Any] = {
        "request": request,
        "user": getattr(request.state, "page_user", None),
        "csrf_token": getattr(request.state, "page_csrf", None),
        "anon_csrf": getattr(request.state, "anon_csrf", None),
    }
    if context:
        ctx.update(context)
    if "pinned" not in ctx:
        ctx["pinned"] = trustroot_store.for_pages(request.app.state.ctx)
    html = page_html(name, request.app.state.settings, ctx)
    response = HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
    cookie = getattr(request.state, "anon_cookie_new", None)
    if cookie is not None:
        settings: Settings = request.app.state.settings
        response.set_cookie(
            ANON_COOKIE,
            cookie,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https" or settings.base_url.startswith("https"),
            path="/",
        )
    return response


def pager(total: int, page_no: int, size: int, query: dict[str, str]) -> dict[str, object]:
    """What the pager shows: the page, how many, and the links (filters kept)."""
    pages_n = max(1, -(-total // size))
    kept = {k: v for k, v in query.items() if v and k != "page"}

    def link(n: int) -> str:
        return "?" + urlencode({**kept, "page": str(n)})

    return {
        "total": total,
        "page": page_no,
        "pages": pages_n,
        "first": (page_no - 1) * size + 1 if total else 0,
        "last": min(page_no * size, total),
        "prev": link(page_no - 1) if page_no > 1 else None,
        "next": link(page_no + 1) if page_no < pages_n else None,
    }


# --- who is looking ----------------------------------------------------------------------


async def page_user(
    request: Request, user: OptionalUser, csrf: CsrfToken
) -> Principal | None:
    """The signed-in visitor (or ``None``), made available to the layout (async: no I/O,
    so no trip through the thread pool)."""
    request.state.page_user = user
    request.state.page_csrf = csrf
    return user


PageUser = Annotated[Principal | None, Depends(page_user)]


def safe_next(target: str | None) -> str:
    """A same-site path to go back to after logging in, or ``""`` (never another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return ""
    return target


# --- anonymous-form CSRF (double submit, bound to a random cookie) ----------------------

ANON_COOKIE = "hm_form"
ANON_FIELD = "form_token"


class FormExpired(Forbidden):
    """The anonymous form's token does not match its cookie (or the form is cross-site)."""


# The namespace keeps these apart from session CSRF tokens (jti are hex).
ANON_NAMESPACE = "anon:"


def _anon_token(settings: Settings, nonce: str) -> str:
    return security.csrf_token(security.load_secret(settings), ANON_NAMESPACE + nonce)


def anon_form_token(request: Request) -> str:
    """The token an anonymous form embeds; sets the cookie on first use."""
    settings: Settings = request.app.state.settings
    nonce = request.cookies.get(ANON_COOKIE)
    if not nonce or len(nonce) != 32:
        nonce = secrets.token_hex(16)
        request.state.anon_cookie_new = nonce
    token = _anon_token(settings, nonce)
    request.state.anon_csrf = token
    return token


def check_anon_form(request: Request, token: str | None) -> None:
    """Raise :class:`FormExpired` unless the anonymous form came from this site's page."""
    settings: Settings = request.app.state.settings
    if not is_same_origin(request, settings):
        raise FormExpired(f"cross-site form post from {request.headers.get('origin')} refused")
    nonce = request.cookies.get(ANON_COOKIE)
    secret = security.load_secret(settings)
    if not nonce or not security.csrf_matches(secret, ANON_NAMESPACE + nonce, token):
        raise FormExpired(
            "the form has expired or cookies are disabled: reload the page and submit again"
        )


# --- HTML error pages ----------------------------------------------------------------

ERROR_TITLES = {
    400: "请求有误",
    401: "需要登录",
    403: "没有权限",
    404: "未找到",
    405: "不支持的操作",
    409: "操作冲突",
    413: "内容过大",
    422: "填写的内容有误",
    429: "操作过于频繁",
    500: "系统错误",
    503: "服务暂不可用",
}

def friendly_message(name: str, status: int) -> str:
    """The plain-language line at the top of an error (``backend/zherrors.py``)."""
    return zherrors.summary(name, status) + "。"


def wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(API_PREFIXES) or path in DOCS_PATHS:
        return False
    return "text/html" in request.headers.get("accept", "")


def error_page(
    request: Request, *, status: int, name: str, detail: str, headers: Mapping[str, str] | None
) -> HTMLResponse:
    """An error page; ``detail`` is shown as it is, so it must already be Chinese."""
    context = {
        "title": ERROR_TITLES.get(status, "出错了"),
        "status": status,
        "error_name": name,
        "message": friendly_message(name, status),
        "detail": detail,
        "login_next": request.url.path if status == 401 else None,
    }
    try:
        return render(request, "error.html", context, status_code=status, headers=headers)
    except Exception:  # never let the error page itself fail
        log.exception("rendering the error page failed")
        return HTMLResponse(
            f"<!doctype html><meta charset=utf-8><title>{status}</title><p>{status}</p>",
            status_code=status,
        )


Handler = Callable[[Request, Any], Awaitable[Response]]


def install_page_errors(app: FastAPI) -> None:
    """Wrap the app's JSON error handlers: HTML for browser navigations, JSON otherwise."""
    previous: dict[Any, Handler] = dict(app.exception_handlers)  # type: ignore[arg-type]

    def wrap(key: Any, to_page: Callable[[Any], tuple[int, str, str, Mapping[str, str] | None]]):
        json_handler = previous.get(key)

        async def handler(request: Request, exc: Any) -> Response:
            if wants_html(request):
                status, name, detail, headers = to_page(exc)
                # 401 WWW-Authenticate: Bearer would make no sense to a browser page.
                if status == 401:
                    headers = None
                return error_page(request, status=status, name=name, detail=detail, headers=headers)
            if json_handler is None:
                raise exc
            return await json_handler(request, exc)

        app.add_exception_handler(key, handler)

    # A person reads these pages: the detail shown is the Chinese of backend/zherrors.py,
    # never the service's or the validation library's English.
    wrap(
        DomainError,
        lambda e: (e.status_code, e.name, zherrors.detail_zh(e), getattr(e, "headers", None)),
    )
    wrap(
        RequestValidationError,
        lambda e: (422, "ValidationFailed", zherrors.validation_detail_zh(e.errors()), None),
    )

    def _http(e: StarletteHTTPException) -> tuple[int, str, str, Mapping[str, str] | None]:
        name = getattr(e, "error_name", None) or (
            "NotFound" if e.status_code == 404 else "HTTPError"
        )
        return e.status_code, name, getattr(e, "detail_zh", "") or "", getattr(e, "headers", None)

    wrap(StarletteHTTPException, _http)

    def _unexpected(e: Exception) -> tuple[int, str, str, None]:
        ref = uuid.uuid4().hex[:12]
        log.error("unhandled error on a page (ref %s)", ref, exc_info=e)
        return 500, "InternalError", f"参考编号 {ref}", None

    wrap(Exception, _unexpected)


# --- form errors ------------------------------------------------------------------------------


class FormError:
    """What went wrong with a submitted form, in Chinese: a line for the top of the form
    (``message``) and every problem found, each with the field it is about (``problems``),
    so the page shows them all at once, next to their fields."""

    def __init__(
        self,
        message: str,
        detail: str = "",
        field: str | None = None,
        *,
        problems: list[tuple[str | None, str]] | None = None,
    ) -> None:
        self.message = message
        self.problems: list[tuple[str | None, str]] = list(problems or [])
        if field is not None and not self.problems:
            self.problems.append((field, detail or message.rstrip("。")))
        self._detail = detail
        self.field = field or next((f for f, _ in self.problems if f), None)

    @property
    def detail(self) -> str:
        """The problems as one line (shown under the message when no field shows them)."""
        if self._detail:
            return self._detail
        return "；".join(text for f, text in self.problems if not f)

    @detail.setter
    def detail(self, value: str) -> None:
        self._detail = value

    @property
    def note(self) -> str:
        """A detail set by the page itself (e.g. the unmet conditions of a credit repair),
        shown under the list of problems."""
        return self._detail

    def messages(self, field: str) -> list[str]:
        """The problems of one field, shown next to it."""
        return [text for f, text in self.problems if f == field]

    def has(self, *fields: str) -> bool:
        return any(f in fields for f, _ in self.problems)

    def fields(self) -> list[str]:
        return [f for f, _ in self.problems if f]

    def listed(self) -> list[tuple[str | None, str]]:
        """The problems for the list at the top of the form."""
        return self.problems

    def add(self, other: FormError) -> FormError:
        """Both errors' problems (the first error's message)."""
        seen = set(self.problems)
        self.problems.extend(p for p in other.problems if p not in seen)
        self.field = self.field or other.field
        return self

    @classmethod
    def of(
        cls,
        exc: Exception,
        *,
        labels: Mapping[str, str] | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> FormError:
        """The form error of a domain error or a pydantic ``ValidationError``."""
        if isinstance(exc, DomainError):
            problems = zherrors.domain_errors(exc, labels=labels)
            if aliases:
                problems = [(aliases.get(f, f) if f else f, t) for f, t in problems]
            field = problems[0][0]
            message = (
                FORM_INVALID if field else zherrors.summary(exc.name, exc.status_code) + "。"
            )
            return cls(message, problems=problems)
        if isinstance(exc, ValidationError):
            problems = zherrors.pydantic_errors(exc.errors(), labels=labels, aliases=aliases)
            return cls(FORM_INVALID, problems=problems)
        raise exc

    @classmethod
    def collect(cls, found: list[FormError]) -> FormError | None:
        """One error holding every problem ``found`` (``None`` if there were none)."""
        if not found:
            return None
        first = found[0]
        for more in found[1:]:
            first.add(more)
        return first


FORM_INVALID = "填写的内容有误，请按提示修改后重新提交。"


def required(values: Mapping[str, str], fields: Mapping[str, str]) -> list[FormError]:
    """A "请填写" problem for each required field left empty (``fields``: name → label)."""
    return [
        FormError(FORM_INVALID, problems=[(name, f"请填写{label}")])
        for name, label in fields.items()
        if not str(values.get(name, "")).strip()
    ]


def check_each(
    checks: Mapping[str, Callable[[], Any]], *, labels: Mapping[str, str] | None = None
) -> list[FormError]:
    """Run each field's own check (the domain's parse function) and keep every failure,
    so that one submission reports every wrong field, not only the first."""
    found = []
    for _name, check in checks.items():
        try:
            check()
        except (DomainError, ValidationError) as exc:
            found.append(FormError.of(exc, labels=labels))
    return found
