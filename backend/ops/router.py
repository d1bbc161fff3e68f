"""GET /metrics, and the middleware every request passes through (limits, NUL, metrics,
logs)."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from backend.context import AppContext
from backend.deps import CtxDep
from backend.errors import Unauthorized
from backend.ops import exposition, metrics
from backend.ops.limits import BodyLimits
from backend.ops.nul import RefuseNul

router = APIRouter(tags=["health"])
log = logging.getLogger("honest_metering.ops")


class MetricsTokenRequired(Unauthorized):
    headers = {"WWW-Authenticate": "Bearer"}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def prometheus_metrics(ctx: CtxDep, request: Request) -> Response:
    """Prometheus metrics: requests by route template, method and status; latency histograms;
    log size, pending records and checkpoint age (read from the database at scrape time);
    anchor failures; ledger reachability. With ``HM_METRICS_TOKEN`` set it needs
    ``Authorization: Bearer <token>``."""
    token = ctx.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        expected = "Bearer " + token.get_secret_value()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise MetricsTokenRequired(
                "GET /metrics needs the header Authorization: Bearer <HM_METRICS_TOKEN>"
            )
    return Response(exposition.render(ctx), media_type=metrics.CONTENT_TYPE)


def warn_if_metrics_public(ctx: AppContext) -> None:
    """At start in production: say loudly that /metrics answers anyone without a token."""
    settings = ctx.settings
    if settings.env == "production" and settings.metrics_token is None:
        log.warning(
            "SECURITY: HM_METRICS_TOKEN is not set, so GET /metrics is public: anyone who "
            "reaches this service can read its request counts, latencies, log size and "
            "anchoring state. Set HM_METRICS_TOKEN (scrapers then send Authorization: "
            "Bearer <token>) or keep /metrics off the public network at the proxy."
        )


def install(app: FastAPI) -> None:
    """Add /metrics and the request middleware; call last, so the middleware is outermost."""
    settings = app.state.settings
    app.state.startup_hooks.append(warn_if_metrics_public)
    app.include_router(router)
    app.add_middleware(
        BodyLimits,
        max_body_bytes=settings.max_body_bytes,
        max_bulk_body_bytes=settings.max_bulk_body_bytes,
        read_timeout_s=settings.body_read_timeout_s,
    )
    # NUL characters are refused before anything reads them (backend/ops/nul.py).
    app.add_middleware(RefuseNul)
    # Added last: outermost, so it times and counts everything, errors included.
    app.add_middleware(metrics.RequestMetrics)
