"""Where every domain's router and background worker is plugged into the app."""

from __future__ import annotations

from fastapi import FastAPI

from backend.accounts import router as accounts_router
from backend.credit import router as credit_router
from backend.credit import service as credit_service
from backend.disclosure import router as disclosure_router
from backend.inspections import router as inspections_router
from backend.ledger import anchoring, witnessing
from backend.ledger import router as ledger_router
from backend.ledger import rpc as ledger_rpc
from backend.merchants import router as merchants_router
from backend.ops import router as ops_router
from backend.pledges import router as pledges_router
from backend.shops import router as shops_router
from backend.shops import views as merchant_views
from backend.supervision import router as supervision_router


def install(app: FastAPI) -> None:
    app.include_router(ledger_router.router)
    app.include_router(ledger_router.log_router)
    ledger_router.install_tiles(app)
    app.include_router(ledger_rpc.router)
    anchoring.install(app)
    witnessing.install(app)

    app.include_router(accounts_router.router)
    app.include_router(shops_router.router)
    app.include_router(merchants_router.router)
    app.include_router(pledges_router.router)
    app.include_router(pledges_router.pages)
    settings = app.state.settings
    if settings.demo_on_first_start and settings.env != "production":
        # The demo package is never imported in production.
        from backend.demo import seed as demo

        demo.install(app)
    merchant_views.install(app)

    app.include_router(supervision_router.router)
    app.include_router(credit_router.router)
    credit_service.install(app)

    app.include_router(inspections_router.inspectors)
    app.include_router(inspections_router.items)
    app.include_router(inspections_router.router)

    # Last: the public site's pages, static files, security headers and HTML error pages.
    disclosure_router.install(app)

    # After everything else: /metrics, and the request middleware (body limits, request
    # ids, metrics, access log) as the outermost layer, so it sees every response.
    ops_router.install(app)
