"""Liveness and readiness (the log and checkpoint API lives here too)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from backend.deps import CtxDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(ctx: CtxDep) -> JSONResponse:
    """Database and ledger reachable; says which one is down."""
    checks: dict[str, str] = {}
    try:
        with ctx.db.read() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = "up"
    except Exception as exc:  # any failure means "not ready"
        checks["database"] = f"down: {type(exc).__name__}"
    try:
        ctx.require_ledger().block_number()
        checks["ledger"] = "up"
    except Exception as exc:
        checks["ledger"] = f"down: {getattr(exc, 'detail', type(exc).__name__)}"
    ready = all(v == "up" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
