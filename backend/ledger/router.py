"""Liveness and readiness, and the log's public API: checkpoints, records, proofs.

Thin: parse, call one function of ``backend/ledger/service.py``, return a
``*Public`` model.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from backend.deps import CtxDep, Offset, ReadSessionDep
from backend.errors import ErrorResponse, error_responses
from backend.ledger import health, service
from backend.ledger.bundle import ProofBundle

PINNED_BUNDLE_CACHE = "public, max-age=86400"
LATEST_BUNDLE_CACHE = "public, max-age=60"

router = APIRouter(tags=["health"])
log_router = APIRouter(prefix="/api", tags=["log"], responses=error_responses(404, 409, 422))


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(ctx: CtxDep, request: Request) -> JSONResponse:
    """Database and ledger reachable, and the chain still holds the database's
    checkpoints (says which check fails), within HM_READYZ_TIMEOUT_S; plus anchoring
    progress."""
    ready, checks, anchoring = health.readiness(ctx)
    worker = getattr(request.app.state, "anchor_worker", None)
    anchoring["worker"] = worker.status.to_dict() if worker is not None else None
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks, "anchoring": anchoring},
        status_code=200 if ready else 503,
    )


@log_router.get("/log/checkpoints/latest", response_model=service.CheckpointPublic)
def latest_checkpoint(session: ReadSessionDep) -> service.CheckpointPublic:
    """The most recent checkpoint anchored on the ledger (404 before the first)."""
    return service.latest_checkpoint(session)


@log_router.get("/log/checkpoints", response_model=service.CheckpointPage)
def list_checkpoints(
    session: ReadSessionDep,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
) -> service.CheckpointPage:
    """Checkpoints in anchoring order (index 0 first)."""
    return service.list_checkpoints(session, offset=offset, limit=limit)


@log_router.get("/log/consistency", response_model=service.ConsistencyProofPublic)
def consistency(
    session: ReadSessionDep,
    first: Annotated[int, Query(ge=1)],
    second: Annotated[int, Query(ge=1)],
) -> service.ConsistencyProofPublic:
    """RFC 9162 consistency proof that the tree of size ``second`` extends the one of ``first``."""
    return service.consistency(session, first=first, second=second)


@log_router.get("/records/{record_id}", response_model=service.RecordPublic)
def get_record(record_id: str, session: ReadSessionDep) -> service.RecordPublic:
    """The canonical record, its leaf index and hash, and its anchor status."""
    return service.get_record(session, record_id=record_id)


@log_router.get(
    "/records/{record_id}/proof",
    response_model=ProofBundle,
    responses={
        409: {
            "model": ErrorResponse,
            "description": "RecordNotAnchored: the record is pending anchor",
        }
    },
)
def record_proof(
    record_id: str,
    session: ReadSessionDep,
    ctx: CtxDep,
    response: Response,
    checkpoint: Annotated[int | None, Query(ge=0, description="default: the latest")] = None,
) -> ProofBundle:
    """A proof bundle (docs/proof-bundle.md) for the record against an anchored checkpoint.
    Cacheable: a bundle against a chosen checkpoint never changes (a day); the latest
    one changes with the next checkpoint (a minute)."""
    response.headers["Cache-Control"] = (
        PINNED_BUNDLE_CACHE if checkpoint is not None else LATEST_BUNDLE_CACHE
    )
    return service.proof_bundle(
        session,
        record_id=record_id,
        ledger_url=service.ledger_url_for(ctx.settings),
        checkpoint=checkpoint,
    )
