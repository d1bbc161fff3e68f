"""Where every domain's router and background worker is plugged into the app."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    from backend.ledger import router as ledger_router

    app.include_router(ledger_router.router)
