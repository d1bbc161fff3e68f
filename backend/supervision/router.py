"""Supervision outcomes and complaints API (thin: parse, call one service function)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from backend.accounts.deps import OptionalUser, client_address, require_role
from backend.accounts.service import Principal
from backend.deps import CtxDep, Offset, ReadSessionDep, SessionDep
from backend.errors import PayloadTooLarge, error_responses
from backend.supervision import bulk, complaints, service, tickets
from backend.supervision.kinds import CSV_COLUMNS
from backend.supervision.models import (
    BulkPreview,
    BulkWritten,
    ComplaintCreate,
    ComplaintPage,
    ComplaintPrivate,
    ComplaintReceived,
    ComplaintReviewCreate,
    ComplaintReviewed,
    ComplaintStatusPublic,
    ComplaintStatusQuery,
    SupervisionInput,
    SupervisionRecordPage,
    SupervisionRecordPublic,
    SupervisionRecordWritten,
)
from backend.timeutil import utcnow

router = APIRouter(
    tags=["supervision"], responses=error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429)
)

StaffUser = Annotated[Principal, require_role("regulator", "admin")]

_BULK_DOC = (
    "A CSV file (`Content-Type: text/csv`, UTF-8 or GB18030), an XLSX workbook (`Content-Type: "
    f"{sorted(bulk.XLSX_TYPES)[0]}`, its first sheet) or JSON lines "
    "(`Content-Type: application/x-ndjson`, one outcome object per line, as for "
    "POST /api/supervision/records). A CSV or XLSX file has a header row naming its columns "
    "in Chinese, as the templates on the regulator's bulk-import page do (检查日期, "
    "罚没金额（元）), or by the API's names "
    f"({', '.join(CSV_COLUMNS)}); empty cells mean \"not given\"; dates may be written as "
    "spreadsheets do (2026/11/24, 2026-11-24, a date cell, an Excel serial number). Every row "
    "is validated first — against the database and the rows above it — and the file is written "
    "all or nothing. `dry_run=true`: nothing is written; 200 with what would be recorded. On "
    "any problem: 422 `BulkValidationFailed` with `errors` (row, field, column, problem, "
    "problem_zh; row 1 is the first data row, row 0 the header), at most 1000 of them, "
    "`error_count`, `row_count` and `invalid_rows`."
)


@router.post(
    "/api/supervision/records", response_model=SupervisionRecordWritten, status_code=201
)
async def create_record(
    ctx: CtxDep,
    user: StaffUser,
    body: Annotated[SupervisionInput, Body()],
) -> Response:
    """Record one outcome, a correction (`supersedes` + `correction_reason`) or a revocation
    (kind `revocation`). Regulators and admins."""
    written = await service.submit_outcome(ctx, principal=user, data=body)
    # Already a validated SupervisionRecordWritten: serialise it once, not validate it again.
    return Response(written.model_dump_json(), status_code=201, media_type="application/json")


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the file is larger than {limit} bytes; split it")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/api/supervision/records/bulk",
    response_model=BulkWritten,
    status_code=201,
    description=_BULK_DOC,
    responses={200: {"model": BulkPreview, "description": "dry_run=true: what would be recorded"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                sorted(bulk.XLSX_TYPES)[0]: {"schema": {"type": "string", "format": "binary"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def create_records_bulk(
    ctx: CtxDep,
    request: Request,
    session: SessionDep,
    user: StaffUser,
    dry_run: Annotated[bool, Query(description="check and preview only; write nothing")] = False,
) -> Any:
    """Import many outcomes at once (10,000 rows take a few seconds)."""
    data = await _read_limited(request, ctx.settings.max_bulk_body_bytes)
    content_type = request.headers.get("content-type")
    if dry_run:
        preview = await run_in_threadpool(
            lambda: bulk.preview_bulk(
                session, principal=user, content_type=content_type, data=data
            )
        )
        return Response(preview.model_dump_json(), media_type="application/json")
    return await run_in_threadpool(
        lambda: bulk.record_bulk(
            session, principal=user, content_type=content_type, data=data
        )
    )


@router.get("/api/supervision/records", response_model=SupervisionRecordPage)
def list_records(
    session: ReadSessionDep,
    _user: StaffUser,
    uscc: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    draw_id: Annotated[
        str | None, Query(max_length=66, description="the draw's id (0x optional) or number")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> SupervisionRecordPage:
    """Every outcome with its status (current, superseded, revoked, ended), newest first.
    Staff only: the public sees a merchant's outcomes at GET /api/merchants/{uscc}/records."""
    return service.list_records(
        session, uscc=uscc, kind=kind, draw_id=draw_id, limit=limit, offset=offset
    )


@router.get("/api/supervision/records/{record_id}", response_model=SupervisionRecordPublic)
def get_record(
    session: ReadSessionDep, _user: StaffUser, record_id: str
) -> SupervisionRecordPublic:
    return service.get_record(session, record_id=record_id)


@router.post("/api/complaints", response_model=ComplaintReceived, status_code=201)
def submit_complaint(
    session: SessionDep, request: Request, user: OptionalUser, body: ComplaintCreate
) -> ComplaintReceived:
    """Complain about a merchant; anonymous allowed, limited per client address (429).
    Your contact stays private; the complaint counts and is shown only once verified."""
    return complaints.submit_complaint(
        session, principal=user, data=body, address=client_address(request)
    )


@router.post("/api/complaints/status", response_model=ComplaintStatusPublic)
def complaint_status(
    session: SessionDep, request: Request, body: ComplaintStatusQuery
) -> ComplaintStatusPublic:
    """How a complaint stands, by the 受理编号 and check code of its receipt. Failed
    lookups are limited per client address and per number (429 `TooManyAttempts`, with
    Retry-After); a wrong number or code is 404 `ComplaintTicketNotFound` (never which)."""
    found = tickets.lookup(
        session, ticket=body.ticket, code=body.code, address=client_address(request),
        now=utcnow(),
    )
    return ComplaintStatusPublic.model_validate(found, from_attributes=True)


@router.get("/api/complaints", response_model=ComplaintPage)
def list_complaints(
    session: ReadSessionDep,
    _user: StaffUser,
    status: Annotated[str | None, Query(description="pending, verified or rejected")] = None,
    uscc: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> ComplaintPage:
    return complaints.list_complaints(
        session, status=status, uscc=uscc, limit=limit, offset=offset
    )


@router.get("/api/complaints/{complaint_id}", response_model=ComplaintPrivate)
def get_complaint(
    session: ReadSessionDep, _user: StaffUser, complaint_id: str
) -> ComplaintPrivate:
    return complaints.get_complaint(session, complaint_id=complaint_id)


@router.post(
    "/api/complaints/{complaint_id}/verification",
    response_model=ComplaintReviewed,
    status_code=201,
)
def review_complaint(
    session: SessionDep, user: StaffUser, complaint_id: str, body: ComplaintReviewCreate
) -> Any:
    """Verify (appends `supervision.complaint_verified` and re-rates) or reject a complaint."""
    return complaints.review_complaint(
        session, principal=user, complaint_id=complaint_id, data=body
    )
