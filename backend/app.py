"""create_app(settings): routers, error handlers, background workers, pages."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

import backend.domains  # noqa: F401  (record projections and hooks)
from backend import routes
from backend.config import Settings, get_settings
from backend.context import AppContext
from backend.errors import DatabaseUnavailable, DomainError
from backend.zherrors import STATUS_MESSAGES, detail_zh, summary, validation_detail_zh

log = logging.getLogger("honest_metering")

_HTTP_ERROR_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    408: "RequestTimeout",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "ValidationFailed",
    429: "RateLimited",
}


def _error(status: int, name: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": name, "detail": detail, **extra}, status_code=status)


def domain_body(exc: DomainError) -> dict[str, Any]:
    """The one error shape of a domain error, with its Chinese ``detail_zh``."""
    return {**exc.to_dict(), "detail_zh": detail_zh(exc)}


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        msg = err.get("msg", "invalid")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        # Errors may carry headers (WWW-Authenticate on 401, Retry-After on 429).
        return JSONResponse(
            domain_body(exc), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(
            422,
            "ValidationFailed",
            _describe_validation(exc),
            detail_zh=validation_detail_zh(exc.errors()),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Middleware errors raised from ``receive`` may name themselves (NulCharacter).
        name = getattr(exc, "error_name", None) or _HTTP_ERROR_NAMES.get(
            exc.status_code, "HTTPError"
        )
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        # Middleware errors may carry their own Chinese, with the values (BodyReadTimeout).
        zh = getattr(exc, "detail_zh", None) or summary(name, exc.status_code)
        return JSONResponse(
            {"error": name, "detail": detail, "detail_zh": zh},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        # A lost connection (database restarted, connection killed, failover) or no
        # connection to be had is transient: 503, so clients retry; the transaction was
        # rolled back. Handled here, not as unexpected: that path re-raises, which also
        # makes uvicorn drop the client's keep-alive connection. Other database errors
        # (a constraint violated...) are bugs and stay 500 InternalError.
        transient = isinstance(exc, OperationalError | PoolTimeout) or bool(
            getattr(exc, "connection_invalidated", False)
        )
        if not transient:
            return await _unexpected(request, exc)
        ref = uuid.uuid4().hex[:12]
        log.warning("database unavailable (ref %s): %s", ref, (str(exc).splitlines() or [""])[0])
        err = DatabaseUnavailable(
            f"the database connection was lost or is unavailable; retry (reference {ref})"
        )
        return JSONResponse(domain_body(err), status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.exception("unhandled error (ref %s)", ref)
        return _error(
            500,
            "InternalError",
            f"unexpected error; reference {ref}",
            detail_zh=f"{STATUS_MESSAGES[500]}，参考编号 {ref}",
        )


def create_app(settings: Settings | None = None, *, ctx: AppContext | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = app.state.ctx is None
        sys.setswitchinterval(settings.gil_switch_interval_s)
        if own:
            app.state.ctx = AppContext.create(settings)
        for hook in app.state.startup_hooks:
            hook(app.state.ctx)
        try:
            yield
        finally:
            for hook in reversed(app.state.shutdown_hooks):
                hook(app.state.ctx)
            if own:
                app.state.ctx.close()

    app = FastAPI(
        title="Honest-metering trust service (诚信计量可信服务)",
        version="0.1.0",
        lifespan=lifespan,
        # /docs and /redoc are served without a CDN by backend/disclosure/apidocs.py.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        description=(
            "Merchants' honest-metering pledges and regulators' supervision outcomes, "
            "kept in an RFC 9162 Merkle log anchored on an Ethereum-compatible ledger. "
            'Errors always have the shape {"error": "<Name>", "detail": "..."}.'
        ),
    )
    app.state.ctx = ctx
    app.state.settings = settings
    app.state.startup_hooks = []
    app.state.shutdown_hooks = []
    install_error_handlers(app)


    routes.install(app)

    from backend.accounts.deps import install_authentication_first

    # After every other handler: it wraps the validation handler there is then.
    install_authentication_first(app)
    return app
