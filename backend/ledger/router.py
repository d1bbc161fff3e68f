"""Liveness and readiness, and the log's public API: checkpoints, records, proofs.

Thin: parse, call one function of ``backend/ledger/service.py``, return a
``*Public`` model.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from backend.context import AppContext
from backend.db import INT_KEY_MAX
from backend.deps import CtxDep, Offset, ReadSessionDep
from backend.errors import ErrorResponse, ValidationFailed, error_responses
from backend.ledger import (
    completeness,
    health,
    published,
    service,
    tiles,
    trustroot_store,
    witnessing,
)
from backend.ledger.bundle import ProofBundle
from backend.ledger.logkey import LogKeyError, load_log_key
from backend.ledger.note import Signer

logger = logging.getLogger("honest_metering.log")

PINNED_BUNDLE_CACHE = "public, max-age=86400"
LATEST_BUNDLE_CACHE = "public, max-age=60"

router = APIRouter(tags=["health"])
log_router = APIRouter(prefix="/api", tags=["log"], responses=error_responses(404, 409, 422))
# The C2SP tiled-log read API (c2sp.org/tlog-tiles): static-looking, cacheable paths.
tiles_router = APIRouter(tags=["tiles"], responses=error_responses(404, 422))


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
    body = {"status": "ready" if ready else "not ready", "checks": checks, "anchoring": anchoring}
    if ctx.settings.witnesses and checks.get("database") == "up":
        # A witness that is down never makes the service unready: it is reported, with
        # how far it lags behind the published checkpoint.
        with ctx.db.read() as s:
            size = published.published_head(s, "").size
            body["witnessing"] = witnessing.report(s, ctx.settings, size)
    return JSONResponse(body, status_code=200 if ready else 503)


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
    checkpoint: Annotated[
        int | None, Query(ge=0, le=INT_KEY_MAX, description="default: the latest")
    ] = None,
    version: Annotated[
        int, Query(ge=1, le=2, description="bundle format; 2 adds the signed checkpoint")
    ] = 1,
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
        version=version,
        log_key=_log_key(ctx) if version == 2 else None,
    )


@log_router.get(
    "/merchants/{uscc}/completeness",
    response_model=completeness.CompletenessProof,
    responses={
        409: {
            "model": ErrorResponse,
            "description": "NoSubjectIndex: the checkpoint was anchored before the index",
        }
    },
)
def merchant_completeness(
    uscc: str,
    session: ReadSessionDep,
    ctx: CtxDep,
    response: Response,
    checkpoint: Annotated[
        int | None, Query(ge=0, le=INT_KEY_MAX, description="default: the latest")
    ] = None,
) -> completeness.CompletenessProof:
    """Proof that the code has exactly these records as of the checkpoint (membership), or
    none (absence), against the subject index the checkpoint ends with
    (docs/proof-bundle.md, "Completeness proofs")."""
    response.headers["Cache-Control"] = (
        PINNED_BUNDLE_CACHE if checkpoint is not None else LATEST_BUNDLE_CACHE
    )
    return completeness.completeness(
        session, uscc=uscc, checkpoint=checkpoint,
        ledger_url=service.ledger_url_for(ctx.settings),
    )


def _log_key(ctx: CtxDep) -> Signer:
    return ctx.local("log_key", lambda: load_log_key(ctx.settings))


@tiles_router.get(
    "/checkpoint",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "a C2SP signed checkpoint"}},
)
def checkpoint(session: ReadSessionDep, ctx: CtxDep) -> Response:
    """The newest anchored tree head as a signed note (c2sp.org/tlog-checkpoint)."""
    note = published.signed_checkpoint(session, _log_key(ctx))
    headers = {"Cache-Control": published.CHECKPOINT_CACHE}
    if ctx.settings.witnesses:
        cosigned = len(note.signatures) - 1
        headers["X-Witnesses"] = witnessing.witnessed_summary(ctx.settings, cosigned)
    return Response(note.format(), media_type="text/plain; charset=utf-8", headers=headers)


@tiles_router.get(
    "/tile/{level}/{index:path}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def tile(level: str, index: str, ctx: CtxDep) -> Response:
    """A Merkle tile ``/tile/<L>/<N>[.p/<W>]`` or entry bundle ``/tile/entries/<N>[.p/<W>]``
    of the published tree (c2sp.org/tlog-tiles)."""
    try:
        t = tiles.parse_tile_path(level, index)
    except tiles.TileError as exc:
        raise ValidationFailed(str(exc)) from None
    cache = ctx.local("full_tiles", published.FullTileCache)
    data = published.serve_tile(ctx.db, cache, t)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "Cache-Control": published.FULL_TILE_CACHE if t.full else published.PARTIAL_TILE_CACHE
        },
    )


@tiles_router.get(trustroot_store.PATH, responses=error_responses(503))
def trust_root(ctx: CtxDep) -> JSONResponse:
    """The trust root verifiers pin (docs/trust-root.md): log key, chain, contract,
    witnesses and quorum, signed; its SHA-256 fingerprint is in the X-Fingerprint header."""
    root = trustroot_store.current(ctx)
    return JSONResponse(
        root.to_json(),
        headers={"Cache-Control": "public, max-age=60", "X-Fingerprint": root.fingerprint},
    )


def install_tiles(app: FastAPI) -> None:
    """The tiles API. The log key is loaded at start: a missing or wrong one is said
    loudly there (the service still runs; /checkpoint and the trust root answer 503)."""
    app.include_router(tiles_router)

    def check_key(ctx: AppContext) -> None:
        try:
            _log_key(ctx)
        except LogKeyError as exc:
            logger.error("SECURITY: the log cannot sign checkpoints: %s", exc.detail)

    app.state.startup_hooks.append(check_key)
